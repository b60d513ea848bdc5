package tenancy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// Counters of the whole server or file, which every tenant's work moves,
// that the Guard keeps from statements under a tenant's principal (the
// system principal and statements without one, such as maintenance and
// migrations, still read them). Read before and after another tenant's
// work, or on the tenant's own rows, they told tenant B how much the
// others did (TestTenantCannotReadGlobalCounters):
//
//   - SQLite's rowid (rowid, _rowid_, oid) of a tenant's own rows: a new
//     row takes the largest rowid of the table plus one, so the gap
//     between two of B's contacts was the number of contacts every other
//     tenant created in between. A full-text look-up by rowid (see
//     FullTextIndex) still runs: it yields no rowid.
//   - SQLite's sqlite_sequence, which holds the last id of every
//     AUTOINCREMENT table (a job queue's among them).
//   - PostgreSQL's transaction ids and snapshots (txid_current,
//     pg_current_xact_id, pg_current_snapshot and their kin, age of an
//     xid), the
//     system columns of a row (xmin and xmax: the transaction that wrote
//     it; ctid: where it lies among every tenant's rows; cmin, cmax), the
//     write-ahead log's position (pg_current_wal_lsn and its kin,
//     pg_control_*: it grows with every tenant's writes), the commit
//     times of transactions, and sequences (nextval, currval, lastval,
//     setval, pg_sequence_last_value, pg_sequences).
//   - EXPLAIN's estimates: the planner derives a plan's row counts from
//     the table's size and statistics, every tenant's rows together (what
//     pg_class.reltuples holds, refused in pgwalls.go). EXPLAIN (COSTS
//     false) shows the plan without them and runs.

// counterFuncs are the functions that read such a counter, by name or,
// ending in "_", by prefix.
var counterFuncs = []string{"txid_", "pg_current_xact_id", "pg_current_snapshot", "pg_snapshot_", "pg_visible_in_snapshot",
	"pg_xact_", "pg_last_committed_xact", "mxid_age", "pg_current_wal_", "pg_last_wal_", "pg_walfile_name",
	"pg_control_", "nextval", "currval", "lastval", "setval", "pg_sequence_last_value", "pg_get_wal_"}

// counterColumns are PostgreSQL's system columns that tell of other
// tenants' work.
var counterColumns = []string{"xmin", "xmax", "cmin", "cmax", "ctid"}

// counterRelations are the catalogues of counters.
var counterRelations = []string{"pg_sequences", "sqlite_sequence"}

// counterFunc reports whether name (lower case) is one of counterFuncs.
func counterFunc(name string) bool {
	return slices.ContainsFunc(counterFuncs, func(f string) bool {
		return name == f || strings.HasSuffix(f, "_") && strings.HasPrefix(name, f)
	})
}

// xidCast reports whether n is a cast to a transaction id: age of one is
// how many transactions every tenant ran since.
func xidCast(n *pg.Node) bool {
	tc := n.GetTypeCast()
	if tc == nil || tc.TypeName == nil || len(tc.TypeName.Names) == 0 {
		return false
	}
	t := strings.ToLower(tc.TypeName.Names[len(tc.TypeName.Names)-1].GetString_().GetSval())
	return t == "xid" || t == "xid8"
}

// counters records in a's shape a read of a counter by statement m.
func (a *analysis) counters(m proto.Message) {
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		switch x := x.(type) {
		case *pg.FuncCall:
			if name := funcName(x); counterFunc(name) || name == "age" && slices.ContainsFunc(x.Args, xidCast) {
				a.sh.counter = name + " reads a counter every tenant's work moves"
			}
		case *pg.RangeVar:
			if name := strings.ToLower(x.Relname); slices.Contains(counterRelations, name) {
				a.sh.counter = name + " holds counters every tenant's work moves"
			}
		case *pg.ColumnRef:
			switch name := strings.ToLower(x.Fields[len(x.Fields)-1].GetString_().GetSval()); {
			case slices.Contains(counterColumns, name):
				a.sh.counter = "the system column " + name + " tells of other tenants' transactions and rows"
			case name == "rowid" || name == "_rowid_":
				a.sh.rowids++
			case name == "oid":
				a.sh.oids++
			}
		case *pg.ExplainStmt:
			costs := true
			for _, o := range x.Options {
				d := o.GetDefElem()
				if d == nil || !strings.EqualFold(d.Defname, "costs") {
					continue
				}
				// Only the words false and off turn it off; a number is
				// blanked in the cached shape.
				v := strings.ToLower(d.GetArg().GetString_().GetSval())
				costs = d.Arg == nil || v != "false" && v != "off"
			}
			if costs {
				a.sh.counter = "EXPLAIN's estimates count every tenant's rows: use EXPLAIN (COSTS false)"
			}
		}
		return true
	})
}

// rowidRefs counts the references to SQLite's rowid in m.
func rowidRefs(m proto.Message) int {
	n := 0
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		if c, ok := x.(*pg.ColumnRef); ok {
			name := strings.ToLower(c.Fields[len(c.Fields)-1].GetString_().GetSval())
			if name == "rowid" || name == "_rowid_" {
				n++
			}
		}
		return true
	})
	return n
}

// counterRefusal refuses a statement that reads a counter (counters)
// under a tenant's principal; sqlite says the statement goes to SQLite,
// where oid is rowid.
func (sh *shape) counterRefusal(ctx context.Context, sqlite bool) error {
	why := sh.counter
	if why == "" && (sh.rowids > 0 || sqlite && sh.oids > 0) {
		why = "SQLite's rowid of a row tells how many rows every tenant added to the table since"
	}
	if why == "" {
		return nil
	}
	if _, err := TenantID(ctx); err != nil {
		return nil // the system principal, or no principal
	}
	return fmt.Errorf("%w: %s (under a tenant's principal)", ErrUnscoped, why)
}
