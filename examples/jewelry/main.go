// Command jewelry is a vertical example: a jewelry retailer's CRM built on
// socialcrm. The shop keeps its own inventory (Item: SKU, grading
// certificate, cost, supplier), declared to tenancy and retention; its
// customers are crm contacts with birthdays and consent; birthday greetings
// go only to customers who consented to them; and a new piece is published
// to the shop's Facebook Page, its Instagram account and TikTok at the
// user's instruction, each publish written to the audit log.
//
//	go run ./examples/jewelry
//
// It runs on a throw-away SQLite file (-db names a SQLite file or a
// postgres:// URL to keep the data) against the in-process Meta and TikTok
// emulators (sandbox: the platforms, their accounts and the clock are
// simulated), and exits. sandbox.go holds what only the emulated run needs.
package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// Item is a piece in the shop's inventory. Embedding tenancy.Owned scopes
// every query to the shop (the tenant).
type Item struct {
	bun.BaseModel `bun:"table:jewelry_items,alias:jit"`
	tenancy.Owned
	ID          string `bun:"id,pk"`
	SKU         string `bun:"sku,notnull"`
	Description string `bun:"description,notnull"`
	// CertLab is the grading laboratory, GIA or IGI; CertNumber its report
	// number. A certificate is in the inventory once per shop.
	CertLab    string `bun:"cert_lab,notnull"`
	CertNumber string `bun:"cert_number,notnull"`
	// CostMinor is the purchase cost in the currency's minor units (cents).
	CostMinor int64     `bun:"cost_minor,notnull"`
	Currency  string    `bun:"currency,notnull"`
	Supplier  string    `bun:"supplier,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// ErrInvalidItem is matched (errors.Is) by every *ItemError.
var ErrInvalidItem = errors.New("jewelry: invalid item")

// ErrDuplicateItem is returned when the shop already has the SKU or the
// certificate.
var ErrDuplicateItem = errors.New("jewelry: item already in the inventory")

// ItemError names each field of an item that is wrong.
type ItemError struct {
	Problems map[string]string // field → problem
}

func (e *ItemError) Error() string {
	var parts []string
	for _, f := range []string{"sku", "description", "cert_lab", "cert_number", "cost_minor", "currency", "supplier"} {
		if p, ok := e.Problems[f]; ok {
			parts = append(parts, f+": "+p)
		}
	}
	return "jewelry: invalid item: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalidItem) true.
func (e *ItemError) Is(target error) bool { return target == ErrInvalidItem }

var (
	skuPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,31}$`)
	// GIA report numbers are 7 to 10 digits; IGI's are 8 to 10 digits,
	// with the prefix LG for laboratory-grown stones.
	certPatterns = map[string]*regexp.Regexp{
		"GIA": regexp.MustCompile(`^[0-9]{7,10}$`),
		"IGI": regexp.MustCompile(`^(LG)?[0-9]{8,10}$`),
	}
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// validate normalizes it (trims, upper-cases codes) and checks every field.
func (it *Item) validate() error {
	it.SKU = strings.ToUpper(strings.TrimSpace(it.SKU))
	it.Description = strings.TrimSpace(it.Description)
	it.CertLab = strings.ToUpper(strings.TrimSpace(it.CertLab))
	it.CertNumber = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(it.CertNumber), " ", ""))
	it.Currency = strings.ToUpper(strings.TrimSpace(it.Currency))
	it.Supplier = strings.TrimSpace(it.Supplier)
	p := map[string]string{}
	if !skuPattern.MatchString(it.SKU) {
		p["sku"] = "3 to 32 letters, digits and dashes"
	}
	if it.Description == "" || len(it.Description) > 500 {
		p["description"] = "1 to 500 bytes"
	}
	if re, ok := certPatterns[it.CertLab]; !ok {
		p["cert_lab"] = "GIA or IGI"
	} else if !re.MatchString(it.CertNumber) {
		p["cert_number"] = "not a " + it.CertLab + " report number"
	}
	if it.CostMinor < 0 {
		p["cost_minor"] = "must not be negative"
	}
	if !currencyPattern.MatchString(it.Currency) {
		p["currency"] = "an ISO 4217 code such as EUR"
	}
	if it.Supplier == "" || len(it.Supplier) > 200 {
		p["supplier"] = "1 to 200 bytes"
	}
	if len(p) > 0 {
		return &ItemError{Problems: p}
	}
	return nil
}

// AddItem validates it and stores it in the context's tenant, refusing a
// SKU or a certificate the shop already has (the unique indexes hold the
// same rule against concurrent adds).
func AddItem(ctx context.Context, db *bun.DB, now func() time.Time, it Item) (Item, error) {
	if err := it.validate(); err != nil {
		return Item{}, err
	}
	it.ID, it.CreatedAt = tenancy.NewID(), now()
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		if sku, err := holder(ctx, tx, "jit.sku = ?", it.SKU); err != nil || sku != "" {
			return cmp.Or(err, fmt.Errorf("%w: SKU %s is item %s", ErrDuplicateItem, it.SKU, sku))
		}
		if sku, err := holder(ctx, tx, "jit.cert_lab = ? AND jit.cert_number = ?", it.CertLab, it.CertNumber); err != nil || sku != "" {
			return cmp.Or(err, fmt.Errorf("%w: certificate %s %s is item %s", ErrDuplicateItem, it.CertLab, it.CertNumber, sku))
		}
		_, err := tx.NewInsert().Model(&it).Exec(ctx)
		return err
	})
	if err != nil {
		return Item{}, err
	}
	return it, nil
}

// holder returns the SKU of the tenant's item matching where, or "".
func holder(ctx context.Context, tx bun.Tx, where string, args ...any) (string, error) {
	var other Item
	err := tx.NewSelect().Model(&other).Apply(tenancy.Scope(ctx)).Where(where, args...).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return other.SKU, err
}

// categories declares the inventory to the retention engine. It holds no
// one's personal data (Subject is nil: data-subject requests skip it); it
// is the shop's business record.
func categories() []retention.Category {
	return []retention.Category{{Name: "jewelry.item", Table: "jewelry_items", Time: "created_at",
		LegalBasis: "legitimate interest: stock keeping; legal obligation (bookkeeping)",
		Purpose:    "inventory of pieces, their grading certificates and purchase cost (business data, not personal)"}}
}

// migrateJewelry creates the shop's table with bun's migrator, in a
// migration history of its own beside socialcrm's.
func migrateJewelry(ctx context.Context, db *bun.DB) error {
	ts := "TIMESTAMP"
	if db.Dialect().Name() == dialect.PG {
		ts = "TIMESTAMPTZ"
	}
	ms := migrate.NewMigrations()
	ms.Add(migrate.Migration{Name: "20261201000000", Comment: "jewelry_items",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				for _, s := range []string{
					`CREATE TABLE IF NOT EXISTS jewelry_items (tenant_id TEXT NOT NULL, id TEXT NOT NULL, sku TEXT NOT NULL,
						description TEXT NOT NULL, cert_lab TEXT NOT NULL, cert_number TEXT NOT NULL, cost_minor BIGINT NOT NULL,
						currency TEXT NOT NULL, supplier TEXT NOT NULL, created_at ` + ts + ` NOT NULL, PRIMARY KEY (tenant_id, id))`,
					`CREATE UNIQUE INDEX IF NOT EXISTS jewelry_items_sku ON jewelry_items (tenant_id, sku)`,
					`CREATE UNIQUE INDEX IF NOT EXISTS jewelry_items_cert ON jewelry_items (tenant_id, cert_lab, cert_number)`,
				} {
					if _, err := tx.ExecContext(ctx, s); err != nil {
						return err
					}
				}
				return tenancy.EnableRowSecurity(ctx, tx, "jewelry_items")
			})
		}})
	mg := migrate.NewMigrator(db, ms, migrate.WithTableName("jewelry_migrations"),
		migrate.WithLocksTableName("jewelry_migration_locks"), migrate.WithMarkAppliedOnSuccess(true))
	if err := mg.Init(ctx); err != nil {
		return err
	}
	_, err := mg.Migrate(ctx)
	return err
}

// greeter is the shop's Notifier: it prints the greeting where a real shop
// would send an e-mail. The Scheduler hands it only customers who
// consented to birthday greetings on the channel.
type greeter struct {
	out     io.Writer
	greeted []string
}

func (g *greeter) Notify(_ context.Context, n crm.Notification) error {
	fmt.Fprintf(g.out, "  %s to %s: Happy birthday, %s! A gift is waiting for you in the shop.\n",
		n.Channel, n.Contact.Email, n.Contact.FirstName)
	g.greeted = append(g.greeted, n.Contact.FirstName)
	return nil
}

// customer is a shop customer and what they said about birthday greetings.
type customer struct {
	first, last, email string
	birthday           crm.Birthday
	consent            crm.Channel // the channel they consented on ("" = none)
	withdrawn          bool        // consented, then withdrew
}

// options is what run needs; main fills it, the test too.
type options struct {
	DB        *bun.DB
	KEK       tink.AEAD
	Now       func() time.Time
	Platforms *platforms // the emulated Meta and TikTok
	// Publish is the SKU of the piece the user asks to publish.
	Publish string
	Out     io.Writer
}

// report is what run did, for the test.
type report struct {
	Greeted   []string
	Again     int // greeted by a second run the same day
	PagePost  *meta.Post
	IGMedia   *meta.Media
	PublishID string // TikTok's
	Refused   error  // the duplicate certificate
	sdk       *socialcrm.SDK
	owner     tenancy.Principal
}

func run(ctx context.Context, o options) (*report, error) {
	pick := slices.IndexFunc(inventory, func(it Item) bool { return strings.EqualFold(it.SKU, strings.TrimSpace(o.Publish)) })
	if pick < 0 {
		return nil, fmt.Errorf("-publish: no item with SKU %q", o.Publish)
	}
	if err := socialcrm.Migrate(ctx, o.DB); err != nil {
		return nil, err
	}
	if err := migrateJewelry(ctx, o.DB); err != nil {
		return nil, err
	}
	// One database role does everything in this example, which Open allows
	// for development only; production runs two (see the README).
	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: o.DB, AllowPrivilegedRole: true, KEK: o.KEK, Now: o.Now,
		Models: []any{(*Item)(nil)}, Categories: categories()})
	if err != nil {
		return nil, err
	}
	_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Maison Opale",
		Owner: tenancy.NewMember{Email: "owner@opale.example", Name: "Odile"}})
	if err != nil {
		return nil, err
	}
	ctx = tenancy.WithPrincipal(ctx, owner.Principal())
	if _, err := sdk.Vault.EnsureKey(ctx); err != nil {
		return nil, err
	}
	rep := &report{sdk: sdk, owner: owner.Principal()}

	// Inventory.
	fmt.Fprintln(o.Out, "Inventory:")
	var items []Item
	for _, it := range inventory {
		it, err := AddItem(ctx, o.DB, o.Now, it)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
		fmt.Fprintf(o.Out, "  %-8s %-50s %s %-12s %s %s  (%s)\n", it.SKU, it.Description, it.CertLab, it.CertNumber,
			it.Currency, minor(it.CostMinor), it.Supplier)
	}
	dup := inventory[0]
	dup.SKU = "RG-0999"
	_, rep.Refused = AddItem(ctx, o.DB, o.Now, dup)
	fmt.Fprintf(o.Out, "  refused: %v\n", rep.Refused)

	// Customers, with their birthdays and what they consented to.
	today := o.Now()
	for _, c := range customers(today) {
		ct, err := sdk.CRM.Contacts().Create(ctx, crm.ContactInput{FirstName: c.first, LastName: c.last, Email: c.email,
			Stage: crm.StageCustomer, Source: "in-store", Birthday: c.birthday})
		if err != nil {
			return nil, err
		}
		if c.consent == "" {
			continue
		}
		change := crm.ConsentChange{ContactID: ct.ID, Channel: c.consent, Purpose: crm.PurposeBirthday, Source: "loyalty card form"}
		if _, err := sdk.CRM.Consents().Grant(ctx, change); err != nil {
			return nil, err
		}
		if c.withdrawn {
			change.Source = "unsubscribe link"
			if _, err := sdk.CRM.Consents().Withdraw(ctx, change); err != nil {
				return nil, err
			}
		}
	}

	// Today's birthday greetings by e-mail: the Scheduler selects only the
	// customers whose latest e-mail consent for birthdays is a grant.
	g := &greeter{out: o.Out}
	sched, err := crm.NewScheduler(sdk.CRM, g)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "\nBirthday greetings of %s (e-mail, with consent only):\n", today.Format("2 January"))
	n, err := sched.Run(ctx, sched.Birthdays(crm.ChannelEmail))
	if err != nil {
		return nil, err
	}
	rep.Greeted = g.greeted
	fmt.Fprintf(o.Out, "  %d greeted\n", n)
	for _, c := range customers(today) {
		if c.birthday.Month == int(today.Month()) && c.birthday.Day == today.Day() && !slices.Contains(g.greeted, c.first) {
			why := "no consent"
			if c.withdrawn {
				why = "consent withdrawn"
			} else if c.consent != "" {
				why = "consented on " + string(c.consent) + " only"
			}
			fmt.Fprintf(o.Out, "  not greeted: %s (%s)\n", c.first, why)
		}
	}
	// The daily job may run twice: each customer is greeted once a year.
	if rep.Again, err = sched.Run(ctx, sched.Birthdays(crm.ChannelEmail)); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "  run again today: %d greeted\n", rep.Again)

	// The shop's accounts, connected once through the platforms' consent
	// pages, and the new piece published at the user's instruction.
	pageConn, igConn, err := connectMeta(ctx, sdk, o.Platforms)
	if err != nil {
		return nil, err
	}
	tiktokConn, err := connectTikTok(ctx, sdk, o.Platforms)
	if err != nil {
		return nil, err
	}
	piece := items[pick]
	fmt.Fprintf(o.Out, "\nPublishing the new piece %s (%s):\n", piece.SKU, piece.Description)
	if err := publish(ctx, sdk, o.Platforms, piece, pageConn, igConn, tiktokConn, rep); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "  Facebook Page post %s\n  Instagram media %s\n  TikTok publish %s\n",
		rep.PagePost.ID, rep.IGMedia.ID, rep.PublishID)

	fmt.Fprintln(o.Out, "\nAudit log:")
	entries, err := sdk.Audit.List(ctx, tenancy.AuditListOptions{})
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if strings.Contains(e.Action, "publish") {
			fmt.Fprintf(o.Out, "  #%d %s %s %s\n", e.Seq, e.At.Format(time.DateTime), e.Action, e.Target)
		}
	}
	return rep, nil
}

// connectMeta runs Facebook Login for the shop's owner and connects the
// Page and the Instagram account behind it.
func connectMeta(ctx context.Context, sdk *socialcrm.SDK, p *platforms) (page, ig social.Connection, err error) {
	flow, err := sdk.Social.NewFlow(p.metaProv, social.FlowConfig{Purposes: []string{"publishing"},
		Features: []string{meta.FeaturePagesPublish, meta.FeatureInstagramPublish}})
	if err != nil {
		return page, ig, err
	}
	dialog, err := flow.Begin(ctx)
	if err != nil {
		return page, ig, err
	}
	redirect, err := p.meta.Consent(dialog, metatest.Consent{UserID: sandboxFBUser})
	if err != nil {
		return page, ig, err
	}
	user, err := flow.Complete(ctx, redirect.Query())
	if err != nil {
		return page, ig, err
	}
	sess, err := sdk.Social.Session(ctx, user.ID, p.metaProv)
	if err != nil {
		return page, ig, err
	}
	pages, err := p.metaProv.ConnectPages(ctx, sess)
	if err != nil {
		return page, ig, err
	}
	if len(pages) != 1 || pages[0].Err != nil || pages[0].Instagram == nil {
		return page, ig, fmt.Errorf("expected the shop's Page with its Instagram account, got %+v", pages)
	}
	return pages[0].Connection, *pages[0].Instagram, nil
}

// connectTikTok runs TikTok's consent for the shop's account, asking for
// Direct Post only.
func connectTikTok(ctx context.Context, sdk *socialcrm.SDK, p *platforms) (social.Connection, error) {
	flow, err := sdk.Social.NewFlow(p.tiktokProv, social.FlowConfig{Features: []string{tiktok.FeaturePublish}, Purposes: []string{"publishing"}})
	if err != nil {
		return social.Connection{}, err
	}
	consentURL, err := flow.Begin(ctx)
	if err != nil {
		return social.Connection{}, err
	}
	callback, err := p.tiktok.Consent(consentURL, sandboxTikTokUser, tiktoktest.ConsentOptions{})
	if err != nil {
		return social.Connection{}, err
	}
	u, err := url.Parse(callback)
	if err != nil {
		return social.Connection{}, err
	}
	return flow.Complete(ctx, u.Query())
}

// publish posts the piece to the Page, to Instagram and to TikTok. Each
// client writes its publish to the tenant's audit log.
func publish(ctx context.Context, sdk *socialcrm.SDK, p *platforms, it Item, page, ig, tt social.Connection, rep *report) error {
	text := fmt.Sprintf("New in: %s. %s-certified (report %s).", it.Description, it.CertLab, it.CertNumber)
	photo := "https://cdn.opale.example/pieces/" + strings.ToLower(it.SKU) + ".jpg"

	client, err := p.metaClient(ctx, sdk.Social, page.ID)
	if err != nil {
		return err
	}
	if rep.PagePost, _, err = client.Pages.Publish(ctx, page.AccountID, meta.PostRequest{Message: text, PhotoURL: photo}); err != nil {
		return fmt.Errorf("facebook: %w", err)
	}
	if client, err = p.metaClient(ctx, sdk.Social, ig.ID); err != nil {
		return err
	}
	if rep.IGMedia, _, err = client.Instagram.Publish(ctx, ig.AccountID, meta.MediaRequest{ImageURL: photo, Caption: text,
		PollInterval: time.Second, Timeout: time.Minute}); err != nil {
		return fmt.Errorf("instagram: %w", err)
	}

	sess, err := sdk.Social.Session(ctx, tt.ID, p.tiktokProv)
	if err != nil {
		return err
	}
	tc, err := tiktok.New(p.tiktokCfg, tiktok.WithSession(sess), tiktok.WithClock(p.now))
	if err != nil {
		return err
	}
	info, _, err := tc.Posting.CreatorInfo(ctx)
	if err != nil {
		return fmt.Errorf("tiktok: %w", err)
	}
	src, err := tiktok.PlanChunks(int64(len(turntableVideo)), 0)
	if err != nil {
		return err
	}
	init, _, err := tc.Posting.InitVideo(ctx, tiktok.VideoInitRequest{SourceInfo: src,
		PostInfo: tiktok.PostInfo{PrivacyLevel: info.PrivacyLevelOptions[0], Title: text}})
	if err != nil {
		return fmt.Errorf("tiktok: %w", err)
	}
	if _, err := tc.Posting.Upload(ctx, init.UploadURL, strings.NewReader(turntableVideo), src, "video/mp4"); err != nil {
		return fmt.Errorf("tiktok upload: %w", err)
	}
	rep.PublishID = init.PublishID
	return nil
}

// minor formats an amount in minor units.
func minor(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

func main() {
	if err := mainErr(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "jewelry:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("jewelry", flag.ContinueOnError)
	dsn := fs.String("db", "", "SQLite file or postgres:// URL (default: a throw-away SQLite file)")
	kekFile := fs.String("kek", "jewelry.keyset.json", "local key-encryption-key file, used with -db")
	piece := fs.String("publish", "PD-0311", "SKU of the piece to publish to the Page, Instagram and TikTok")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, kek, done, err := demo.Open(*dsn, *kekFile, "jewelry")
	if err != nil {
		return err
	}
	defer done()
	clock := demo.NewClock(time.Now().UTC().Truncate(time.Second))
	p, err := startPlatforms(clock.Now)
	if err != nil {
		return err
	}
	defer p.close()
	fmt.Fprintln(out, "Meta and TikTok: the in-process emulators (sandbox)")
	_, err = run(ctx, options{DB: db, KEK: kek, Now: clock.Now, Platforms: p, Publish: *piece, Out: out})
	return err
}
