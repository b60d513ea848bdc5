package tenancy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/tenancy"
)

func newClock() *fakeclock.Clock { return fakeclock.New() }

const ownerPassword = "correct horse battery"

func signUp(t *testing.T, s *tenancy.Store, name string) (tenancy.Tenant, context.Context) {
	t.Helper()
	tn, owner, err := s.CreateTenant(context.Background(), tenancy.SignUp{
		TenantName: name,
		Owner:      tenancy.NewMember{Email: "Owner@" + strings.ToLower(name) + ".example", Name: "Owner", Password: ownerPassword},
	})
	require.NoError(t, err)
	require.Equal(t, tenancy.RoleOwner, owner.Role)
	require.Equal(t, tn.ID, owner.TenantID)
	return tn, tenancy.WithPrincipal(context.Background(), owner.Principal())
}

func TestTenantLifecycle(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		clk := newClock()
		s, err := tenancy.NewStore(db, cheapPasswords, tenancy.WithClock(clk.Now))
		require.NoError(t, err)
		_, _, err = s.CreateTenant(context.Background(), tenancy.SignUp{TenantName: " "})
		var verr *tenancy.ValidationError
		require.ErrorAs(t, err, &verr)
		require.Equal(t, "TenantName", verr.Field)

		tn, owner := signUp(t, s, "Acme")
		require.Equal(t, tenancy.StatusActive, tn.Status)
		_, other := signUp(t, s, "Other")

		got, err := s.Tenant(owner)
		require.NoError(t, err)
		require.Equal(t, tn.ID, got.ID)
		require.True(t, tn.CreatedAt.Equal(got.CreatedAt))

		// Only the system lists tenants.
		_, err = s.Tenants(owner, tenancy.TenantFilter{})
		require.ErrorIs(t, err, tenancy.ErrNotSystem)
		sys := tenancy.System(context.Background(), "test")
		all, err := s.Tenants(sys, tenancy.TenantFilter{})
		require.NoError(t, err)
		require.Len(t, all, 2)

		// A staff member cannot close the tenant; the owner can.
		staffCtx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, Role: tenancy.RoleStaff})
		_, err = s.CloseTenant(staffCtx, 30*24*time.Hour)
		require.ErrorIs(t, err, tenancy.ErrForbidden)
		closed, err := s.CloseTenant(owner, 30*24*time.Hour)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusClosed, closed.Status)
		require.True(t, closed.PurgeAfter.Equal(clk.Now().Add(30*24*time.Hour)))

		due, err := s.Tenants(sys, tenancy.TenantFilter{DueBy: clk.Now()})
		require.NoError(t, err)
		require.Empty(t, due, "not due during the grace period")
		asTn, err := tenancy.AsTenant(sys, tn.ID)
		require.NoError(t, err)
		_, err = s.MarkPurged(asTn)
		require.ErrorIs(t, err, tenancy.ErrNotDue)

		// Reopen within the grace period, close again, let it lapse.
		reopened, err := s.ReopenTenant(owner)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusActive, reopened.Status)
		require.Nil(t, reopened.PurgeAfter)
		_, err = s.CloseTenant(owner, 24*time.Hour)
		require.NoError(t, err)
		clk.Advance(25 * time.Hour)
		due, err = s.Tenants(sys, tenancy.TenantFilter{DueBy: clk.Now()})
		require.NoError(t, err)
		require.Len(t, due, 1)
		require.Equal(t, tn.ID, due[0].ID)

		_, err = s.MarkPurged(owner)
		require.ErrorIs(t, err, tenancy.ErrNotSystem, "an owner cannot mark a tenant purged")
		purged, err := s.MarkPurged(asTn)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusPurged, purged.Status)
		_, err = s.ReopenTenant(owner)
		require.ErrorIs(t, err, tenancy.ErrPurged)

		// The other tenant was untouched.
		o, err := s.Tenant(other)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusActive, o.Status)

		// Each step is in the audit log, by its actor.
		entries, err := s.Audit().List(owner, tenancy.AuditListOptions{})
		require.NoError(t, err)
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action+" by "+strings.SplitN(e.Actor, ":", 2)[0])
		}
		require.Equal(t, []string{
			"tenant.created by member", "tenant.closed by member", "tenant.reopened by member",
			"tenant.closed by member", "tenant.purged by system",
		}, actions)
	})
}

func TestPrincipalContext(t *testing.T) {
	_, err := tenancy.TenantID(context.Background())
	require.ErrorIs(t, err, tenancy.ErrNoTenant)
	_, err = tenancy.TenantID(tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: "not-a-uuid"}))
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
	_, err = tenancy.TenantID(tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: strings.ToUpper(tenancy.NewID())}))
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant, "only the canonical form is a tenant id")

	member := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), MemberID: "m1", Role: tenancy.RoleAdmin})
	_, err = tenancy.AsTenant(member, tenancy.NewID())
	require.ErrorIs(t, err, tenancy.ErrNotSystem, "a member cannot switch tenants")

	sys := tenancy.System(context.Background(), "retention")
	_, err = tenancy.TenantID(sys)
	require.ErrorIs(t, err, tenancy.ErrNoTenant, "the system principal has no tenant of its own")
	tid := tenancy.NewID()
	ctx, err := tenancy.AsTenant(sys, tid)
	require.NoError(t, err)
	got, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	require.Equal(t, tid, got)
	p, _ := tenancy.FromContext(ctx)
	require.Equal(t, "system:retention", p.Actor())
}

func TestMembersAndLockout(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		clk := newClock()
		s, err := tenancy.NewStore(db, cheapPasswords, tenancy.WithClock(clk.Now),
			tenancy.WithLockout(tenancy.Lockout{MaxFailures: 3, Window: 10 * time.Minute, Duration: time.Hour}))
		require.NoError(t, err)
		tn, owner := signUp(t, s, "Acme")
		other, _ := signUp(t, s, "Other")

		// Validation names the field; nothing is written.
		for _, bad := range []tenancy.NewMember{
			{Email: "not an email", Name: "x", Role: tenancy.RoleStaff},
			{Email: "c@acme.example", Name: "x", Role: tenancy.RoleClient},
			{Email: "s@acme.example", Name: "x", Role: "superuser"},
			{Email: "s@acme.example", Name: "x", Role: tenancy.RoleStaff, Password: "short"},
		} {
			_, err := s.AddMember(owner, bad)
			var verr *tenancy.ValidationError
			require.ErrorAs(t, err, &verr, "%+v", bad)
		}
		staff, err := s.AddMember(owner, tenancy.NewMember{Email: "Staff@Acme.example", Name: "Sam", Role: tenancy.RoleStaff})
		require.NoError(t, err)
		require.Equal(t, "staff@acme.example", staff.Email)
		_, err = s.AddMember(owner, tenancy.NewMember{Email: "staff@acme.example", Name: "Sam again", Role: tenancy.RoleStaff})
		require.ErrorIs(t, err, tenancy.ErrDuplicate)
		_, err = s.AddMember(tenancy.WithPrincipal(context.Background(), staff.Principal()),
			tenancy.NewMember{Email: "x@acme.example", Name: "X", Role: tenancy.RoleStaff})
		require.ErrorIs(t, err, tenancy.ErrForbidden, "staff cannot add members")
		client, err := s.AddMember(owner, tenancy.NewMember{Email: "client@brand.example", Name: "Brand", Role: tenancy.RoleClient, ClientID: "client-1"})
		require.NoError(t, err)
		require.Equal(t, "client-1", client.Principal().ClientID)
		ms, err := s.Members(owner)
		require.NoError(t, err)
		require.Len(t, ms, 3)
		_, err = s.Members(tenancy.WithPrincipal(context.Background(), client.Principal()))
		require.ErrorIs(t, err, tenancy.ErrForbidden, "a client user does not see the tenant's members")
		js, err := json.Marshal(ms)
		require.NoError(t, err)
		require.NotContains(t, string(js), "$2a$", "password hashes are never marshalled")

		req := tenancy.RequestInfo{IP: "203.0.113.7", UserAgent: "test"}
		email := "owner@acme.example"
		p, err := s.Authenticate(context.Background(), tn.ID, email, ownerPassword, req)
		require.NoError(t, err)
		require.Equal(t, tenancy.RoleOwner, p.Role)
		_, err = s.Authenticate(context.Background(), other.ID, email, ownerPassword, req)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials, "the right password in another tenant is no credential")
		_, err = s.Authenticate(context.Background(), "nope", email, ownerPassword, req)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)

		// Failures outside the window do not add up.
		_, err = s.Authenticate(context.Background(), tn.ID, email, "wrong password 1", req)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		clk.Advance(11 * time.Minute)
		_, err = s.Authenticate(context.Background(), tn.ID, email, "wrong password 2", req)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		_, err = s.Authenticate(context.Background(), tn.ID, email, "wrong password 3", req)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		_, err = s.Authenticate(context.Background(), tn.ID, email, "wrong password 4", req)
		var locked *tenancy.LockedError
		require.ErrorAs(t, err, &locked, "the third failure within the window locks")
		require.True(t, locked.Until.Equal(clk.Now().Add(time.Hour)))

		// Locked: even the right password fails, until the lock ends.
		_, err = s.Authenticate(context.Background(), tn.ID, email, ownerPassword, req)
		require.ErrorIs(t, err, tenancy.ErrLocked)
		clk.Advance(time.Hour)
		_, err = s.Authenticate(context.Background(), tn.ID, email, ownerPassword, req)
		require.NoError(t, err)

		entries, err := s.Audit().List(owner, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		counts := map[string]int{}
		for _, e := range entries {
			counts[e.Action]++
			if strings.HasPrefix(e.Action, "login.") || e.Action == "member.locked" {
				require.Equal(t, "203.0.113.0/24", e.IP, "the network only, no address")
			}
			raw := fmt.Sprintf("%v", e)
			require.NotContains(t, raw, "wrong password")
			require.NotContains(t, raw, ownerPassword)
		}
		require.Equal(t, map[string]int{
			"tenant.created": 1, "member.added": 2, "login.succeeded": 2,
			"login.failed": 3, "member.locked": 1, "login.locked": 1,
		}, counts)
	})
}

func TestAPIKeys(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		s, err := tenancy.NewStore(db, cheapPasswords)
		require.NoError(t, err)
		tn, owner := signUp(t, s, "Acme")
		_, other := signUp(t, s, "Other")

		key, rec, err := s.CreateAPIKey(owner, "ci", tenancy.RoleStaff)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(key, "sck_"))
		require.True(t, strings.HasSuffix(key, rec.Hint))
		require.NotContains(t, rec.Hash, key)
		js, _ := json.Marshal(rec)
		require.NotContains(t, string(js), rec.Hash, "the hash is not marshalled")

		// Only the SHA-256 is stored.
		var stored []string
		require.NoError(t, tenancy.RunInTx(owner, db, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT hash || name || hint FROM socialcrm_api_keys WHERE tenant_id = ?", tn.ID).Scan(ctx, &stored)
		}))
		require.Len(t, stored, 1)
		require.NotContains(t, stored[0], key[len(key)-20:])

		p, err := s.AuthenticateAPIKey(context.Background(), key)
		require.NoError(t, err)
		require.Equal(t, tn.ID, p.TenantID)
		require.Equal(t, tenancy.RoleStaff, p.Role)

		flipped := key[:len(key)-1] + map[bool]string{true: "B", false: "A"}[key[len(key)-1] == 'A']
		for _, bad := range []string{"", "sck_", flipped, strings.Replace(key, "sck_", "sk_", 1), key + "x"} {
			_, err := s.AuthenticateAPIKey(context.Background(), bad)
			require.ErrorIs(t, err, tenancy.ErrInvalidCredentials, bad)
		}
		_, _, err = s.CreateAPIKey(tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, Role: tenancy.RoleStaff}), "x", tenancy.RoleStaff)
		require.ErrorIs(t, err, tenancy.ErrForbidden)

		// Another tenant cannot revoke it; the owner can.
		require.ErrorIs(t, s.RevokeAPIKey(other, rec.ID), tenancy.ErrNotFound)
		require.NoError(t, s.RevokeAPIKey(owner, rec.ID))
		_, err = s.AuthenticateAPIKey(context.Background(), key)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)

		// Keys of a closed tenant stop working.
		key2, _, err := s.CreateAPIKey(owner, "second", tenancy.RoleAdmin)
		require.NoError(t, err)
		_, err = s.CloseTenant(owner, time.Hour)
		require.NoError(t, err)
		_, err = s.AuthenticateAPIKey(context.Background(), key2)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
	})
}

func TestAuditChain(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		clk := newClock()
		log, err := tenancy.NewAuditLog(db, tenancy.WithClock(clk.Now))
		require.NoError(t, err)
		a, b := tenancy.NewID(), tenancy.NewID()
		ctxA := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: a, MemberID: "m-a", Role: tenancy.RoleOwner})
		ctxB := ownerOf(b)

		_, err = log.Append(context.Background(), tenancy.AuditEvent{Action: "x.y"})
		require.ErrorIs(t, err, tenancy.ErrNoTenant)

		// Concurrent appends form one unbroken chain.
		const writers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					clk.Advance(time.Second)
					_, err := log.Append(ctxA, tenancy.AuditEvent{Action: "contact.updated", Target: fmt.Sprintf("contact:%d-%d", w, i),
						Metadata: map[string]string{"field": "email"}})
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		_, err = log.Append(ctxB, tenancy.AuditEvent{Action: "b.only"})
		require.NoError(t, err)

		head, err := log.Verify(ctxA)
		require.NoError(t, err)
		require.EqualValues(t, writers*each, head.Entries)
		require.EqualValues(t, writers*each, head.Seq)
		entries, err := log.List(ctxA, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		require.Len(t, entries, writers*each)
		require.Equal(t, "member:m-a", entries[0].Actor)
		headB, err := log.Verify(ctxB)
		require.NoError(t, err)
		require.EqualValues(t, 1, headB.Entries, "B's chain is its own")

		// The application's own handle cannot change or delete entries.
		for _, q := range []string{"UPDATE socialcrm_audit_log SET target = 'x' WHERE tenant_id = ? AND seq = 7",
			"DELETE FROM socialcrm_audit_log WHERE tenant_id = ? AND seq = 7"} {
			err := tenancy.RunInTx(ctxA, db.Reopen(t), nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, q, a)
				return err
			})
			require.Error(t, err, q)
		}
		tamper := func(query string, args ...any) { t.Helper(); tamper(t, db, ctxA, execSQL(query, args...)) }

		// Changing a field is found at that entry.
		tamper("UPDATE socialcrm_audit_log SET target = 'contact:other' WHERE tenant_id = ? AND seq = 7", a)
		_, err = log.Verify(ctxA)
		var te *tenancy.TamperError
		require.ErrorAs(t, err, &te)
		require.EqualValues(t, 7, te.Seq)
		require.Equal(t, "content changed", te.Reason)
		require.ErrorIs(t, err, tenancy.ErrTampered)

		// Recomputing that entry's hash moves the break to the next link.
		var e7 []tenancy.AuditEntry
		e7, err = log.List(ctxA, tenancy.AuditListOptions{AfterSeq: 6, Limit: 1})
		require.NoError(t, err)
		forged := e7[0]
		tamper("UPDATE socialcrm_audit_log SET hash = ? WHERE tenant_id = ? AND seq = 7", tenancy.HashEntryForTest(forged, "contact:other"), a)
		_, err = log.Verify(ctxA)
		require.ErrorAs(t, err, &te)
		require.EqualValues(t, 8, te.Seq)

		// A deleted entry is reported missing.
		tamper("DELETE FROM socialcrm_audit_log WHERE tenant_id = ? AND seq >= 7 AND seq <= 8", a)
		_, err = log.Verify(ctxA)
		require.ErrorAs(t, err, &te)
		require.EqualValues(t, 7, te.Seq)
		require.Equal(t, "missing", te.Reason)
	})
}

func TestAuditTruncateKeepsChainVerifiable(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		clk := newClock()
		log, err := tenancy.NewAuditLog(db, tenancy.WithClock(clk.Now))
		require.NoError(t, err)
		a := tenancy.NewID()
		ctxA := ownerOf(a)
		_, err = log.Verify(as(a))
		require.ErrorIs(t, err, tenancy.ErrForbidden, "staff do not read the audit log")
		_, err = log.List(tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: a, Role: tenancy.RoleClient}), tenancy.AuditListOptions{})
		require.ErrorIs(t, err, tenancy.ErrForbidden, "nor do clients")
		for i := range 10 {
			_, err := log.Append(ctxA, tenancy.AuditEvent{Action: "n", Target: fmt.Sprint(i)})
			require.NoError(t, err)
			clk.Advance(24 * time.Hour)
		}
		_, err = log.Truncate(ctxA, clk.Now())
		require.ErrorIs(t, err, tenancy.ErrNotSystem)
		sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "retention"), a)
		require.NoError(t, err)
		n, err := log.Truncate(sys, clk.Now().Add(-5*24*time.Hour))
		require.NoError(t, err)
		require.EqualValues(t, 5, n)
		head, err := log.Verify(ctxA)
		require.NoError(t, err)
		require.EqualValues(t, 6, head.Entries, "five kept and the truncation entry")
		require.EqualValues(t, 11, head.Seq)
		// The chain continues after the cut.
		_, err = log.Append(ctxA, tenancy.AuditEvent{Action: "after"})
		require.NoError(t, err)
		clk.Advance(time.Hour)
		n, err = log.Truncate(sys, clk.Now())
		require.NoError(t, err)
		require.EqualValues(t, 7, n)
		_, err = log.Append(ctxA, tenancy.AuditEvent{Action: "after-empty"})
		require.NoError(t, err)
		head, err = log.Verify(ctxA)
		require.NoError(t, err)
		require.EqualValues(t, 14, head.Seq)
		require.EqualValues(t, 2, head.Entries, "the second truncation entry and the last append")

		// Cutting the start of the log by hand and forging a checkpoint is
		// found: no truncation entry vouches for it.
		b := tenancy.NewID()
		ctxB := ownerOf(b)
		for i := range 4 {
			_, err := log.Append(ctxB, tenancy.AuditEvent{Action: "n", Target: fmt.Sprint(i)})
			require.NoError(t, err)
		}
		entries, err := log.List(ctxB, tenancy.AuditListOptions{})
		require.NoError(t, err)
		tamper(t, db, ctxB, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "DELETE FROM socialcrm_audit_log WHERE tenant_id = ? AND seq <= 2", b); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO socialcrm_audit_checkpoints (tenant_id, seq, hash, at) VALUES (?, 2, ?, ?)", b, entries[1].Hash, entries[1].At)
			return err
		})
		_, err = log.Verify(ctxB)
		var te *tenancy.TamperError
		require.ErrorAs(t, err, &te)
		require.EqualValues(t, 2, te.Seq)
	})
}

func TestValidateID(t *testing.T) {
	id := tenancy.NewID()
	require.NoError(t, tenancy.ValidateID(id))
	for _, bad := range []string{"", id[:35], id + "0", strings.ToUpper(id), strings.ReplaceAll(id, "-", "_"),
		"0123456789ab-cdef-0123-4567-89abcdef0123", "g" + id[1:], " " + id[1:]} {
		require.ErrorIs(t, tenancy.ValidateID(bad), tenancy.ErrInvalidTenant, "%q", bad)
	}
}

func ownerOf(tenant string) context.Context {
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenant, Role: tenancy.RoleOwner})
}

// TestLockoutHoldsUnderParallelAttempts: parallel wrong passwords must
// count, one by one, towards the lockout.
func TestLockoutHoldsUnderParallelAttempts(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		s, err := tenancy.NewStore(db, cheapPasswords, tenancy.WithLockout(tenancy.Lockout{MaxFailures: 3, Window: time.Hour, Duration: time.Hour}))
		require.NoError(t, err)
		tn, _ := signUp(t, s, "Acme")
		const attempts = 6
		var wg sync.WaitGroup
		results := make([]error, attempts)
		for i := range attempts {
			wg.Go(func() {
				_, results[i] = s.Authenticate(context.Background(), tn.ID, "owner@acme.example", fmt.Sprintf("wrong password %d", i), tenancy.RequestInfo{})
			})
		}
		wg.Wait()
		locked := 0
		for _, err := range results {
			if errors.Is(err, tenancy.ErrLocked) {
				locked++
			} else {
				require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
			}
		}
		require.Equal(t, attempts-2, locked, "the third failure locks; every later attempt finds the lock")
		_, err = s.Authenticate(context.Background(), tn.ID, "owner@acme.example", ownerPassword, tenancy.RequestInfo{})
		require.ErrorIs(t, err, tenancy.ErrLocked, "the right password does not get through a lock")
	})
}

func TestHashesNeverPrint(t *testing.T) {
	m := tenancy.Member{Email: "a@b.example", PasswordHash: "$2a$12$canaryhashvalue"}
	k := tenancy.APIKey{Name: "k", Hash: "c4n4ryc4n4ry"}
	var logged strings.Builder
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("member", "m", m, "k", k, "h", m.PasswordHash)
	js, _ := json.Marshal(map[string]any{"m": m, "k": k, "h": m.PasswordHash})
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s %q %x", m, m, k, m.PasswordHash, k.Hash, m.PasswordHash), logged.String(), string(js)} {
		require.NotContains(t, out, "canary")
		require.NotContains(t, out, "c4n4ry")
	}
}

// Text no name or address needs — NUL and other control characters, invalid
// UTF-8, overlong values — is refused with a ValidationError naming the
// field and writes nothing; at login it is a wrong password like any other.
func TestTextFieldsRefuseControlCharactersAndOverlongValues(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		s, err := tenancy.NewStore(db, cheapPasswords, tenancy.WithClock(newClock().Now))
		require.NoError(t, err)
		long := strings.Repeat("n", tenancy.MaxNameLen+1)
		for _, bad := range []struct {
			field string
			req   tenancy.SignUp
		}{
			{"TenantName", tenancy.SignUp{TenantName: "Acme\x00", Owner: tenancy.NewMember{Email: "o@acme.example", Name: "O", Password: ownerPassword}}},
			{"TenantName", tenancy.SignUp{TenantName: long, Owner: tenancy.NewMember{Email: "o@acme.example", Name: "O", Password: ownerPassword}}},
			{"TenantName", tenancy.SignUp{TenantName: "Acme\xff", Owner: tenancy.NewMember{Email: "o@acme.example", Name: "O", Password: ownerPassword}}},
			{"Name", tenancy.SignUp{TenantName: "Acme", Owner: tenancy.NewMember{Email: "o@acme.example", Name: "O\x00", Password: ownerPassword}}},
			{"Name", tenancy.SignUp{TenantName: "Acme", Owner: tenancy.NewMember{Email: "o@acme.example", Name: long, Password: ownerPassword}}},
			{"Email", tenancy.SignUp{TenantName: "Acme", Owner: tenancy.NewMember{Email: "o\x00@acme.example", Name: "O", Password: ownerPassword}}},
			{"Email", tenancy.SignUp{TenantName: "Acme", Owner: tenancy.NewMember{Email: strings.Repeat("o", 250) + "@acme.example", Name: "O", Password: ownerPassword}}},
		} {
			_, _, err := s.CreateTenant(context.Background(), bad.req)
			var verr *tenancy.ValidationError
			require.ErrorAs(t, err, &verr, "%q", bad.req.TenantName)
			require.Equal(t, bad.field, verr.Field)
		}
		sys := tenancy.System(context.Background(), "test")
		all, err := s.Tenants(sys, tenancy.TenantFilter{})
		require.NoError(t, err)
		require.Empty(t, all, "a refused sign-up writes nothing")

		tn, owner := signUp(t, s, "Acme")
		_, _, err = s.CreateAPIKey(owner, "key\x00", tenancy.RoleStaff)
		var verr *tenancy.ValidationError
		require.ErrorAs(t, err, &verr)
		_, err = s.Authenticate(context.Background(), tn.ID, "owner@acme.example\x00", ownerPassword, tenancy.RequestInfo{})
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
	})
}
