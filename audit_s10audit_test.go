package socialcrm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS10AuditRecordEditsAndFailedLogins: editing and deleting records
// (a contact, a note, a deal, a client), granting and withdrawing a
// client-portal member's access, and failed logins each leave an audit
// entry naming the actor and the record (or the member), and no entry
// holds any value written (old or new names, bodies, titles, addresses,
// the password tried).
func TestS10AuditRecordEditsAndFailedLogins(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "edits")
		owner, _ := tenancy.FromContext(a)
		s := sdk.CRM
		values := []string{"ZqOldNameQz", "ZqNewNameQz", "zqedit@example.com", "zqnew@example.com", "ZqNoteQz", "ZqNote2Qz", "ZqDealQz",
			"ZqDeal2Qz", "ZqClientQz", "ZqClient2Qz", "ZqWrongPasswordQz", "4155550177", "4155550178"}
		c, err := s.Contacts().Create(a, crm.ContactInput{FirstName: "ZqOldNameQz", Email: "zqedit@example.com", Phone: "+14155550177"})
		require.NoError(t, err)
		in := c.ContactInput
		in.FirstName, in.Email, in.Phone = "ZqNewNameQz", "zqnew@example.com", "+14155550178"
		_, err = s.Contacts().Update(a, c.ID, c.Version, in)
		require.NoError(t, err)
		n, err := s.Notes().Create(a, crm.NoteInput{ContactID: c.ID, Body: "ZqNoteQz"})
		require.NoError(t, err)
		_, err = s.Notes().Update(a, n.ID, n.Version, crm.NoteInput{ContactID: c.ID, Body: "ZqNote2Qz"})
		require.NoError(t, err)
		pls, err := s.Pipelines().List(a, crm.PipelineFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		d, err := s.Deals().Create(a, crm.DealInput{PipelineID: pls.Items[0].ID, Title: "ZqDealQz", ContactID: c.ID})
		require.NoError(t, err)
		din := d.DealInput
		din.Title = "ZqDeal2Qz"
		_, err = s.Deals().Update(a, d.ID, d.Version, din)
		require.NoError(t, err)
		cl, err := s.Clients().Create(a, crm.ClientInput{Name: "ZqClientQz"})
		require.NoError(t, err)
		_, err = s.Clients().Update(a, cl.ID, cl.Version, crm.ClientInput{Name: "ZqClient2Qz"})
		require.NoError(t, err)
		// A client-portal member: her access granted and withdrawn.
		portal, err := s.Clients().Create(a, crm.ClientInput{Name: "Portal client"})
		require.NoError(t, err)
		pm, err := sdk.Tenants.AddMember(a, tenancy.NewMember{Email: "zqportal@example.com", Name: "ZqPortalQz", Role: tenancy.RoleClient, ClientID: portal.ID})
		require.NoError(t, err)
		_, err = s.Clients().Link(a, portal.ID, pm.ID)
		require.NoError(t, err)
		require.NoError(t, s.Clients().Unlink(a, pm.ID))
		values = append(values, "ZqPortalQz")
		for _, del := range []func() error{
			func() error { return s.Deals().Delete(a, d.ID) },
			func() error { return s.Notes().Delete(a, n.ID) },
			func() error { return s.Contacts().Delete(a, c.ID) },
			func() error { return s.Clients().Delete(a, cl.ID) },
		} {
			require.NoError(t, del())
		}
		_, err = sdk.Tenants.Authenticate(context.Background(), owner.TenantID, "owner@edits.example", "ZqWrongPasswordQz", tenancy.RequestInfo{IP: "203.0.113.9"})
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)

		auditOf(t, sdk, a, "", values...) // no entry holds a value
		es, err := sdk.Audit.List(a, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		has := func(action, target string) bool {
			for _, e := range es {
				if strings.HasSuffix(e.Action, action) && strings.Contains(e.Target, target) {
					return true
				}
			}
			return false
		}
		for _, id := range []string{c.ID, n.ID, d.ID, cl.ID} {
			require.True(t, has("updated", id), "an edit of %s is in the log", id)
			require.True(t, has("deleted", id), "a delete of %s is in the log: %v", id, actions(es))
		}
		for _, e := range es {
			if strings.HasSuffix(e.Action, "updated") || strings.HasSuffix(e.Action, "deleted") {
				require.Equal(t, owner.Actor(), e.Actor, "%+v", e)
			}
		}
		require.True(t, has("login.failed", ""), "a failed login is in the log: %v", actions(es))
		require.True(t, has("member_linked", pm.ID), "a portal access granted is in the log: %v", actions(es))
		require.True(t, has("member_unlinked", pm.ID), "a portal access withdrawn is in the log: %v", actions(es))
	}, migrated)
}

func actions(es []tenancy.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Target)
	}
	return out
}
