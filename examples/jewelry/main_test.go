package main

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestJewelry runs the example end to end on each database against the
// Meta and TikTok emulators.
func TestJewelry(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		clk := demo.NewClock(time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC))
		p, err := startPlatforms(clk.Now)
		require.NoError(t, err)
		t.Cleanup(p.close)
		kek, err := demo.EphemeralKEK()
		require.NoError(t, err)
		var out bytes.Buffer
		ctx := context.Background()
		rep, err := run(ctx, options{DB: db.Owner, KEK: kek, Now: clk.Now, Platforms: p, Publish: "pd-0311", Out: &out})
		require.NoError(t, err, out.String())

		// Birthday greetings: only Amélie, who consented by e-mail. Bruno
		// never consented, Chiara withdrew, Dmitri consented to SMS only,
		// Esther's birthday is tomorrow.
		require.Equal(t, []string{"Amélie"}, rep.Greeted)
		require.Zero(t, rep.Again, "a second run the same day greets no one again")
		require.Contains(t, out.String(), "email to amelie@example.org: Happy birthday, Amélie!")
		require.Contains(t, out.String(), "not greeted: Chiara (consent withdrawn)")
		for _, name := range []string{"bruno@", "chiara@", "dmitri@", "esther@"} {
			require.NotContains(t, out.String(), "to "+name)
		}

		// The inventory refused the second item with the same certificate.
		require.ErrorIs(t, rep.Refused, ErrDuplicateItem)
		require.ErrorContains(t, rep.Refused, "certificate GIA 2141438171 is item RG-0101")

		// The three publishes reached the emulators.
		posts := p.meta.Posts(sandboxPage)
		require.Len(t, posts, 1)
		require.Equal(t, rep.PagePost.ID, posts[0].ID)
		require.Equal(t, "photo", posts[0].Type)
		require.Equal(t, "https://cdn.opale.example/pieces/pd-0311.jpg", posts[0].MediaURL)
		require.Contains(t, posts[0].Message, "GIA-certified (report 6235871042)")
		var igPublishes int
		for _, r := range p.meta.Requests() {
			if r.Method == "POST" && r.Path == "/"+sandboxIG+"/media_publish" {
				igPublishes++
			}
		}
		require.Equal(t, 1, igPublishes)
		require.NotEmpty(t, rep.IGMedia.ID)
		pubs := p.tiktok.Publishes()
		require.Len(t, pubs, 1)
		require.Equal(t, rep.PublishID, pubs[0].ID)
		require.Equal(t, tiktoktest.StatusPublishComplete, pubs[0].Status)
		require.Equal(t, turntableVideo, string(pubs[0].Data))
		require.Contains(t, pubs[0].Title, "Emerald-cut pendant")

		// One audit entry per publish, in a chain that verifies.
		sdk := rep.sdk
		tctx := tenancy.WithPrincipal(ctx, rep.owner)
		entries, err := sdk.Audit.List(tctx, tenancy.AuditListOptions{})
		require.NoError(t, err)
		count := map[string]int{}
		for _, e := range entries {
			count[e.Action]++
		}
		require.Equal(t, 1, count["meta.page.publish"])
		require.Equal(t, 1, count["meta.instagram.publish"])
		require.Equal(t, 1, count["tiktok.publish_started"])
		_, err = sdk.Audit.Verify(tctx)
		require.NoError(t, err)

		// Bad items get a typed error naming each field, and store nothing.
		_, err = AddItem(tctx, sdk.DB, clk.Now, Item{SKU: "x", CertLab: "HRD", CertNumber: "1", Currency: "euro", CostMinor: -1})
		var ie *ItemError
		require.ErrorAs(t, err, &ie)
		require.ErrorIs(t, err, ErrInvalidItem)
		require.Equal(t, []string{"cert_lab", "cost_minor", "currency", "description", "sku", "supplier"}, keys(ie.Problems))
		_, err = AddItem(tctx, sdk.DB, clk.Now, Item{SKU: "RG-0500", Description: "Ring", CertLab: "GIA", CertNumber: "LG12345678",
			CostMinor: 1, Currency: "EUR", Supplier: "S"})
		require.ErrorAs(t, err, &ie)
		require.Equal(t, []string{"cert_number"}, keys(ie.Problems))
		_, err = AddItem(tctx, sdk.DB, clk.Now, Item{SKU: "rg-0101", Description: "Other ring", CertLab: "IGI", CertNumber: "12345678",
			CostMinor: 1, Currency: "EUR", Supplier: "S"})
		require.ErrorIs(t, err, ErrDuplicateItem)
		require.ErrorContains(t, err, "SKU RG-0101 is item RG-0101")
		require.Equal(t, 3, countItems(t, tctx, sdk.DB))

		// The certificate is unique per shop, not across shops.
		_, other, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Other shop",
			Owner: tenancy.NewMember{Email: "owner@other.example", Name: "Otto"}})
		require.NoError(t, err)
		octx := tenancy.WithPrincipal(ctx, other.Principal())
		it, err := AddItem(octx, sdk.DB, clk.Now, inventory[0])
		require.NoError(t, err)
		require.Equal(t, "GIA", it.CertLab)
		require.Equal(t, 1, countItems(t, octx, sdk.DB))
		require.Equal(t, 3, countItems(t, tctx, sdk.DB))

		require.NotContains(t, out.String(), sandboxMetaSecret)
		require.NotContains(t, out.String(), sandboxTikTokSec)
	})
}

// TestJewelryWithoutConfiguration is `go run ./examples/jewelry`.
func TestJewelryWithoutConfiguration(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, mainErr(context.Background(), nil, &out))
	require.Contains(t, out.String(), "Meta and TikTok: the in-process emulators (sandbox)")
	require.Contains(t, out.String(), "1 greeted")
	require.Contains(t, out.String(), "tiktok.publish_started")

	require.ErrorContains(t, mainErr(context.Background(), []string{"-publish", "XX-1"}, &out), `no item with SKU "XX-1"`)
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func countItems(t *testing.T, ctx context.Context, db *bun.DB) int {
	var n int64
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		n, err = tx.NewSelect().Model((*Item)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
		return err
	})
	require.NoError(t, err)
	return int(n)
}
