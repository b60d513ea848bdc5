package retention

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/tenancy"
)

// pool is a database handle that hands out dedicated connections: a
// *bun.DB, or a type embedding one (a host's wrapper, the test harness's).
// A session advisory lock lives on one connection; a transaction (bun.Tx)
// given as the engine's database has none to give, and claims then hold
// in this process only.
type pool interface {
	Conn(ctx context.Context) (bun.Conn, error)
	Dialect() schema.Dialect
}

// eraseLockSpace is the first key of the PostgreSQL advisory locks that
// hold a request's erasure (the second is a hash of the request id).
const eraseLockSpace int32 = 0x65726173 // "eras"

// claimRequest makes this run the only one erasing request id until
// release is called, waiting while another run holds it — in this process,
// or, on PostgreSQL, in any process on the database (a session advisory
// lock, which the server releases if the process dies). It gives up with
// the context's error when ctx ends while it waits.
func (e *Engine) claimRequest(ctx context.Context, id string) (release func(), err error) {
	mine := make(chan struct{})
	for {
		held, busy := e.erasing.LoadOrStore(id, mine)
		if !busy {
			break
		}
		e.point("claim.wait")
		select {
		case <-held.(chan struct{}):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	local := func() {
		e.erasing.Delete(id)
		close(mine)
	}
	db, isDB := e.db.(pool)
	if !isDB || db.Dialect().Name() != dialect.PG {
		return local, nil
	}
	// The lock is the engine's own maintenance, taken as the system: under
	// a tenant's principal the Guard refuses session-level advisory locks
	// (one left on a pooled connection could stall another tenant's
	// work); this one lives on a connection of its own, released below.
	ctx = tenancy.System(ctx, "retention-erase-claim")
	conn, err := db.Conn(ctx)
	if err != nil {
		local()
		return nil, fmt.Errorf("retention: claim erasure: %w", err)
	}
	fail := func(err error) (func(), error) {
		conn.Close()
		local()
		return nil, fmt.Errorf("retention: claim erasure: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(?, hashtext(?))", eraseLockSpace, id).Scan(&got); err != nil {
		return fail(err)
	}
	if !got { // another process runs it: wait for it
		e.point("claim.wait")
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?, hashtext(?))", eraseLockSpace, id); err != nil {
			return fail(err)
		}
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?, hashtext(?))", eraseLockSpace, id)
		conn.Close()
		local()
	}, nil
}
