package crm_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// ftsDocs returns, on SQLite, how many (word, contact) pairs the FTS5 name
// index holds and the watermark, read as the tables' owner; 0, 0 on
// PostgreSQL.
func ftsDocs(t *testing.T, e *env) (pairs, mark int64) {
	t.Helper()
	if e.db.Name != "sqlite" {
		return 0, 0
	}
	ctx := context.Background()
	conn, err := e.db.Admin(t).Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `CREATE VIRTUAL TABLE IF NOT EXISTS temp.pending_vocab USING fts5vocab(main, `+crm.TableContactNameFTS+`, 'row')`)
	require.NoError(t, err)
	defer conn.ExecContext(ctx, `DROP TABLE temp.pending_vocab`) //nolint:errcheck // the connection goes next
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT coalesce(sum(doc), 0) FROM temp.pending_vocab`).Scan(&pairs))
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT w FROM `+crm.TableContactNameFTSMark).Scan(&mark))
	return pairs, mark
}

// TestNamePendingExactAcrossBatches creates 300 contacts in tenant A (and
// one in B every tenth), searching for each right after its create, and
// renames and deletes contacts both still pending and already in the FTS5
// index: every search finds exactly the contacts whose names match, at
// every step, across the moments a create moved the pending contacts into
// the index. On SQLite a create below the pending span writes no word
// into the FTS5 index (its pairs do not change), the create that reaches
// the span writes every pending contact's, and the index holds exactly the
// words of the contacts at or below the watermark (RequireFTSExact).
func TestNamePendingExactAcrossBatches(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.store.Contacts()
		names := map[string]string{} // A's contact id -> last name
		expect := func(prefix string) []string {
			var ids []string
			for id, n := range names {
				if strings.HasPrefix(strings.ToLower(n), prefix) {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			return ids
		}
		requireSearch := func(prefix, step string) {
			t.Helper()
			got := searchIDs(t, e, e.A, prefix)
			slices.Sort(got)
			want := expect(prefix)
			if want == nil {
				want = []string{}
			}
			require.Equal(t, want, got, "%s: search %q", step, prefix)
		}
		var ids []string
		batches := 0
		for i := range 300 {
			pairs, mark := ftsDocs(t, e)
			name := fmt.Sprintf("Pq%03d", i)
			got, err := c.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: name})
			require.NoError(t, err)
			names[got.ID] = name
			ids = append(ids, got.ID)
			requireSearch(strings.ToLower(name), "right after its create")
			if e.db.Name == "sqlite" {
				after, markAfter := ftsDocs(t, e)
				if markAfter == mark {
					require.Equal(t, pairs, after, "create %d wrote words into the FTS5 index", i)
				} else {
					batches++
					require.Greater(t, after, pairs, "create %d moved the pending contacts into the index", i)
				}
			}
			if i%10 == 0 {
				_, err := c.Create(e.B, crm.ContactInput{FirstName: "Ada", LastName: name})
				require.NoError(t, err)
			}
			switch i {
			case 20, 140, 290: // a contact in the index or pending, and the newest
				for _, j := range []int{i - 15, i} {
					old, err := c.Get(e.A, ids[j])
					require.NoError(t, err)
					renamed := fmt.Sprintf("Rn%03d", j)
					_, err = c.Update(e.A, old.ID, old.Version, crm.ContactInput{FirstName: "Ada", LastName: renamed})
					require.NoError(t, err)
					names[old.ID] = renamed
					requireSearch(strings.ToLower(fmt.Sprintf("Pq%03d", j)), "after a rename")
					requireSearch(strings.ToLower(renamed), "after a rename")
				}
			case 60, 200, 295:
				for _, j := range []int{i - 50, i - 1} {
					require.NoError(t, c.Delete(e.A, ids[j]))
					delete(names, ids[j])
					requireSearch(strings.ToLower(fmt.Sprintf("Pq%03d", j)), "after a delete")
				}
			}
		}
		requireSearch("pq", "at the end")
		requireSearch("rn", "at the end")
		requireSearch("pq1", "at the end")
		require.Len(t, searchIDs(t, e, e.B, "pq"), 30)
		if e.db.Name == "sqlite" {
			require.Equal(t, 330/crm.NamePendingSpan, batches, "330 contacts: a move of the pending ones into the index every NamePendingSpan rowids")
			require.GreaterOrEqual(t, batches, 2)
			crm.RequireFTSExact(t, e.db.Admin(t))
		}
	})
}

// TestNamePendingRowidReused: after the contacts with the highest rowids
// are deleted — the pending ones and some at or below the watermark — the
// next contacts take rowids at or below the watermark again; they go into
// the FTS5 index at once and are found, and the index stays exact.
func TestNamePendingRowidReused(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.store.Contacts()
		var ids []string
		for i := range 150 {
			got, err := c.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("Top%03d", i)})
			require.NoError(t, err)
			ids = append(ids, got.ID)
		}
		_, mark := ftsDocs(t, e)
		for _, id := range ids[100:] { // down to rowid 101 (the watermark is 128 on SQLite: 150 rowids, a move every 64 or 128)
			require.NoError(t, c.Delete(e.A, id))
		}
		for i := range 40 {
			got, err := c.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("Again%03d", i)})
			require.NoError(t, err)
			require.Equal(t, []string{got.ID}, searchIDs(t, e, e.A, fmt.Sprintf("again%03d", i)))
		}
		require.Empty(t, searchIDs(t, e, e.A, "top1"+"2"))
		require.Len(t, searchIDs(t, e, e.A, "top"), 100)
		require.Len(t, searchIDs(t, e, e.A, "again"), 40)
		if e.db.Name == "sqlite" {
			require.EqualValues(t, 128, mark)
			var top int64
			require.NoError(t, e.db.Admin(t).QueryRowContext(context.Background(), "SELECT max(rowid) FROM "+crm.TableContacts).Scan(&top))
			require.EqualValues(t, 140, top, "rowids 101 to 140 taken again, 101 to 128 at or below the watermark")
			crm.RequireFTSExact(t, e.db.Admin(t))
		}
	})
}
