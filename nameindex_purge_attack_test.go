package socialcrm_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantPurgeLeavesNoNameTokens: a closed tenant's purge erases its
// contacts, and with them every word of their name index: none is left
// in the SQLite file or its WAL (the FTS5 index's pages included; the
// purge truncates the log, which kept the frames of their creation), FTS5's
// integrity-check passes, and on PostgreSQL the name index table holds no
// row of the tenant; the other tenant's contacts of the same names are
// still found by name.
func TestTenantPurgeLeavesNoNameTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)

		var ids []string
		var owners []context.Context
		for i, name := range []string{"Kept", "Purged"} {
			tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: name,
				Owner: tenancy.NewMember{Email: strings.ToLower(name) + "@example.com", Name: "O"}})
			require.NoError(t, err)
			octx := tenancy.WithPrincipal(ctx, owner.Principal())
			for j, n := range []string{"Zenobia Quuxbridge", "Ada Lovelace", "Grace Hopper", "Alan Turing"} {
				f := strings.Fields(n)
				_, err := sdk.CRM.Contacts().Create(octx, crm.ContactInput{FirstName: f[0], LastName: f[1]})
				require.NoError(t, err, "tenant %d contact %d", i, j)
			}
			ids, owners = append(ids, tn.ID), append(owners, octx)
		}
		raw := db.Admin(t)
		var words []string
		if db.Name == "sqlite" {
			var idx []string
			require.NoError(t, raw.NewRaw("SELECT name_index FROM "+crm.TableContacts+" WHERE tenant_id = ?", ids[1]).Scan(ctx, &idx))
			for _, s := range idx {
				words = append(words, strings.Fields(s)...)
			}
			require.Len(t, words, 7+10+3+8+5+6+4+6, "every prefix of every name word of the purged tenant")
		}
		// traces returns the words whose last 16 letters, in either case,
		// are in the file or its WAL, after a PASSIVE checkpoint (SQLite's
		// automatic one: the log file keeps its frames).
		traces := func() []string {
			_, err := raw.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
			require.NoError(t, err)
			var file []byte
			for _, p := range []string{db.Path, db.Path + "-wal"} {
				b, err := os.ReadFile(p)
				if err != nil && !os.IsNotExist(err) {
					require.NoError(t, err)
				}
				file = append(file, b...)
			}
			var left []string
			for _, w := range words {
				tail := w[len(w)-16:]
				if bytes.Contains(file, []byte(tail)) || bytes.Contains(file, []byte(strings.ToLower(tail))) {
					left = append(left, w)
				}
			}
			return left
		}
		if db.Name == "sqlite" {
			require.Equal(t, words, traces(), "every word is in the file before the purge")
		}
		_, err = sdk.Tenants.CloseTenant(owners[1], time.Hour)
		require.NoError(t, err)
		clk.Advance(2 * time.Hour)
		_, err = sdk.Retention.PurgeTenants(tenancy.System(ctx, "retention"), clk.Now())
		require.NoError(t, err)

		if db.Name == "sqlite" {
			left := traces()
			require.Empty(t, left, "words of the purged tenant's contacts left in the file")
			// FTS5's check compares the index with every contact: the
			// pending ones (above the watermark) go in first.
			fts, mark := crm.TableContactNameFTS, crm.TableContactNameFTSMark
			_, err = raw.ExecContext(ctx, "INSERT INTO "+fts+" (rowid, name_index, id) SELECT rowid, name_index, id FROM "+crm.TableContacts+
				" WHERE rowid > (SELECT w FROM "+mark+") AND name_index IS NOT NULL")
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, "UPDATE "+mark+" SET w = (SELECT coalesce(max(rowid), 0) FROM "+crm.TableContacts+")")
			require.NoError(t, err)
			_, err = raw.ExecContext(ctx, "INSERT INTO "+fts+" ("+fts+", rank) VALUES ('integrity-check', 1)")
			require.NoError(t, err)
		} else {
			var n int
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+crm.TableContactNames+" WHERE tenant_id = ?", ids[1]).Scan(ctx, &n))
			require.Zero(t, n, "name index rows of the purged tenant")
		}
		for _, q := range []string{"zenobia quux", "ada", "grace hop", "alan turing"} {
			p, err := sdk.CRM.Contacts().List(owners[0], crm.ContactFilter{NamePrefix: q}, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1, "the kept tenant's %q", q)
		}
	}, migrated)
}
