package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestSetRoleAndRemoveMember: owners and admins change roles and remove
// members; an admin can neither make, demote nor remove an owner; the last
// owner can be neither demoted nor removed; another tenant's member is not
// found; a demotion revokes the keys above the new role, a removal all the
// member's keys; each change is one audit entry naming the actor and the
// member's id, never an e-mail or name; a refused change changes nothing.
func TestSetRoleAndRemoveMember(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		s, err := tenancy.NewStore(db, cheapPasswords)
		require.NoError(t, err)
		bg := context.Background()
		// Members without a password: no bcrypt to pay for.
		tenant := func(name string) (tenancy.Member, context.Context) {
			_, m, err := s.CreateTenant(bg, tenancy.SignUp{TenantName: name,
				Owner: tenancy.NewMember{Email: "owner@" + name + ".example", Name: "Owner " + name}})
			require.NoError(t, err)
			return m, tenancy.WithPrincipal(bg, m.Principal())
		}
		owner, asOwner := tenant("acme")
		otherOwner, asOther := tenant("globex")
		add := func(email string, role tenancy.Role) tenancy.Member {
			m, err := s.AddMember(asOwner, tenancy.NewMember{Email: email, Name: "Secret Name " + email, Role: role})
			require.NoError(t, err)
			return m
		}
		admin := add("admin@acme.example", tenancy.RoleAdmin)
		asAdmin := tenancy.WithPrincipal(bg, admin.Principal())
		staff := add("staff@acme.example", tenancy.RoleStaff)
		asStaff := tenancy.WithPrincipal(bg, staff.Principal())
		roleOf := func(id string) tenancy.Role {
			ms, err := s.Members(asOwner)
			require.NoError(t, err)
			for _, m := range ms {
				if m.ID == id {
					return m.Role
				}
			}
			return ""
		}

		// The last owner: neither demoted nor removed, even by themselves.
		_, err = s.SetRole(asOwner, owner.ID, tenancy.RoleAdmin)
		require.ErrorIs(t, err, tenancy.ErrLastOwner)
		require.ErrorIs(t, s.RemoveMember(asOwner, owner.ID), tenancy.ErrLastOwner)
		require.Equal(t, tenancy.RoleOwner, roleOf(owner.ID))

		// An admin may not touch an owner, nor make one; staff may do nothing.
		_, err = s.SetRole(asAdmin, owner.ID, tenancy.RoleStaff)
		require.ErrorIs(t, err, tenancy.ErrForbidden)
		require.ErrorIs(t, s.RemoveMember(asAdmin, owner.ID), tenancy.ErrForbidden)
		_, err = s.SetRole(asAdmin, staff.ID, tenancy.RoleOwner)
		require.ErrorIs(t, err, tenancy.ErrForbidden)
		_, err = s.SetRole(asStaff, staff.ID, tenancy.RoleAdmin)
		require.ErrorIs(t, err, tenancy.ErrForbidden)
		require.ErrorIs(t, s.RemoveMember(asStaff, admin.ID), tenancy.ErrForbidden)
		require.Equal(t, tenancy.RoleStaff, roleOf(staff.ID))

		// Bad input: typed errors.
		_, err = s.SetRole(asOwner, staff.ID, "wizard")
		var ve *tenancy.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, "Role", ve.Field)
		_, err = s.SetRole(asOwner, "not-an-id", tenancy.RoleStaff)
		require.ErrorIs(t, err, tenancy.ErrNotFound)
		require.ErrorIs(t, s.RemoveMember(asOwner, tenancy.NewID()), tenancy.ErrNotFound)

		// Another tenant's member is not found, and stays as it was.
		_, err = s.SetRole(asOwner, otherOwner.ID, tenancy.RoleStaff)
		require.ErrorIs(t, err, tenancy.ErrNotFound)
		require.ErrorIs(t, s.RemoveMember(asOwner, otherOwner.ID), tenancy.ErrNotFound)
		others, err := s.Members(asOther)
		require.NoError(t, err)
		require.Len(t, others, 1)
		require.Equal(t, tenancy.RoleOwner, others[0].Role)

		// An admin promotes staff to admin; the owner makes them an owner.
		m, err := s.SetRole(asAdmin, staff.ID, tenancy.RoleAdmin)
		require.NoError(t, err)
		require.Equal(t, tenancy.RoleAdmin, m.Role)
		require.Equal(t, "Secret Name staff@acme.example", m.Name)
		_, err = s.SetRole(asOwner, staff.ID, tenancy.RoleOwner)
		require.NoError(t, err)
		require.Equal(t, tenancy.RoleOwner, roleOf(staff.ID))

		// A second owner: the first may now step down, which revokes their
		// owner key and keeps their staff one.
		asStaffOwner := tenancy.WithPrincipal(bg, tenancy.Principal{TenantID: owner.TenantID, MemberID: staff.ID, Role: tenancy.RoleOwner})
		ownerKey, _, err := s.CreateAPIKey(asOwner, "owner key", tenancy.RoleOwner)
		require.NoError(t, err)
		staffKey, _, err := s.CreateAPIKey(asOwner, "staff key", tenancy.RoleStaff)
		require.NoError(t, err)
		_, err = s.SetRole(asOwner, owner.ID, tenancy.RoleAdmin)
		require.NoError(t, err)
		_, err = s.AuthenticateAPIKey(bg, ownerKey)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials, "the owner key outranks the new role")
		_, err = s.AuthenticateAPIKey(bg, staffKey)
		require.NoError(t, err)
		// Now staff is the last owner.
		require.ErrorIs(t, s.RemoveMember(asStaffOwner, staff.ID), tenancy.ErrLastOwner)

		// Removal: the member is gone, with every key they created.
		adminKey, _, err := s.CreateAPIKey(asAdmin, "admin's staff key", tenancy.RoleStaff)
		require.NoError(t, err)
		require.NoError(t, s.RemoveMember(asStaffOwner, admin.ID))
		require.Empty(t, roleOf(admin.ID))
		_, err = s.AuthenticateAPIKey(bg, adminKey)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		_, err = s.AuthenticateAPIKey(bg, staffKey)
		require.NoError(t, err, "another member's key stays")
		require.ErrorIs(t, s.RemoveMember(asStaffOwner, admin.ID), tenancy.ErrNotFound)

		// The audit log: one entry per change, the actor and the member's
		// id, the roles; no e-mail, no name; the chain still verifies.
		entries, err := s.Audit().List(asOwner, tenancy.AuditListOptions{})
		require.NoError(t, err)
		var changes []tenancy.AuditEntry
		for _, e := range entries {
			if e.Action == "member.role_changed" || e.Action == "member.removed" {
				changes = append(changes, e)
			}
		}
		require.Len(t, changes, 4, "refused changes write nothing")
		want := []struct{ actor, action, target, meta string }{
			{"member:" + admin.ID, "member.role_changed", "member:" + staff.ID, "staff>admin"},
			{"member:" + owner.ID, "member.role_changed", "member:" + staff.ID, "admin>owner"},
			{"member:" + owner.ID, "member.role_changed", "member:" + owner.ID, "owner>admin"},
			{"member:" + staff.ID, "member.removed", "member:" + admin.ID, "admin"},
		}
		byTime := map[string]tenancy.AuditEntry{}
		for _, e := range changes {
			byTime[e.Actor+e.Target+e.Action] = e
		}
		for _, w := range want {
			e, ok := byTime[w.actor+w.target+w.action]
			require.True(t, ok, "%s by %s on %s", w.action, w.actor, w.target)
			if w.action == "member.removed" {
				require.Equal(t, w.meta, e.Metadata["role"])
				require.Equal(t, "1", e.Metadata["api_keys_revoked"])
			} else {
				require.Equal(t, w.meta, e.Metadata["from"]+">"+e.Metadata["to"])
			}
			for _, v := range append([]string{e.Target, e.Actor}, values(e.Metadata)...) {
				require.NotContains(t, v, "@")
				require.NotContains(t, v, "Secret Name")
			}
		}
		require.Equal(t, "1", byTime["member:"+owner.ID+"member:"+owner.ID+"member.role_changed"].Metadata["api_keys_revoked"])
		_, err = s.Audit().Verify(asOwner)
		require.NoError(t, err)
	})
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Changing a role and removing a member; the last owner stays.
func ExampleStore_SetRole() {
	db, done := openExampleDB()
	defer done()
	if _, err := tenancy.InstallGuard(db, (*tenancy.Member)(nil), (*tenancy.APIKey)(nil), (*tenancy.AuditEntry)(nil)); err != nil {
		panic(err)
	}
	store, _ := tenancy.NewStore(db)
	_, owner, err := store.CreateTenant(context.Background(), tenancy.SignUp{
		TenantName: "Acme", Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada"},
	})
	if err != nil {
		panic(err)
	}
	ctx := tenancy.WithPrincipal(context.Background(), owner.Principal())
	bob, _ := store.AddMember(ctx, tenancy.NewMember{Email: "bob@acme.example", Name: "Bob", Role: tenancy.RoleStaff})

	bob, err = store.SetRole(ctx, bob.ID, tenancy.RoleAdmin)
	fmt.Println(bob.Role, err)
	fmt.Println(store.RemoveMember(ctx, bob.ID))
	fmt.Println(errors.Is(store.RemoveMember(ctx, owner.ID), tenancy.ErrLastOwner))
	// Output:
	// admin <nil>
	// <nil>
	// true
}
