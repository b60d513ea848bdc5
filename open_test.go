package socialcrm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestOpenWiresTheTenantLifecycle drives a tenant from sign-up to purge
// through the wired SDK: closure, grace, purge by the retention engine, and
// the purge hook destroying the tenant's data key (crypto-shredding).
func TestOpenWiresTheTenantLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		kek := testkit.NewKEK(t)
		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: clk.Now, InsecurePasswordCost: 4})
		require.NoError(t, err)
		_, err = socialcrm.Open(ctx, socialcrm.Config{DB: db.DB})
		require.Error(t, err, "a KEK is required")

		tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Acme",
			Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada", Password: "long enough secret"}})
		require.NoError(t, err)
		cost, err := bcrypt.Cost([]byte(owner.PasswordHash))
		require.NoError(t, err)
		require.Equal(t, 4, cost, "Open passes InsecurePasswordCost to the tenancy store")
		octx := tenancy.WithPrincipal(ctx, owner.Principal())
		bind := vault.Binding{Record: "conn-1", Field: "access_token"}
		sealed, err := sdk.Vault.Seal(octx, []byte("canary-token"), bind)
		require.NoError(t, err)
		contact, err := sdk.CRM.Contacts().Create(octx, crm.ContactInput{FirstName: "Grace", Email: "grace@example.com"})
		require.NoError(t, err)
		got0, err := sdk.CRM.Contacts().Get(octx, contact.ID)
		require.NoError(t, err)
		require.Equal(t, "grace@example.com", got0.Email, "the CRM seals with the SDK's vault")

		_, err = sdk.Tenants.CloseTenant(octx, 30*24*time.Hour)
		require.NoError(t, err)
		sys := tenancy.System(ctx, "retention")
		res, err := sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Empty(t, res, "nothing is purged during the grace period")
		_, err = sdk.Vault.Open(octx, sealed, bind)
		require.NoError(t, err, "the data stays readable during the grace period")

		clk.Advance(31 * 24 * time.Hour)
		res, err = sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		_, err = sdk.Vault.Open(octx, sealed, bind)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed, "the purge destroyed the tenant's key")
		_, err = sdk.CRM.Contacts().Get(octx, contact.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "the purge erased the tenant's contacts")
		got, err := sdk.Tenants.Tenants(sys, tenancy.TenantFilter{Status: tenancy.StatusPurged})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, tn.ID, got[0].ID)

		// Opening again on a migrated database is fine.
		_, err = socialcrm.Open(ctx, socialcrm.Config{DB: db.Reopen(t), KEK: kek, Now: clk.Now})
		require.NoError(t, err)
	}, migrated)
}

// TestDeauthorizedConnectionTakesItsDataAlong: a disconnect starts the
// connection's 30-day clock; when the sweep erases the connection, the
// media, snapshots and raw responses fetched through it go too.
func TestDeauthorizedConnectionTakesItsDataAlong(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		kek := testkit.NewKEK(t)
		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: clk.Now})
		require.NoError(t, err)
		_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Acme",
			Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada"}})
		require.NoError(t, err)
		octx := tenancy.WithPrincipal(ctx, owner.Principal())

		now := clk.Now()
		conns := []*social.Connection{
			{ID: "gone", Platform: "tiktok", AccountID: "open-1", Status: social.StatusActive, CreatedAt: now, UpdatedAt: now},
			{ID: "kept", Platform: "tiktok", AccountID: "open-2", Status: social.StatusActive, CreatedAt: now, UpdatedAt: now},
		}
		for _, c := range conns {
			sealConnAccount(t, sdk.Vault, octx, c)
		}
		require.NoError(t, tenancy.RunInTx(octx, db, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, c := range conns {
				if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
					return err
				}
				m := &social.Media{ConnectionID: c.ID, ExternalID: "v-" + c.ID, Platform: "tiktok", Kind: "video", FetchedAt: now}
				if _, err := tx.NewInsert().Model(m).Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		}))
		require.NoError(t, sdk.Retention.RecordEvent(octx, "connection.deauthorized", "connection_id", "gone"))

		sys := tenancy.System(ctx, "retention")
		_, err = sdk.Retention.Sweep(sys, clk.Now().Add(29*24*time.Hour))
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"v-gone", "v-kept"}, mediaIDs(t, db, octx), "within 30 days nothing goes")
		_, err = sdk.Retention.Sweep(sys, clk.Now().Add(31*24*time.Hour))
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"v-kept"}, mediaIDs(t, db, octx), "the deauthorized connection's media went with it")
	}, migrated)
}

func mediaIDs(t *testing.T, db bun.IDB, ctx context.Context) []string {
	t.Helper()
	var ms []social.Media
	require.NoError(t, tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&ms).Scan(ctx)
	}))
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ExternalID)
	}
	return ids
}

// TestOpenWiresMeta: the Meta callbacks' table is migrated and covered by
// a category with a default rule, and the SDK builds the Meta inbox and
// callbacks over its own stores.
func TestOpenWiresMeta(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		kek := testkit.NewKEK(t)
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: fakeclock.New().Now})
		require.NoError(t, err)

		var n int
		require.NoError(t, db.NewRaw("SELECT count(*) FROM ?", bun.Ident(meta.TableDeletions)).Scan(ctx, &n))
		var rule *retention.Rule
		for _, r := range sdk.Retention.Policy().Rules {
			if r.Category == "meta.deletion_request" {
				rule = &r
			}
		}
		require.NotNil(t, rule, "the default policy keeps Meta's deletion records")
		require.True(t, rule.Keep)
		require.Equal(t, socialcrm.DeletionRequestPeriod, rule.Period)

		in, err := sdk.MetaInbox()
		require.NoError(t, err)
		require.NotNil(t, in)
		cb, err := sdk.MetaCallbacks(meta.Config{AppID: "1", AppSecret: vault.NewSecret([]byte("s"))}, "https://crm.example/meta/deletion")
		require.NoError(t, err)
		_, err = cb.DeletionStatus(ctx, "NOPE")
		require.ErrorIs(t, err, meta.ErrUnknownCode)
		_, err = sdk.MetaCallbacks(meta.Config{AppID: "1", AppSecret: vault.NewSecret([]byte("s"))}, "relative")
		require.ErrorIs(t, err, meta.ErrConfig)
	}, migrated)
}
