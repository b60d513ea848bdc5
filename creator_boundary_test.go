package socialcrm_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/url"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// creatorWorld is one agency tenant with two creators, each of whom
// connected their own TikTok account through the real Flow against the
// emulator and synced it (media, a snapshot, raw answers).
type creatorWorld struct {
	sdk          *socialcrm.SDK
	db           *dbtest.DB
	tid          string
	staff        context.Context
	ann, bob     context.Context // the two creators
	annC, bobC   social.Connection
	annID, bobID string // their member ids
	tt           *tiktoktest.Server
	prov         *tiktok.Provider
	cfg          tiktok.Config
	clk          *fakeclock.Clock
}

func newCreatorWorld(t *testing.T, db *dbtest.DB) *creatorWorld {
	t.Helper()
	ctx := context.Background()
	w := &creatorWorld{db: db, clk: fakeclock.New()}
	w.clk.Set(time.Date(2026, 12, 9, 3, 0, 0, 0, time.UTC))
	const redirect = "https://crm.example/callback"
	w.tt = tiktoktest.Start(t, tiktoktest.WithClock(w.clk.Now),
		tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURIs: []string{redirect},
			Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: "open-ann", DisplayName: "Ann on TikTok", FollowerCount: 10}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: "open-bob", DisplayName: "Bob on TikTok", FollowerCount: 20}))
	for _, u := range []string{"open-ann", "open-bob"} {
		require.NoError(t, w.tt.AddVideo(u, tiktoktest.Video{ID: "70000000000000000" + u[5:], CreateTime: w.clk.Now().Add(-time.Hour),
			Title: "video of " + u, ViewCount: 100, LikeCount: 5}))
	}
	w.cfg = tiktok.Config{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURL: redirect, BaseURL: w.tt.BaseURL(), AuthorizeURL: w.tt.AuthorizeURL()}
	var err error
	w.prov, err = tiktok.NewProvider(w.cfg, tiktok.WithHTTPClient(w.tt.Client()), tiktok.WithClock(w.clk.Now))
	require.NoError(t, err)
	w.sdk, err = socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: w.clk.Now,
		Providers: []social.Provider{w.prov}})
	require.NoError(t, err)
	tenant, owner, err := w.sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Agency",
		Owner: tenancy.NewMember{Email: "owner@agency.example", Name: "Owner"}})
	require.NoError(t, err)
	w.tid = tenant.ID
	w.staff = tenancy.WithPrincipal(ctx, owner.Principal())
	for _, c := range []struct {
		email string
		ctx   *context.Context
		id    *string
	}{{"ann@creators.example", &w.ann, &w.annID}, {"bob@creators.example", &w.bob, &w.bobID}} {
		m, err := w.sdk.Tenants.AddMember(w.staff, tenancy.NewMember{Email: c.email, Name: c.email[:3], Role: tenancy.RoleCreator})
		require.NoError(t, err)
		*c.ctx, *c.id = tenancy.WithPrincipal(ctx, m.Principal()), m.ID
	}
	w.annC = w.connect(t, w.ann, "open-ann")
	w.bobC = w.connect(t, w.bob, "open-bob")
	for _, c := range []struct {
		ctx context.Context
		id  string
	}{{w.ann, w.annC.ID}, {w.bob, w.bobC.ID}} {
		_, _, err := w.client(t, c.ctx, c.id).Sync(c.ctx)
		require.NoError(t, err)
	}
	return w
}

// connect runs the TikTok flow under ctx for the emulator's user openID.
func (w *creatorWorld) connect(t *testing.T, ctx context.Context, openID string) social.Connection {
	t.Helper()
	c, err := w.tryConnect(t, ctx, openID)
	require.NoError(t, err)
	return c
}

func (w *creatorWorld) tryConnect(t *testing.T, ctx context.Context, openID string) (social.Connection, error) {
	t.Helper()
	flow, err := w.sdk.Social.NewFlow(w.prov, social.FlowConfig{Features: []string{"profile", "stats", "video.read"}, Purposes: []string{"analytics"}})
	require.NoError(t, err)
	authURL, err := flow.Begin(ctx)
	require.NoError(t, err)
	cb, err := w.tt.Consent(authURL, openID, tiktoktest.ConsentOptions{})
	require.NoError(t, err)
	u, err := url.Parse(cb)
	require.NoError(t, err)
	return flow.Complete(ctx, u.Query())
}

func (w *creatorWorld) client(t *testing.T, ctx context.Context, id string) *tiktok.Client {
	t.Helper()
	sess, err := w.sdk.Social.Session(ctx, id, w.prov)
	require.NoError(t, err)
	c, err := tiktok.New(w.cfg, tiktok.WithHTTPClient(w.tt.Client()), tiktok.WithClock(w.clk.Now), tiktok.WithSession(sess), tiktok.WithRawResponses())
	require.NoError(t, err)
	return c
}

func ids(cs []social.Connection) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// TestCreatorReachesOnlyOwnConnections: two creators of one agency each
// connected their own TikTok account through the Flow. Each lists, gets,
// finds, reads the media, snapshots and raw answers of, builds a client
// for, syncs and disconnects only its own connection; the other's is
// ErrNotFound (or empty), never data. Staff see both. A creator connecting
// the other's account does not take it over (ErrAccountTaken), and CRM
// records, data-subject requests and member management refuse creators.
func TestCreatorReachesOnlyOwnConnections(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newCreatorWorld(t, db)
		s := w.sdk.Social
		require.Equal(t, w.annID, w.annC.MemberID, "the connection records the creator who connected it")
		require.Equal(t, w.bobID, w.bobC.MemberID)

		staff, err := s.List(w.staff, social.ConnectionFilter{}, social.ListOptions{})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{w.annC.ID, w.bobC.ID}, ids(staff.Items), "staff see every creator's connection")
		for _, c := range []struct {
			ctx         context.Context
			own, other  social.Connection
			otherOpenID string
		}{{w.ann, w.annC, w.bobC, "open-bob"}, {w.bob, w.bobC, w.annC, "open-ann"}} {
			page, err := s.List(c.ctx, social.ConnectionFilter{}, social.ListOptions{})
			require.NoError(t, err)
			require.Equal(t, []string{c.own.ID}, ids(page.Items))
			n := 0
			for conn, err := range s.All(c.ctx, social.ConnectionFilter{Platform: tiktok.Platform}, social.ListOptions{}) {
				require.NoError(t, err)
				require.Equal(t, c.own.ID, conn.ID)
				n++
			}
			require.EqualValues(t, 1, n)
			got, err := s.Get(c.ctx, c.own.ID)
			require.NoError(t, err)
			require.NotEmpty(t, got.DisplayName)

			_, err = s.Get(c.ctx, c.other.ID)
			require.ErrorIs(t, err, social.ErrNotFound)
			_, err = s.Find(c.ctx, tiktok.Platform, c.otherOpenID)
			require.ErrorIs(t, err, social.ErrNotFound)
			_, err = s.Session(c.ctx, c.other.ID, w.prov)
			require.ErrorIs(t, err, social.ErrNotFound, "no client, so no sync and no publish, through another's connection")
			_, err = s.TokenSource(c.ctx, c.other.ID, w.prov).Token()
			require.Error(t, err)
			derived, err := s.Derived(c.ctx, c.other.ID)
			require.NoError(t, err)
			require.Empty(t, derived)
			require.NoError(t, s.MarkSynced(c.ctx, c.other.ID, "renamed by another", ""))
			require.NoError(t, s.MarkNeedsReauth(c.ctx, c.other.ID, "by another"))

			media, err := s.Media(c.ctx, c.other.ID)
			require.NoError(t, err)
			require.Empty(t, media)
			snaps, err := s.Snapshots(c.ctx, c.other.ID)
			require.NoError(t, err)
			require.Empty(t, snaps)
			raws, err := s.RawResponseBodies(c.ctx, c.other.ID)
			require.NoError(t, err)
			require.Empty(t, raws)
			nraw, err := s.RawResponses(c.ctx, c.other.ID)
			require.NoError(t, err)
			require.Zero(t, nraw)

			media, err = s.Media(c.ctx, c.own.ID)
			require.NoError(t, err)
			require.Len(t, media, 1)
			snaps, err = s.Snapshots(c.ctx, c.own.ID)
			require.NoError(t, err)
			require.Len(t, snaps, 1)
			nraw, err = s.RawResponses(c.ctx, c.own.ID)
			require.NoError(t, err)
			require.NotZero(t, nraw)

			_, err = w.tryConnect(t, c.ctx, c.otherOpenID)
			require.ErrorIs(t, err, social.ErrAccountTaken, "a creator does not take over another's account")
			require.ErrorIs(t, err, tenancy.ErrForbidden)

			_, err = w.sdk.CRM.Contacts().List(c.ctx, crm.ContactFilter{}, crm.ListOptions{})
			require.ErrorIs(t, err, tenancy.ErrForbidden, "a creator reaches no CRM record")
			_, err = w.sdk.Retention.Submit(c.ctx, retention.Request{Kind: retention.KindAccess, Subject: map[string]string{"connection_id": c.other.ID}})
			require.ErrorIs(t, err, tenancy.ErrForbidden, "a creator files no data-subject request")
			_, err = w.sdk.Retention.Requests(c.ctx, retention.RequestFilter{}, retention.ListOptions{})
			require.ErrorIs(t, err, tenancy.ErrForbidden)
			_, err = w.sdk.Retention.Export(c.ctx, "any", &bytes.Buffer{})
			require.ErrorIs(t, err, tenancy.ErrForbidden)
			_, err = w.sdk.Tenants.Members(c.ctx)
			require.ErrorIs(t, err, tenancy.ErrForbidden)
		}

		// The other's writes above changed nothing.
		for _, c := range []social.Connection{w.annC, w.bobC} {
			got, err := s.Get(w.staff, c.ID)
			require.NoError(t, err)
			require.Equal(t, social.StatusActive, got.Status)
			require.NotEqual(t, "renamed by another", got.DisplayName)
			media, err := s.Media(w.staff, c.ID)
			require.NoError(t, err)
			require.Len(t, media, 1, "staff read every creator's media")
		}

		// Ann disconnects her own; Bob's disconnect of hers is not found.
		_, err = s.Disconnect(w.bob, w.annC.ID, w.prov)
		require.ErrorIs(t, err, social.ErrNotFound)
		done, err := s.Disconnect(w.ann, w.annC.ID, w.prov)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, done.Status)
		got, err := s.Get(w.staff, w.bobC.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		_, _, err = w.client(t, w.bob, w.bobC.ID).Sync(w.bob)
		require.NoError(t, err, "Bob still syncs his own")

		// A creator principal without a member (an API key with the
		// creator role) reaches nothing.
		keyless := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: w.tid, Role: tenancy.RoleCreator})
		_, err = s.List(keyless, social.ConnectionFilter{}, social.ListOptions{})
		require.ErrorIs(t, err, tenancy.ErrForbidden)
	}, migrated)
}

// TestCreatorAttackerBunCode: ordinary bun code under a creator's
// principal — plain selects, Count and Exists with tenancy.Scope, a
// subquery, a join, raw SQL, updates, deletes, inserts and an upsert —
// reaches only that creator's connections and platform data, or is
// refused; the tenant-wide predicate that is enough for staff is not
// enough for a creator. A creator cannot change app.member_id, and on
// PostgreSQL row-level security confines raw SQL on a handle without the
// Guard to the creator's rows (creatorRowSecurityOf).
func TestCreatorAttackerBunCode(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newCreatorWorld(t, db)
		run := func(fn func(ctx context.Context, tx bun.Tx) error) error {
			return tenancy.RunInTx(w.ann, w.sdk.DB, nil, fn)
		}
		refused := func(err error) {
			t.Helper()
			require.Error(t, err)
			require.True(t, errors.Is(err, tenancy.ErrUnscoped) || errors.Is(err, tenancy.ErrForbidden), "refused with a typed error: %v", err)
		}

		var cs []social.Connection
		require.NoError(t, run(func(ctx context.Context, tx bun.Tx) error { return tx.NewSelect().Model(&cs).Scan(ctx) }))
		require.Equal(t, []string{w.annC.ID}, ids(cs))

		var n int64
		require.NoError(t, run(func(ctx context.Context, tx bun.Tx) (err error) {
			n, err = tx.NewSelect().Model((*social.Connection)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
			return err
		}))
		require.EqualValues(t, 1, n, "Count with Scope counts the creator's own")
		var exists bool
		require.NoError(t, run(func(ctx context.Context, tx bun.Tx) (err error) {
			exists, err = tx.NewSelect().Model((*social.Media)(nil)).Apply(tenancy.Scope(ctx)).Where("connection_id = ?", w.bobC.ID).Exists(ctx)
			return err
		}))
		require.False(t, exists)

		// The tenant predicate alone: enough for staff, refused for a
		// creator.
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewSelect().Model((*social.Connection)(nil)).Where("tenant_id = ?", w.tid).Count(ctx)
			return err
		}))
		require.NoError(t, tenancy.RunInTx(w.staff, w.sdk.DB, nil, func(ctx context.Context, tx bun.Tx) (err error) {
			n, err = tx.NewSelect().Model((*social.Connection)(nil)).Where("tenant_id = ?", w.tid).Count(ctx)
			return err
		}))
		require.EqualValues(t, 2, n)
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewSelect().Model((*social.Snapshot)(nil)).Where("tenant_id = ?", w.tid).Exists(ctx)
			return err
		}))
		// Naming the other creator is refused, naming oneself runs.
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT count(*) FROM socialcrm_social_connections WHERE tenant_id = ? AND member_id = ?", w.tid, w.bobID).Scan(ctx, &n)
		}))
		require.NoError(t, run(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT count(*) FROM socialcrm_social_connections WHERE tenant_id = ? AND member_id = ?", w.tid, w.annID).Scan(ctx, &n)
		}))
		require.EqualValues(t, 1, n)

		// A subquery, a join and a CTE over another table.
		var media []social.Media
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			sub := tx.NewSelect().TableExpr("socialcrm_social_connections AS c").Column("c.id").Where("c.tenant_id = ?", w.tid)
			return tx.NewSelect().Model(&cs).Where("id IN (?)", sub).Scan(ctx)
		}))
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&cs).
				Join("JOIN socialcrm_social_media AS m ON m.tenant_id = scn.tenant_id").Scan(ctx)
		}))
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("WITH x AS (SELECT * FROM socialcrm_social_raw_responses WHERE tenant_id = ?) SELECT count(*) FROM x", w.tid).Scan(ctx, &n)
		}))
		require.NoError(t, run(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&media).
				Join("JOIN socialcrm_social_connections AS c ON c.tenant_id = smd.tenant_id AND c.member_id = smd.member_id AND c.id = smd.connection_id").Scan(ctx)
		}), "a join confined to the creator's member runs")
		require.Len(t, media, 1)
		require.Equal(t, w.annC.ID, media[0].ConnectionID)

		// Writes: the hooks confine bun's, the Guard refuses raw ones, and
		// a row naming another member is refused.
		var affected int64
		require.NoError(t, run(func(ctx context.Context, tx bun.Tx) error {
			res, err := tx.NewUpdate().Model((*social.Connection)(nil)).Set("status = ?", social.StatusRevoked).Where("id = ?", w.bobC.ID).Exec(ctx)
			if err == nil {
				affected, _ = res.RowsAffected()
			}
			return err
		}))
		require.Zero(t, affected)
		require.NoError(t, run(func(ctx context.Context, tx bun.Tx) error {
			res, err := tx.NewDelete().Model((*social.Media)(nil)).Where("connection_id = ?", w.bobC.ID).Exec(ctx)
			if err == nil {
				affected, _ = res.RowsAffected()
			}
			return err
		}))
		require.Zero(t, affected)
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw("UPDATE socialcrm_social_connections SET member_id = ? WHERE tenant_id = ? AND id = ?", w.annID, w.tid, w.bobC.ID).Exec(ctx)
			return err
		}))
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewUpdate().Model((*social.Connection)(nil)).Set("member_id = ?", w.bobID).Where("id = ?", w.annC.ID).Exec(ctx)
			return err
		}))
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			sn := social.Snapshot{ID: tenancy.NewID(), ConnectionID: w.bobC.ID, Platform: tiktok.Platform, TakenAt: w.clk.Now(), Purposes: social.Purposes{}}
			sn.MemberID = w.bobID
			_, err := tx.NewInsert().Model(&sn).Exec(ctx)
			return err
		}))
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw("DELETE FROM socialcrm_social_media WHERE tenant_id = ?", w.tid).Exec(ctx)
			return err
		}))
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw(`INSERT INTO socialcrm_social_snapshots (tenant_id, id, connection_id, platform, taken_at, engagement_rate, purposes, member_id)
				VALUES (?, ?, ?, 'tiktok', ?, 0, '', ?)`, w.tid, tenancy.NewID(), w.bobC.ID, w.clk.Now(), w.bobID).Exec(ctx)
			return err
		}))
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw(`INSERT INTO socialcrm_social_snapshots (tenant_id, id, connection_id, platform, taken_at, engagement_rate, purposes)
				VALUES (?, ?, ?, 'tiktok', ?, 0, '')`, w.tid, tenancy.NewID(), w.bobC.ID, w.clk.Now()).Exec(ctx)
			return err
		})) // an insert that names no member is refused for a creator
		// An upsert that would meet Bob's media row does not: the conflict
		// target names the member.
		err := run(func(ctx context.Context, tx bun.Tx) error {
			m := social.Media{ConnectionID: w.bobC.ID, ExternalID: "70000000000000000bob", Platform: tiktok.Platform, Kind: "video", Purposes: social.Purposes{}, FetchedAt: w.clk.Now()}
			_, err := tx.NewInsert().Model(&m).On("CONFLICT (tenant_id, member_id, connection_id, external_id) DO UPDATE").
				Set("views = 999").Exec(ctx)
			return err
		})
		require.Error(t, err, "the row collides with Bob's key and is not updated")
		refused(run(func(ctx context.Context, tx bun.Tx) error {
			m := social.Media{ConnectionID: w.bobC.ID, ExternalID: "70000000000000000bob", Platform: tiktok.Platform, Kind: "video", Purposes: social.Purposes{}, FetchedAt: w.clk.Now()}
			_, err := tx.NewInsert().Model(&m).On("CONFLICT (tenant_id, connection_id, external_id) DO UPDATE").Set("views = 999").Exec(ctx)
			return err
		}))

		// Nothing of Bob's changed.
		got, err := w.sdk.Social.Get(w.staff, w.bobC.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.Equal(t, w.bobID, got.MemberID)
		media, err = w.sdk.Social.Media(w.staff, w.bobC.ID)
		require.NoError(t, err)
		require.Len(t, media, 1)
		require.Equal(t, int64(100), media[0].Views.N)

		creatorRowSecurityOf(t, db, w)
	}, migrated)
}

// creatorRowSecurityOf checks, after TestCreatorAttackerBunCode, that on
// PostgreSQL row-level security holds the member boundary too. On a
// handle without the Guard, raw SQL in a creator's RunInTx sees, changes
// and writes only the creator's rows, while staff see both creators'; on
// the guarded handle a creator's statement cannot change app.member_id.
func creatorRowSecurityOf(t *testing.T, db *dbtest.DB, w *creatorWorld) {
	for _, q := range []string{"SELECT set_config('app.member_id', '', true)", "SET LOCAL app.member_id = ''", "RESET app.member_id",
		"SELECT set_config('app.' || 'member_id', ?, true)"} {
		err := tenancy.RunInTx(w.ann, w.sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, q, w.bobID)
			return err
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped, q)
	}
	if db.Name != "postgres" {
		return // SQLite has no row-level security: the hooks and the Guard hold it
	}
	// No Guard, no hooks in raw SQL: a handle whose driver folds the
	// settings into each statement's round trip, and a plain pgx one
	// on which RunInTx sets them with set_config.
	plain, err := sql.Open("pgx", db.DSN())
	require.NoError(t, err)
	t.Cleanup(func() { plain.Close() })
	for _, raw := range []*bun.DB{db.Reopen(t), bun.NewDB(plain, pgdialect.New())} {
		creatorRowSecurity(t, w, raw)
	}
}

func creatorRowSecurity(t *testing.T, w *creatorWorld, raw *bun.DB) {
	count := func(ctx context.Context, table string) (n int) {
		t.Helper()
		require.NoError(t, tenancy.RunInTx(ctx, raw, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		}))
		return n
	}
	for _, table := range []string{social.TableConnections, social.TableMedia, social.TableSnapshots, social.TableRawResponses} {
		ann, bob := count(w.ann, table), count(w.bob, table)
		require.NotZero(t, ann, table)
		require.NotZero(t, bob, table)
		require.Equal(t, ann+bob, count(w.staff, table), table)
		var n int
		require.NoError(t, tenancy.RunInTx(w.ann, raw, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE member_id <> ?", w.annID).Scan(&n)
		}))
		require.Zero(t, n, "%s: no other member's row is visible to a creator", table)
	}
	var affected int64
	require.NoError(t, tenancy.RunInTx(w.ann, raw, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE socialcrm_social_connections SET status = 'revoked' WHERE id = ?", w.bobC.ID)
		if err == nil {
			affected, _ = res.RowsAffected()
		}
		return err
	}))
	require.Zero(t, affected)
	err := tenancy.RunInTx(w.ann, raw, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE socialcrm_social_connections SET member_id = ? WHERE id = ?", w.bobID, w.annC.ID)
		return err
	})
	require.Error(t, err, "a creator cannot give its row to another member")
	// A creator's scope ends with its transaction: staff on the same
	// pooled connections see every row again.
	for range 3 {
		require.Equal(t, 1, count(w.ann, social.TableConnections))
		require.Equal(t, 2, count(w.staff, social.TableConnections))
	}
	got, err := w.sdk.Social.Get(w.staff, w.bobC.ID)
	require.NoError(t, err)
	require.Equal(t, social.StatusActive, got.Status)
}

// TestCreatorDerivedConnections: the Facebook Page and Instagram account a
// creator's Facebook Login connects (ConnectDerived) belong to that creator
// too: the creator lists and syncs all three, another creator sees none,
// and the owner sees them all.
func TestCreatorDerivedConnections(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		owner := w.ctx
		var creators []tenancy.Member
		for _, e := range []string{"ann@creators.example", "bob@creators.example"} {
			m, err := w.sdk.Tenants.AddMember(owner, tenancy.NewMember{Email: e, Name: e[:3], Role: tenancy.RoleCreator})
			require.NoError(t, err)
			creators = append(creators, m)
		}
		ann := tenancy.WithPrincipal(context.Background(), creators[0].Principal())
		bob := tenancy.WithPrincipal(context.Background(), creators[1].Principal())
		w.ctx = ann
		w.connectMeta()
		for _, kind := range []string{"user", "page", "instagram"} {
			require.Equal(t, creators[0].ID, w.conns[kind].MemberID, kind)
		}
		_, _, err := w.metaClient("page").Sync(ann)
		require.NoError(t, err, "the creator syncs its own Page")

		list := func(ctx context.Context) []string {
			p, err := w.sdk.Social.List(ctx, social.ConnectionFilter{}, social.ListOptions{})
			require.NoError(t, err)
			return ids(p.Items)
		}
		require.Len(t, list(ann), 3)
		require.Len(t, list(owner), 3)
		require.Empty(t, list(bob))
		_, err = w.sdk.Social.Get(bob, w.conns["page"].ID)
		require.ErrorIs(t, err, social.ErrNotFound)
		snaps, err := w.sdk.Social.Snapshots(bob, w.conns["page"].ID)
		require.NoError(t, err)
		require.Empty(t, snaps)
		snaps, err = w.sdk.Social.Snapshots(ann, w.conns["page"].ID)
		require.NoError(t, err)
		require.NotEmpty(t, snaps)
	}, migrated)
}
