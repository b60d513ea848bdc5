package sqldb_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// lateCancelConn arranges, on the network connection under pgx, the
// interleaving a loaded machine produces now and then. The statement's
// write is slow, so that pgx's background reader starts (it does after
// 15ms of writing) and reads the answer; the statement's context ends
// while the answer's last byte is still to come, and pgx sets a deadline
// on the connection to interrupt the call; the last byte arrives anyway,
// and the background reader, the write not yet returned, reads again —
// a read the deadline interrupts. The call ends with its answer; pgx
// clears the deadline, but keeps the timeout of that extra read for the
// connection's next read, whoever sends it.
type lateCancelConn struct {
	net.Conn
	cancel context.CancelFunc

	mu       sync.Mutex
	armed    bool
	reads    int
	last     byte          // the answer's last byte, held back
	third    chan struct{} // the background reader's third read began
	deadline chan struct{} // the cancellation set a deadline
	stale    chan struct{} // the read it interrupted returned
	done     chan struct{} // the interleaving happened to the end
}

// arm makes the next write play the interleaving, cancel ending the
// statement's context.
func (c *lateCancelConn) arm(cancel context.CancelFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.reads, c.cancel = true, 0, cancel
	c.third, c.deadline, c.stale, c.done = make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
}

func (c *lateCancelConn) state() (bool, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed, c.reads
}

func (c *lateCancelConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if armed, _ := c.state(); armed {
		<-c.third // the write "takes" until the reader has read the whole answer and reads again
	}
	return n, err
}

// readyForQuery ends every answer of the server.
var readyForQuery = []byte{'Z', 0, 0, 0, 5}

func (c *lateCancelConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	armed := c.armed
	if armed {
		c.reads++
	}
	reads := c.reads
	c.mu.Unlock()
	switch {
	case !armed:
		return c.Conn.Read(b)
	case reads == 1: // the background reader: the answer but its last byte
		n := 0
		for {
			m, err := c.Conn.Read(b[n:])
			n += m
			if err != nil {
				return n, err
			}
			if n >= 6 && bytes.Equal(b[n-6:n-1], readyForQuery) {
				c.last = b[n-1]
				return n - 1, nil
			}
		}
	case reads == 2: // the context ends; the last byte arrives after all
		c.cancel()
		<-c.deadline
		b[0] = c.last
		return 1, nil
	default: // the next read, under way at the deadline
		close(c.third)
		n, err := c.Conn.Read(b) // the deadline is past: it times out
		close(c.stale)
		return n, err
	}
}

func (c *lateCancelConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	armed, reads := c.armed, c.reads
	c.mu.Unlock()
	if armed && reads >= 2 {
		if !t.IsZero() {
			close(c.deadline)
		} else {
			<-c.stale // pgx clears the deadline once the interrupted read has returned
			c.mu.Lock()
			c.armed = false
			c.mu.Unlock()
			defer close(c.done)
		}
	}
	return c.Conn.SetDeadline(t)
}

// TestCancelledCallLeavesNothingForTheNext: a statement whose context ends
// while it is being called — here at the one moment where pgx, given its
// answer, keeps the timeout its cancellation caused for the connection's
// next read — does not break the next statement on the pool's only
// connection, sent with a context that never ends (and first clearing a
// statement the connection's cache dropped when it failed, the call the
// timeout reached first).
func TestCancelledCallLeavesNothingForTheNext(t *testing.T) {
	if !havePostgres(t) {
		return
	}
	db := dbtest.Postgres(t)
	c, err := sqldb.PostgresConnector(db.OwnerDSN())
	require.NoError(t, err)
	var last atomic.Pointer[lateCancelConn] // the connection dialled last
	sqldb.WrapNet(c, func(nc net.Conn) net.Conn {
		w := &lateCancelConn{Conn: nc}
		last.Store(w)
		return w
	})
	h := sql.OpenDB(c)
	t.Cleanup(func() { h.Close() })
	h.SetMaxOpenConns(1)
	bg := context.Background()

	for round := range 3 {
		// A statement that fails leaves its prepared twin for the
		// connection's next statement to deallocate first.
		var n int
		require.Error(t, h.QueryRowContext(bg, "SELECT 1/0").Scan(&n))

		hook := last.Load()
		ctx, cancel := context.WithCancel(bg)
		hook.arm(cancel)
		var now time.Time
		_ = h.QueryRowContext(ctx, "SELECT now()").Scan(&now) // its context ends mid-call: it may fail
		select {
		case <-hook.done:
		case <-time.After(time.Minute): // a watchdog, not a measure: the interleaving did not happen
			t.Fatalf("round %d: the interleaving did not happen", round)
		}
		cancel()

		require.NoError(t, h.QueryRowContext(bg, "SELECT 2").Scan(&n), "round %d: the next statement", round)
		require.Equal(t, 2, n)
		_, err := h.ExecContext(bg, "SELECT 3")
		require.NoError(t, err, "round %d", round)
		var got string
		require.NoError(t, h.QueryRowContext(sqldb.WithSetting(bg, "app.s", "x"), "SELECT current_setting('app.s', true)").Scan(&got))
		require.Equal(t, "x", got, "round %d", round)
		if errors.Is(ctx.Err(), context.Canceled) {
			continue
		}
		t.Fatalf("round %d: the context did not end", round)
	}
}
