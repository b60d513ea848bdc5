package crm

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
)

// RequireFTSExact is requireFTSExact, for the package's external tests.
var RequireFTSExact = requireFTSExact

// requireFTSExact checks, as the tables' owner on SQLite, that the FTS5
// name index holds exactly the words of each contact's name_index: each
// word matches that contact (the row it yields is the contact's, id and
// rowid), and the index holds no other (word, contact) pair (fts5vocab
// counts them). It returns the number of pairs.
func requireFTSExact(t *testing.T, db *bun.DB) int {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx) // the temporary vocabulary table lives on one connection
	require.NoError(t, err)
	defer conn.Close()
	var rows []struct {
		RowID int64  `bun:"rowid"`
		ID    string `bun:"id"`
		Index string `bun:"name_index"`
	}
	require.NoError(t, conn.NewRaw("SELECT rowid, id, name_index FROM socialcrm_crm_contacts WHERE name_index IS NOT NULL").Scan(ctx, &rows))
	pairs := 0
	for _, r := range rows {
		for _, w := range strings.Fields(r.Index) {
			var ids []string
			require.NoError(t, conn.NewRaw("SELECT id FROM socialcrm_crm_contact_name_fts WHERE socialcrm_crm_contact_name_fts = ? AND rowid = ?",
				w, r.RowID).Scan(ctx, &ids))
			require.Equal(t, []string{r.ID}, ids, "word %s of contact %s in the FTS name index", w, r.ID)
			pairs++
		}
	}
	_, err = conn.ExecContext(ctx, `CREATE VIRTUAL TABLE IF NOT EXISTS temp.name_vocab USING fts5vocab(main, socialcrm_crm_contact_name_fts, 'row')`)
	require.NoError(t, err)
	defer conn.ExecContext(ctx, `DROP TABLE temp.name_vocab`) //nolint:errcheck // the connection goes next
	var indexed int
	require.NoError(t, conn.NewRaw(`SELECT coalesce(sum(doc), 0) FROM temp.name_vocab`).Scan(ctx, &indexed))
	require.Equal(t, pairs, indexed, "the FTS name index holds (word, contact) pairs of no contact's name_index")
	return pairs
}
