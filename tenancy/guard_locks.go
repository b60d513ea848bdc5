package tenancy

import (
	"fmt"
	"slices"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// PostgreSQL's advisory locks live in two spaces: one bigint key, or a
// pair of integers. The SDK takes the pairs only as the system principal:
// retention's claims of a tenant's purge (purge space, hashtext(tenant
// id)) and of a data-subject request's erasure, which give a run up when
// another holds the pair. Tenant B, knowing tenant A's id, held A's purge
// pair with pg_advisory_xact_lock(0x70757267, hashtext(A)), and every
// purge run while B's transaction lasted skipped A
// (TestS17TenantsTakeNoTwoKeyAdvisoryLocks). Under a tenant's principal
// the Guard refuses a two-key advisory-lock call; the single-key space,
// which the SDK's statements under a tenant's principal use, runs (see the
// package's Security section for what it still shares).

// advisoryLocks are the advisory-lock functions (lower case).
var advisoryLocks = []string{
	"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
	"pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
	"pg_advisory_unlock", "pg_advisory_unlock_shared",
}

// locks records in a's shape whether statement m calls an advisory-lock
// function with two keys.
func (a *analysis) locks(m proto.Message) {
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		if f, ok := x.(*pg.FuncCall); ok && len(f.Args) != 1 && slices.Contains(advisoryLocks, funcName(f)) {
			a.sh.pairLock = true
		}
		return true
	})
}

// pairLockRefusal is the error of a two-key advisory lock taken under a
// tenant's principal.
var pairLockRefusal = fmt.Errorf("%w: under a tenant's principal an advisory lock takes one bigint key: the two-key space holds the system's claims of every tenant's purges and erasures", ErrUnscoped)
