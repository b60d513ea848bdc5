package tenancy

import (
	"fmt"
	"slices"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// PostgreSQL's advisory locks live in two spaces, one bigint key or a
// pair of integers, and each is one space for the whole database: every
// tenant's sessions share it. Tenant B, knowing tenant A's id, held A's
// purge pair with pg_advisory_xact_lock(0x70757267, hashtext(A)), and
// every purge run while B's transaction lasted skipped A; holding the
// single key of A's audit chain, B delayed each audited action of A (one
// bit of A's activity per probe); holding the migrations' fixed key, B
// delayed a replica's migrations. Under a tenant's principal the Guard
// refuses every advisory-lock call — session or transaction level, one
// key or two, lock, try or unlock — but for the SDK's own, whose
// statement runs under sqldb.WithOwnLock and whose keys the SDK derives
// from the context tenant (the audit chain's, crm's contact identifiers).
// crm's server function socialcrm_crm_contact_unclaimed derives its keys
// in SQL from app.tenant_id, so a tenant cannot aim it at another's
// (TestS17TenantsTakeNoAdvisoryLocks).

// advisoryLocks are the advisory-lock functions (lower case).
var advisoryLocks = []string{
	"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
	"pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
	"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
}

// locks records in a's shape whether statement m calls an advisory-lock
// function.
func (a *analysis) locks(m proto.Message) {
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		if f, ok := x.(*pg.FuncCall); ok && slices.Contains(advisoryLocks, funcName(f)) {
			a.sh.advisoryLock = true
		}
		return true
	})
}

// advisoryLockRefusal is the error of an advisory-lock call under a
// tenant's principal.
var advisoryLockRefusal = fmt.Errorf("%w: under a tenant's principal no advisory lock: its keys are one space shared by every tenant", ErrUnscoped)
