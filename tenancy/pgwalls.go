package tenancy

import (
	"fmt"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// PostgreSQL's statistics and session state the Guard keeps from the
// application's statements (see pgWalls), as sqlitewalls.go does for
// SQLite's. Row-level security filters rows, not what the server counts
// about them, and the application role is one role for every tenant:
//
//   - The statistics views and functions (pg_stat_*, pg_statio_*,
//     pg_stats, pg_stat_get_*), the size functions and pg_class's
//     reltuples and relpages count every tenant's rows together: tenant B
//     read how many rows all others hold. pg_stat_activity holds the last
//     statement of every connection of the role — other tenants' — and
//     the pg_stat_get_xact_* functions the counts of earlier transactions
//     of the pooled connection not yet reported, another tenant's among
//     them.
//   - EXPLAIN ANALYZE runs the statement and reports what its scans did:
//     a query confined to B, planned as a sequential scan (SET LOCAL
//     enable_bitmapscan = off), reported "Rows Removed by Filter: 7",
//     exactly the other tenants' rows. EXPLAIN without ANALYZE runs.
//   - A setting given without LOCAL stays with the pooled connection that
//     the next caller, of any tenant, gets: after B's SET
//     default_transaction_read_only = on, A's next insert on that
//     connection failed. ALTER ROLE … SET (which PostgreSQL lets a role do
//     to itself), ALTER DATABASE and ALTER SYSTEM reach every new
//     connection of every tenant and replica, across restarts. SET LOCAL
//     and SET TRANSACTION, which end with the transaction, run.
//   - A session-level advisory lock stays held by the pooled connection:
//     taken under tenant B's principal with the key of tenant A's audit
//     chain (derived from A's id) it stopped every audited action of A.
//     Under a tenant's principal it is refused (sessionLockRefusal);
//     the system principal's maintenance (a tenant purge's claim) and
//     statements without a principal (migrations) take them.
//     Since then every advisory-lock call, transaction-level ones too, is
//     refused under a tenant's principal (guard_locks.go): the SDK's own
//     (the audit chain's, crm's contact identifiers') run marked
//     (sqldb.WithOwnLock), with keys derived from the context's tenant.
//   - The server's state shared by every session of the role, which is
//     every tenant's (TestGuardKeepsSharedServerStateFromTenants):
//     pg_locks (and pg_lock_status, pg_blocking_pids) lists every
//     session's locks — the advisory-lock keys of other tenants' audit
//     chains as they append, and the process ids of their connections;
//     pg_cancel_backend and pg_terminate_backend, which PostgreSQL lets a
//     role use on its own sessions, cancelled or cut another tenant's
//     statements; NOTIFY and pg_notify reach every listener of the
//     database (a job queue's control channel among them) and LISTEN
//     stays with the pooled connection; large objects (lo_*, loread,
//     lowrite, pg_largeobject) belong to the role, so one tenant's are
//     every tenant's to read, overwrite and unlink. The pooled
//     connection's own session state is the next caller's: a
//     DEALLOCATE ALL made every statement the driver had prepared on it
//     fail for whoever ran next ("prepared statement … does not exist"),
//     a PREPARE under the driver's name of a statement would stand in for
//     it, pg_prepared_statements lists the statements other tenants ran
//     on the connection and how often, and a cursor WITH HOLD outlives
//     the transaction. PREPARE, EXECUTE, DEALLOCATE and DECLARE … WITH
//     HOLD are refused on a guarded handle (the driver prepares through
//     the protocol, which the Guard does not see and needs no SQL), and so
//     are pg_prepared_statements and pg_cursors.

// sessionLocks are the advisory-lock functions whose lock outlives the
// transaction.
var sessionLocks = []string{"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared"}

// sizeFuncs report the size of a table or database: every tenant's rows.
var sizeFuncs = []string{"pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size", "pg_database_size"}

// sharedFuncs are functions that read or act on the server's state
// shared by every session of the role (see above), by name or, ending in
// "_", by prefix.
var sharedFuncs = []string{"pg_lock_status", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids", "pg_isolation_test_session_is_blocked",
	"pg_cancel_backend", "pg_terminate_backend", "pg_notify", "pg_listening_channels", "pg_notification_queue_usage",
	"pg_prepared_statement", "pg_cursor", "lo_", "loread", "lowrite"}

// sharedRelations are the views and catalogues of that state.
var sharedRelations = []string{"pg_locks", "pg_prepared_statements", "pg_cursors", "pg_largeobject", "pg_largeobject_metadata"}

// sharedFunc reports whether name (lower case) is one of sharedFuncs.
func sharedFunc(name string) bool {
	return slices.ContainsFunc(sharedFuncs, func(f string) bool {
		return name == f || strings.HasSuffix(f, "_") && strings.HasPrefix(name, f)
	})
}

// cursorHold is PostgreSQL's CURSOR_OPT_HOLD, the option bit of DECLARE …
// WITH HOLD.
const cursorHold = 0x0020

// classCounts are pg_class's columns that count a table's rows or pages.
var classCounts = []string{"reltuples", "relpages", "relallvisible"}

// pgWalls records in a why a statement m (one of a text's statements)
// reads PostgreSQL's statistics or leaves state on the connection or the
// role, as listed above.
func (a *analysis) pgWalls(m proto.Message) {
	var classes []string // pg_class and its aliases
	star, whole := false, map[string]bool{}
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		switch x := x.(type) {
		case *pg.FuncCall:
			switch name := funcName(x); {
			case strings.HasPrefix(name, "pg_stat_"), slices.Contains(sizeFuncs, name):
				a.fail("%s counts every tenant's rows (statistics)", name)
			case slices.Contains(sessionLocks, name):
				a.sh.sessionLock = true
			case sharedFunc(name):
				a.fail("%s reaches the server's state shared by every tenant's sessions", name)
			}
		case *pg.RangeVar:
			name := strings.ToLower(x.Relname)
			if strings.HasPrefix(name, "pg_stat") {
				a.fail("%s counts every tenant's rows (statistics)", name)
			}
			if slices.Contains(sharedRelations, name) {
				a.fail("%s shows the server's state shared by every tenant's sessions", name)
			}
			if name == "pg_class" {
				classes = append(classes, name)
				if x.Alias != nil {
					classes = append(classes, strings.ToLower(x.Alias.Aliasname))
				}
			}
		case *pg.ColumnRef:
			last := x.Fields[len(x.Fields)-1]
			if last.GetAStar() != nil {
				star = true
			}
			if s := strings.ToLower(last.GetString_().GetSval()); slices.Contains(classCounts, s) {
				a.fail("pg_class.%s counts every tenant's rows (statistics)", s)
			}
			if len(x.Fields) == 1 {
				whole[strings.ToLower(last.GetString_().GetSval())] = true
			}
		case *pg.ExplainStmt:
			for _, o := range x.Options {
				d := o.GetDefElem()
				if d == nil || !strings.EqualFold(d.Defname, "analyze") {
					continue
				}
				// Only the words false and off turn it off; a number is
				// blanked in the cached shape, so it is refused whatever
				// its value.
				if v := strings.ToLower(d.GetArg().GetString_().GetSval()); d.Arg == nil || (v != "false" && v != "off") {
					a.fail("EXPLAIN ANALYZE reports what the scans of every tenant's rows did: use EXPLAIN")
				}
			}
		case *pg.VariableSetStmt:
			name := strings.ToLower(x.Name)
			if !x.IsLocal && x.Kind != pg.VariableSetKind_VAR_RESET && x.Kind != pg.VariableSetKind_VAR_RESET_ALL &&
				!strings.HasPrefix(name, "transaction") {
				a.fail("SET %s outlives the statement on a pooled connection: use SET LOCAL", name)
			}
		case *pg.ListenStmt, *pg.UnlistenStmt, *pg.NotifyStmt:
			a.fail("LISTEN and NOTIFY reach every tenant's sessions and outlive the statement on a pooled connection")
		case *pg.PrepareStmt, *pg.ExecuteStmt, *pg.DeallocateStmt:
			a.fail("PREPARE, EXECUTE and DEALLOCATE change the pooled connection's prepared statements, the next caller's")
		case *pg.DeclareCursorStmt:
			if x.Options&cursorHold != 0 {
				a.fail("a cursor WITH HOLD outlives the transaction on a pooled connection")
			}
		case *pg.AlterRoleSetStmt, *pg.AlterRoleStmt, *pg.AlterDatabaseSetStmt, *pg.AlterDatabaseStmt, *pg.AlterSystemStmt:
			a.fail("%s changes every tenant's connections", strings.TrimSuffix(string(x.ProtoReflect().Descriptor().Name()), "Stmt"))
			return false
		}
		return true
	})
	if len(classes) > 0 && (star || slices.ContainsFunc(classes, func(c string) bool { return whole[c] })) {
		a.fail("a whole row of pg_class holds reltuples, which counts every tenant's rows: name the columns")
	}
}

// sessionLockRefusal is the error of a session-level advisory lock taken
// under a tenant's principal.
var sessionLockRefusal = fmt.Errorf("%w: a session-level advisory lock outlives the transaction on a pooled connection: use pg_advisory_xact_lock", ErrUnscoped)
