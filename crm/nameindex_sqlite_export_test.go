package crm

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// NamePendingSpan is namePendingSpan, for the package's external tests.
const NamePendingSpan = namePendingSpan

// RequireFTSExact is requireFTSExact, for the package's external tests.
var RequireFTSExact = requireFTSExact

// FlushNameFTS moves, as the tables' owner on SQLite, every pending
// contact (above the watermark) into the FTS5 name index and raises the
// watermark to the highest rowid, as the insert that crosses the pending
// span does: for tests that look for a contact's words in the index.
func FlushNameFTS(t *testing.T, db *bun.DB) {
	t.Helper()
	if db.Dialect().Name() != dialect.SQLite {
		return
	}
	ctx := context.Background()
	require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
			SELECT rowid, name_index, id FROM socialcrm_crm_contacts
			WHERE rowid > (SELECT w FROM socialcrm_crm_contact_name_fts_mark) AND name_index IS NOT NULL`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE socialcrm_crm_contact_name_fts_mark
			SET w = max(w, coalesce((SELECT max(rowid) FROM socialcrm_crm_contacts), 0))`)
		return err
	}))
}

// requireFTSExact checks, as the tables' owner on SQLite, that the FTS5
// name index holds exactly the words of the name_index of each contact at
// or below the watermark: each word matches that contact (the row it
// yields is the contact's, id and rowid), no word of a pending contact
// (above the watermark) is in the index, no contact is namePendingSpan or
// more above the watermark, and the index holds no other (word, contact)
// pair (fts5vocab counts them). It returns the number of (word, contact)
// pairs of the name index: the FTS5 index's and the pending contacts'.
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
	var mark, top int64
	require.NoError(t, conn.NewRaw("SELECT w FROM socialcrm_crm_contact_name_fts_mark").Scan(ctx, &mark))
	require.NoError(t, conn.NewRaw("SELECT coalesce(max(rowid), 0) FROM socialcrm_crm_contacts").Scan(ctx, &top))
	require.Less(t, top, mark+namePendingSpan, "no contact is the pending span or more above the watermark")
	pairs, pending := 0, 0
	for _, r := range rows {
		for _, w := range strings.Fields(r.Index) {
			var ids []string
			require.NoError(t, conn.NewRaw("SELECT id FROM socialcrm_crm_contact_name_fts WHERE socialcrm_crm_contact_name_fts = ? AND rowid = ?",
				w, r.RowID).Scan(ctx, &ids))
			if r.RowID > mark {
				require.Empty(t, ids, "word %s of pending contact %s in the FTS name index", w, r.ID)
				pending++
				continue
			}
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
	return pairs + pending
}

// ftsIndexedPairs returns, as the tables' owner on SQLite, how many
// (word, contact) pairs the FTS5 name index holds.
func ftsIndexedPairs(t *testing.T, db *bun.DB) int {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `CREATE VIRTUAL TABLE IF NOT EXISTS temp.name_vocab USING fts5vocab(main, socialcrm_crm_contact_name_fts, 'row')`)
	require.NoError(t, err)
	defer conn.ExecContext(ctx, `DROP TABLE temp.name_vocab`) //nolint:errcheck // the connection goes next
	var indexed int
	require.NoError(t, conn.NewRaw(`SELECT coalesce(sum(doc), 0) FROM temp.name_vocab`).Scan(ctx, &indexed))
	return indexed
}
