package crm

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
)

// RequireFTSExact is requireFTSExact, for the package's external tests.
var RequireFTSExact = requireFTSExact

// requireFTSExact checks, as the tables' owner on SQLite, that the FTS5
// name index holds exactly the tokens of each contact's name_index: every
// token of every contact matches that contact's rowid, no contact without
// tokens is indexed, and the index holds no other (token, contact) pair
// (fts5vocab counts them). It returns the number of pairs.
func requireFTSExact(t *testing.T, db *bun.DB) int {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx) // the temporary vocabulary table lives on one connection
	require.NoError(t, err)
	defer conn.Close()
	count := func(q string) int {
		t.Helper()
		var n int
		require.NoError(t, conn.NewRaw(q).Scan(ctx, &n))
		return n
	}
	_, err = conn.ExecContext(ctx, `CREATE VIRTUAL TABLE IF NOT EXISTS temp.name_vocab USING fts5vocab(main, socialcrm_crm_contact_name_fts, 'row')`)
	require.NoError(t, err)
	defer conn.ExecContext(ctx, `DROP TABLE temp.name_vocab`) //nolint:errcheck // the connection goes next

	missing := count(`SELECT count(*) FROM socialcrm_crm_contacts c, json_each(c.name_index) j
		WHERE c.rowid NOT IN (SELECT rowid FROM socialcrm_crm_contact_name_fts WHERE socialcrm_crm_contact_name_fts = hex(j.value))`)
	require.Zero(t, missing, "tokens of contacts missing from the FTS name index")
	pairs := count(`SELECT count(*) FROM socialcrm_crm_contacts c, json_each(c.name_index) j`)
	require.Equal(t, pairs, count(`SELECT coalesce(sum(doc), 0) FROM temp.name_vocab`),
		"the FTS name index holds (token, contact) pairs of no contact's name_index")
	return pairs
}
