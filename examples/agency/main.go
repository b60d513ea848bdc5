// Command agency is a vertical example: a creator agency's CRM built on
// socialcrm. The agency keeps its own records (Creator, Mission), declares
// them to tenancy and retention, lets its creators connect TikTok
// read-only, syncs their accounts, and shows each creator's follower trend
// and an engagement-rate leaderboard.
//
//	go run ./examples/agency
//
// With no configuration it runs on a throw-away SQLite file against the
// in-process TikTok emulator (sandbox: four weekly syncs are simulated on a
// simulated clock) and exits. -db names a SQLite file or a postgres:// URL
// to keep the data. With TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET and
// TIKTOK_REDIRECT_URL set it talks to the real TikTok instead: it prints
// the consent URL, reads back the URL TikTok redirected to, and syncs that
// account once. sandbox.go holds what only the no-configuration run needs.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// Creator is a creator the agency represents. Embedding tenancy.Owned
// scopes every query to the agency (the tenant).
type Creator struct {
	bun.BaseModel `bun:"table:agency_creators,alias:acr"`
	tenancy.Owned
	ID string `bun:"id,pk"`
	// Name is stored only sealed by the vault (NameSealed, bound to the
	// tenant, the creator and "name"), so that destroying the agency's
	// key makes it unreadable in every backup.
	Name       string `bun:"-"`
	NameSealed []byte `bun:"name_sealed"`
	// LegacyName is the name column of older databases, where names were
	// kept in clear; sealNames empties it. Always "" when written now.
	LegacyName string `bun:"name,notnull"`
	Email      string `bun:"email,notnull"`
	// ConnectionID is the creator's TikTok connection (social.Connection).
	ConnectionID string    `bun:"connection_id,nullzero"`
	SignedAt     time.Time `bun:"signed_at,notnull"`
}

// Mission is a brand deal the agency negotiated for a creator.
type Mission struct {
	bun.BaseModel `bun:"table:agency_missions,alias:ams"`
	tenancy.Owned
	ID        string    `bun:"id,pk"`
	CreatorID string    `bun:"creator_id,notnull"`
	Brand     string    `bun:"brand,notnull"`
	FeeCents  int64     `bun:"fee_cents,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// categories declares the agency's tables to the retention engine: what
// they hold, why, and how a creator's rows are found for access, export
// and erasure requests.
// The creator's sealed name is exported opened through the vault
// *v holds once Open returned.
func categories(v **vault.Vault) []retention.Category {
	return []retention.Category{
		{Name: "agency.creator", Table: "agency_creators", Time: "signed_at",
			Subject: map[string]string{"email": "email", "creator_id": "id", "connection_id": "connection_id"},
			Omit:    []string{"name"},
			Sealed: []retention.SealedColumn{{Column: "name_sealed", As: "name",
				Open: func(ctx context.Context, _ string, id string, b []byte) (string, error) {
					return openName(ctx, *v, id, b)
				}}},
			LegalBasis: "contract (representation agreement)", Purpose: "representing the creator to brands"},
		{Name: "agency.mission", Table: "agency_missions", Time: "created_at",
			Subject: map[string]string{"creator_id": "creator_id",
				"email": "r.creator_id IN (SELECT c.id FROM agency_creators c WHERE c.tenant_id = ?tenant AND c.email = ?value)"},
			LegalBasis: "contract; legal obligation (bookkeeping)", Purpose: "brand missions and their fees"},
	}
}

// migrateAgency creates the agency's tables with bun's migrator, in a
// migration history of its own beside socialcrm's.
func migrateAgency(ctx context.Context, db *bun.DB) error {
	ts := "TIMESTAMP"
	if db.Dialect().Name() == dialect.PG {
		ts = "TIMESTAMPTZ"
	}
	ms := migrate.NewMigrations()
	ms.Add(migrate.Migration{Name: "20261201000000", Comment: "agency_creators_missions",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				for _, s := range []string{
					`CREATE TABLE IF NOT EXISTS agency_creators (tenant_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
						email TEXT NOT NULL, connection_id TEXT, signed_at ` + ts + ` NOT NULL, PRIMARY KEY (tenant_id, id))`,
					`CREATE TABLE IF NOT EXISTS agency_missions (tenant_id TEXT NOT NULL, id TEXT NOT NULL, creator_id TEXT NOT NULL,
						brand TEXT NOT NULL, fee_cents BIGINT NOT NULL, created_at ` + ts + ` NOT NULL, PRIMARY KEY (tenant_id, id))`,
				} {
					if _, err := tx.ExecContext(ctx, s); err != nil {
						return err
					}
				}
				// PostgreSQL row-level security, as on socialcrm's own tables.
				for _, t := range []string{"agency_creators", "agency_missions"} {
					if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
						return err
					}
				}
				return nil
			})
		}})
	ms.Add(migrate.Migration{Name: "20261214070000", Comment: "agency_creator_names_sealed",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			blob := "BLOB"
			if m.DB().Dialect().Name() == dialect.PG {
				blob = "BYTEA"
			}
			_, err := m.DB().ExecContext(ctx, `ALTER TABLE agency_creators ADD COLUMN name_sealed `+blob)
			return err
		}})
	mg := migrate.NewMigrator(db, ms, migrate.WithTableName("agency_migrations"),
		migrate.WithLocksTableName("agency_migration_locks"), migrate.WithMarkAppliedOnSuccess(true))
	if err := mg.Init(ctx); err != nil {
		return err
	}
	_, err := mg.Migrate(ctx)
	return err
}

// options is what run needs; main fills it from flags and the environment,
// the test from its database and emulator.
type options struct {
	DB  *bun.DB
	KEK tink.AEAD
	// Emulator, when set, is the TikTok the creators connect to, on the
	// clock Now; nil means the real TikTok (TikTok and In must be set).
	Emulator *tiktoktest.Server
	Now      func() time.Time
	Advance  func(time.Duration) // moves Now on (emulated runs)
	TikTok   tiktok.Config
	In       io.Reader // where the real run reads the redirected URL
	Out      io.Writer
}

// creatorReport is one creator's line of the report.
type creatorReport struct {
	Name       string
	Requested  social.Scopes // what the consent asked for
	Trend      []social.Snapshot
	Engagement float64 // of the latest snapshot
	// EngagementKnown says the latest snapshot had views to divide by:
	// without them (no snapshot, views the platform did not give, or
	// none) the rate is unknown, ranked last and not averaged as 0.
	EngagementKnown bool
}

// report is what run showed, for the test.
type report struct {
	ConsentURLs []string
	Creators    []creatorReport // leaderboard order: best engagement first
}

// rankCreators orders the leaderboard: best engagement first, creators
// whose engagement is unknown last (not as 0).
func rankCreators(cs []creatorReport) {
	slices.SortStableFunc(cs, func(a, b creatorReport) int {
		if a.EngagementKnown != b.EngagementKnown {
			if a.EngagementKnown {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.Engagement, a.Engagement)
	})
}

func run(ctx context.Context, o options) (*report, error) {
	if err := socialcrm.Migrate(ctx, o.DB); err != nil {
		return nil, err
	}
	if err := migrateAgency(ctx, o.DB); err != nil {
		return nil, err
	}
	// One database role does everything in this example, which Open allows
	// for development only; production runs two (see the README).
	var v *vault.Vault
	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: o.DB, AllowPrivilegedRole: true, KEK: o.KEK, Now: o.Now,
		Models: []any{(*Creator)(nil), (*Mission)(nil)}, Categories: categories(&v)})
	if err != nil {
		return nil, err
	}
	v = sdk.Vault
	if err := sealNames(ctx, sdk); err != nil {
		return nil, err
	}
	_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Northwind Talent",
		Owner: tenancy.NewMember{Email: "owner@northwind.example", Name: "Nora"}})
	if err != nil {
		return nil, err
	}
	ctx = tenancy.WithPrincipal(ctx, owner.Principal())
	if _, err := sdk.Vault.EnsureKey(ctx); err != nil {
		return nil, err
	}
	provider, err := tiktok.NewProvider(o.TikTok, tiktok.WithClock(o.Now))
	if err != nil {
		return nil, err
	}
	// Read-only: profile, stats and the video list. A write feature here
	// would make NewFlow fail with social.ErrWriteScope.
	flow, err := sdk.Social.NewFlow(provider, social.FlowConfig{Features: []string{tiktok.FeatureProfile, tiktok.FeatureStats, tiktok.FeatureVideoRead},
		ReadOnly: true, Purposes: []string{"creator-analytics"}})
	if err != nil {
		return nil, err
	}

	rep := &report{}
	var creators []Creator
	for i, r := range roster {
		if o.Emulator == nil && i > 0 {
			break // one real account per run
		}
		consentURL, err := flow.Begin(ctx)
		if err != nil {
			return nil, err
		}
		rep.ConsentURLs = append(rep.ConsentURLs, consentURL)
		callback, err := consent(o, consentURL, r.openID)
		if err != nil {
			return nil, err
		}
		conn, err := flow.Complete(ctx, callback)
		if err != nil {
			return nil, err
		}
		name := r.name
		if o.Emulator == nil {
			name = "your TikTok account"
		}
		c := Creator{ID: tenancy.NewID(), Name: name, Email: r.email, ConnectionID: conn.ID, SignedAt: o.Now()}
		if c.NameSealed, err = sealName(ctx, sdk.Vault, c.ID, name); err != nil {
			return nil, err
		}
		m := Mission{ID: tenancy.NewID(), CreatorID: c.ID, Brand: "Fjord Outdoor", FeeCents: 150_000 + int64(i)*50_000, CreatedAt: o.Now()}
		err = tenancy.RunInTx(ctx, o.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(&c).Exec(ctx); err != nil {
				return err
			}
			_, err := tx.NewInsert().Model(&m).Exec(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		creators = append(creators, c)
		fmt.Fprintf(o.Out, "%s connected TikTok read-only (%s)\n", c.Name, conn.Requested.Join(","))
		rep.Creators = append(rep.Creators, creatorReport{Name: c.Name, Requested: conn.Requested})
	}

	syncs := 1
	if o.Emulator != nil {
		syncs = weeks
	}
	for w := range syncs {
		if o.Emulator != nil {
			if err := emulateWeek(o.Emulator, w); err != nil {
				return nil, err
			}
		}
		for _, c := range creators {
			sess, err := sdk.Social.Session(ctx, c.ConnectionID, provider)
			if err != nil {
				return nil, err
			}
			client, err := tiktok.New(o.TikTok, tiktok.WithSession(sess), tiktok.WithClock(o.Now))
			if err != nil {
				return nil, err
			}
			if _, _, err := client.Sync(ctx); err != nil {
				return nil, fmt.Errorf("sync %s: %w", c.Name, err)
			}
		}
		if o.Advance != nil && w < syncs-1 {
			o.Advance(7 * 24 * time.Hour) // the access tokens expire; the next sync refreshes them
		}
	}

	for i, c := range creators {
		trend, err := sdk.Social.Snapshots(ctx, c.ConnectionID)
		if err != nil {
			return nil, err
		}
		rep.Creators[i].Trend = trend
		if len(trend) > 0 {
			last := trend[len(trend)-1]
			rep.Creators[i].Engagement = last.EngagementRate
			rep.Creators[i].EngagementKnown = last.Views.Known && last.Views.N > 0
		}
	}
	if err := exportCreator(ctx, sdk, creators[0], o.Out); err != nil {
		return nil, err
	}
	rankCreators(rep.Creators)
	printReport(o.Out, rep)
	return rep, nil
}

// exportCreator answers a creator's access request: the zip holds the
// agency's own categories beside socialcrm's.
func exportCreator(ctx context.Context, sdk *socialcrm.SDK, c Creator, out io.Writer) error {
	req, err := sdk.Retention.Submit(ctx, retention.Request{Kind: retention.KindAccess,
		Subject: map[string]string{"email": c.Email, "creator_id": c.ID, "connection_id": c.ConnectionID}})
	if err != nil {
		return err
	}
	if _, err := sdk.Retention.SetVerification(ctx, req.ID, retention.VerificationVerified); err != nil {
		return err
	}
	m, err := sdk.Retention.Export(ctx, req.ID, io.Discard) // an HTTP handler would stream it to the creator
	if err != nil {
		return err
	}
	var parts []string
	for _, mc := range m.Categories {
		if mc.Rows > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", mc.Name, mc.Rows))
		}
	}
	fmt.Fprintf(out, "\nAccess request of %s, exported as a zip (rows per category): %s\n", c.Name, strings.Join(parts, ", "))
	return nil
}

// consent gets the creator's answer to the consent page: from the
// emulator, or from the person running the example against the real TikTok.
func consent(o options, consentURL, openID string) (url.Values, error) {
	var callback string
	if o.Emulator != nil {
		var err error
		if callback, err = o.Emulator.Consent(consentURL, openID, tiktoktest.ConsentOptions{}); err != nil {
			return nil, err
		}
	} else {
		fmt.Fprintf(o.Out, "Open this URL, consent, and paste the URL TikTok redirects to:\n%s\n> ", consentURL)
		line, err := bufio.NewReader(o.In).ReadString('\n')
		if err != nil && line == "" {
			return nil, fmt.Errorf("reading the redirected URL: %w", err)
		}
		callback = strings.TrimSpace(line)
	}
	u, err := url.Parse(callback)
	if err != nil {
		return nil, err
	}
	return u.Query(), nil
}

func printReport(out io.Writer, rep *report) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(out, "\nFollower trend (one snapshot per sync):")
	fmt.Fprint(tw, "creator\t")
	for _, s := range rep.Creators[0].Trend {
		fmt.Fprintf(tw, "%s\t", s.TakenAt.Format("Jan 02"))
	}
	fmt.Fprintln(tw, "change")
	for _, c := range rep.Creators {
		fmt.Fprintf(tw, "%s\t", c.Name)
		for _, s := range c.Trend {
			fmt.Fprintf(tw, "%v\t", s.Followers) // "unknown" without the stats scope
		}
		if n := len(c.Trend); n > 1 && c.Trend[0].Followers.N > 0 && c.Trend[n-1].Followers.Known {
			first, last := c.Trend[0].Followers.N, c.Trend[n-1].Followers.N
			fmt.Fprintf(tw, "%+.1f%%", 100*float64(last-first)/float64(first))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nEngagement leaderboard ((likes + comments + shares) / views, latest sync):")
	for i, c := range rep.Creators {
		if !c.EngagementKnown {
			fmt.Fprintf(tw, "%d.\t%s\tunknown\n", i+1, c.Name)
			continue
		}
		fmt.Fprintf(tw, "%d.\t%s\t%.2f%%\n", i+1, c.Name, 100*c.Engagement)
	}
	tw.Flush()
}

func main() {
	if err := mainErr(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agency:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("agency", flag.ContinueOnError)
	dsn := fs.String("db", "", "SQLite file or postgres:// URL (default: a throw-away SQLite file)")
	kekFile := fs.String("kek", "agency.keyset.json", "local key-encryption-key file, used with -db")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := options{In: in, Out: out}
	db, kek, done, err := demo.Open(*dsn, *kekFile, "agency")
	if err != nil {
		return err
	}
	defer done()
	o.DB, o.KEK = db, kek

	key, secret := os.Getenv("TIKTOK_CLIENT_KEY"), os.Getenv("TIKTOK_CLIENT_SECRET")
	if key != "" && secret != "" {
		redirect := os.Getenv("TIKTOK_REDIRECT_URL")
		if redirect == "" {
			return errors.New("TIKTOK_REDIRECT_URL must name the redirect URI registered for the app")
		}
		o.TikTok = tiktok.Config{ClientKey: key, ClientSecret: secret, RedirectURL: redirect}
		o.Now = time.Now
		fmt.Fprintln(out, "TikTok: the real API (one sync per run)")
	} else {
		clock := demo.NewClock(time.Now().UTC().Truncate(24 * time.Hour).Add(-7 * 24 * time.Hour * (weeks - 1)))
		srv, err := startEmulator(clock.Now)
		if err != nil {
			return err
		}
		defer srv.Close()
		o.Emulator, o.Now, o.Advance = srv, clock.Now, clock.Advance
		o.TikTok = emulatorConfig(srv)
		fmt.Fprintf(out, "TikTok: the in-process emulator (sandbox; %d weekly syncs on a simulated clock)\n", weeks)
	}
	_, err = run(ctx, o)
	return err
}

// sealName seals a creator's name bound to the context tenant, the
// creator and the field.
func sealName(ctx context.Context, v *vault.Vault, id, name string) ([]byte, error) {
	sealed, err := v.Seal(ctx, []byte(name), vault.Binding{Record: id, Field: "name"})
	if err != nil {
		return nil, fmt.Errorf("seal creator name: %w", err)
	}
	return sealed.Bytes(), nil
}

// openName opens a name sealName sealed.
func openName(ctx context.Context, v *vault.Vault, id string, b []byte) (string, error) {
	if v == nil {
		return "", errors.New("open creator name: no vault")
	}
	sealed, err := vault.ParseSealed(b)
	if err != nil {
		return "", fmt.Errorf("open creator name: %w", err)
	}
	sec, err := v.Open(ctx, sealed, vault.Binding{Record: id, Field: "name"})
	if err != nil {
		return "", fmt.Errorf("open creator name: %w", err)
	}
	defer sec.Wipe()
	return string(sec.Reveal()), nil
}

// sealNames seals, in every tenant, the creator names an older version
// kept in clear, and empties the clear column. Running it again does
// nothing.
func sealNames(ctx context.Context, sdk *socialcrm.SDK) error {
	sys := tenancy.System(ctx, "agency.seal-names")
	tenants, err := sdk.Tenants.Tenants(sys, tenancy.TenantFilter{})
	if err != nil {
		return err
	}
	for _, t := range tenants {
		tctx, err := tenancy.AsTenant(sys, t.ID)
		if err != nil {
			return err
		}
		var cs []Creator
		if err := tenancy.RunInTx(tctx, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&cs).Where("name <> ''").Scan(ctx)
		}); err != nil {
			return fmt.Errorf("seal creator names: %w", err)
		}
		for _, c := range cs {
			sealed, err := sealName(tctx, sdk.Vault, c.ID, c.LegacyName)
			if err != nil {
				return err
			}
			if err := tenancy.RunInTx(tctx, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*Creator)(nil)).Set("name_sealed = ?", sealed).Set("name = ''").
					Where("id = ?", c.ID).Where("name = ?", c.LegacyName).Exec(ctx)
				return err
			}); err != nil {
				return fmt.Errorf("seal creator names: %w", err)
			}
		}
	}
	return nil
}
