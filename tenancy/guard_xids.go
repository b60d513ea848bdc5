package tenancy

import (
	"fmt"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// More of PostgreSQL's counters that every tenant's work moves (see
// counters.go), which the Guard keeps from statements under a tenant's
// principal (TestS17TenantCannotReadTransactionCounters):
//
//   - The transaction ids the catalogues hold: age(datfrozenxid) is the
//     next transaction id less a constant, and grew by one with each
//     writing transaction of any tenant; a table made in the tenant's own
//     transaction has the current one as its relfrozenxid. The columns
//     (relfrozenxid, relminmxid, datfrozenxid, datminmxid, catalog_xmin,
//     backend_xid, backend_xmin), in any form — a column, a field of a
//     row, a whole row of pg_database — and the catalogues of prepared
//     transactions and replication slots are refused.
//   - pg_current_xact_id_if_assigned, the transaction's id once it wrote,
//     and pg_export_snapshot, whose name counts the pooled connection's
//     transactions, other tenants' among them.
//   - pg_tablespace_size, which like pg_database_size (pgwalls.go) grows
//     with every tenant's rows.
//   - SQLite's sqlite_offset(x), the byte offset of a row's record in the
//     file: where the row lies among every tenant's rows, as PostgreSQL's
//     ctid, and moved by other tenants' inserts.
//   - SQLite's PRAGMA wal_checkpoint, whose answer counts the pages
//     written to the write-ahead log since it was last reset: 0 after
//     tenant B's checkpoint, 3 after one insert of tenant A's. The SDK's
//     own checkpoint after an erasure (internal/sqldb TruncateLog, which
//     marks its context) and the system principal's still run.

// xidColumns are the catalogue columns that hold transaction ids.
var xidColumns = []string{"relfrozenxid", "relminmxid", "datfrozenxid", "datminmxid", "catalog_xmin", "backend_xid", "backend_xmin"}

// xidFuncs are the functions that read such a counter.
var xidFuncs = []string{"pg_current_xact_id_if_assigned", "pg_export_snapshot", "pg_tablespace_size", "pg_get_replication_slots",
	"sqlite_offset"}

// xidRelations are the catalogues whose rows hold transaction ids.
var xidRelations = []string{"pg_prepared_xacts", "pg_replication_slots"}

// xids records in a's shape a read by statement m of a counter listed
// above.
func (a *analysis) xids(m proto.Message) {
	var dbs []string // pg_database and its aliases
	star, whole := false, map[string]bool{}
	field := func(n *pg.Node) {
		if s := strings.ToLower(n.GetString_().GetSval()); slices.Contains(xidColumns, s) {
			a.sh.counter = s + " is a transaction id: its age counts every tenant's transactions"
		}
	}
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		switch x := x.(type) {
		case *pg.FuncCall:
			if name := funcName(x); slices.Contains(xidFuncs, name) {
				a.sh.counter = name + " reads a counter every tenant's work moves"
			}
		case *pg.RangeVar:
			switch name := strings.ToLower(x.Relname); {
			case slices.Contains(xidRelations, name):
				a.sh.counter = name + " holds transaction ids every tenant's work moves"
			case name == "pg_database":
				dbs = append(dbs, name)
				if x.Alias != nil {
					dbs = append(dbs, strings.ToLower(x.Alias.Aliasname))
				}
			}
		case *pg.ColumnRef:
			last := x.Fields[len(x.Fields)-1]
			if last.GetAStar() != nil {
				star = true
			}
			field(last)
			if len(x.Fields) == 1 {
				whole[strings.ToLower(last.GetString_().GetSval())] = true
			}
		case *pg.A_Indirection:
			for _, n := range x.Indirection {
				if n.GetAStar() != nil {
					star = true
				}
				field(n)
			}
		}
		return true
	})
	if len(dbs) > 0 && (star || slices.ContainsFunc(dbs, func(d string) bool { return whole[d] })) {
		a.sh.counter = "a whole row of pg_database holds datfrozenxid, whose age counts every tenant's transactions: name the columns"
	}
}

// walCheckpoint reports whether a statement of bare (lower case, comments
// stripped, quotes dropped) is SQLite's PRAGMA [schema.]wal_checkpoint.
func walCheckpoint(bare string) bool {
	for _, stmt := range strings.Split(bare, ";") {
		w := identWords(stmt)
		if len(w) >= 2 && w[0] == "pragma" && (w[1] == "wal_checkpoint" || len(w) >= 3 && w[2] == "wal_checkpoint") {
			return true
		}
	}
	return false
}

// walCheckpointRefusal is why a statement under a tenant's principal may
// not run SQLite's PRAGMA wal_checkpoint.
var walCheckpointRefusal = fmt.Errorf("%w: PRAGMA wal_checkpoint counts the pages every tenant wrote to the log (under a tenant's principal)", ErrUnscoped)
