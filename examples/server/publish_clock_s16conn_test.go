package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// skewedClock is a replica's clock: a base time plus an offset the test
// moves.
type skewedClock struct{ at atomic.Int64 }

func (c *skewedClock) now() time.Time          { return time.Unix(0, c.at.Load()).UTC() }
func (c *skewedClock) advance(d time.Duration) { c.at.Add(int64(d)) }

// startClockedApp is startTestApp with the app's clock and lease
// heartbeat ticks set before it serves.
func startClockedApp(t *testing.T, clk *skewedClock, ticks <-chan time.Time, args ...string) *testApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg, err := testConfig(t.TempDir(), args...)
	require.NoError(t, err)
	cfg.SessionKey = "a session key both replicas share, 32 bytes or more"
	cfg.PublishLease = time.Minute
	a, err := newApp(t.Context(), cfg, slog.New(slog.DiscardHandler), cfg.PublicURL)
	require.NoError(t, err)
	a.now, a.leaseTicks = clk.now, ticks
	srv := httptest.NewUnstartedServer(a.handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.close() })
	return &testApp{app: a, URL: "http://" + ln.Addr().String()}
}

// TestPublishLeaseOwnClockS16: two replicas on one database whose clocks
// disagree by two hours (B ahead), SQLite file and PostgreSQL. A's init
// is held (TikTok carried it out; the answer is on its way).
//
//   - B, whose clock reads A's lease as long lapsed, still answers 409
//     publish_in_progress and looks nothing up: a replica judges a lease
//     only by what it saw on its own clock.
//   - A lease of B's clock later, A's heartbeat has renewed the lease
//     once: B still answers publish_in_progress (the renewal is what
//     keeps the lease).
//   - Another lease later without a heartbeat (a sender that stopped), B
//     takes over and looks the publish up; not found (a private post is
//     never listed), it answers publish_in_doubt and the console of B
//     warns. A's answer, when it comes, replaces the conclusion: the
//     record is started, B replays A's publish, the warning is gone.
//
// TikTok's init is called once.
func TestPublishLeaseOwnClockS16(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		publishLeaseOwnClock(t, "-db", filepath.Join(dir, "shared.db"), "-kek", filepath.Join(dir, "kek.json"))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		publishLeaseOwnClock(t, "-db", db.DSN(), "-owner-db", db.OwnerDSN(), "-kek", filepath.Join(t.TempDir(), "kek.json"))
	})
}

func publishLeaseOwnClock(t *testing.T, dbArgs ...string) {
	front := &frontProxy{}
	frontSrv := httptest.NewServer(front)
	t.Cleanup(frontSrv.Close)
	plat, err := startPlatforms(config{PublicURL: frontSrv.URL}, frontSrv.URL, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(plat.close)
	target, _ := url.Parse(plat.tiktokSrv.BaseURL())
	proxy := &gatedProxy{target: target, gates: map[string]*gate{}}
	proxySrv := httptest.NewServer(proxy)
	t.Cleanup(proxySrv.Close)
	t.Cleanup(proxy.open)
	ctrl := sandboxFor(t, plat, proxySrv.URL)
	args := append([]string{"-sandbox-url", ctrl.URL, "-public-url", frontSrv.URL}, dbArgs...)

	base := time.Now().UTC()
	var clkA, clkB skewedClock
	clkA.at.Store(base.UnixNano())
	clkB.at.Store(base.Add(2 * time.Hour).UnixNano())
	ticksA := make(chan time.Time)
	a := startClockedApp(t, &clkA, ticksA, args...)
	b := startClockedApp(t, &clkB, nil, args...)
	front.set(a.URL)
	fa := newPublishFixture(t, a)
	fb := &publishFixture{t: t, a: b, c: fa.c, tenant: fa.tenant, conn: fa.conn}
	inits := func() int { return len(plat.tiktokSrv.RequestsTo(initPath)) }
	lookups := func() int { return len(plat.tiktokSrv.RequestsTo(videoListPath)) }
	record := func() publishRecord {
		var rec publishRecord
		fa.record(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&rec).Where("idem_key = ?", "clock-1").Scan(ctx)
		})
		return rec
	}
	const key, title = "clock-1", "Clocks apart"

	initHeld := proxy.hold(initPath)
	type answer struct {
		resp *http.Response
		body map[string]any
	}
	first := make(chan answer, 1)
	go func() {
		resp, body := fa.post(key, title)
		first <- answer{resp, body}
	}()
	select {
	case <-initHeld.reached:
	case <-time.After(2 * time.Minute):
		t.Fatal("A's init reaches TikTok")
	}

	// B's clock is two hours ahead: A's lease, written on A's clock,
	// reads as lapsed there. B leaves it to A.
	resp, out := fb.post(key, title)
	require.Equal(t, http.StatusConflict, resp.StatusCode, "%v", out)
	require.Equal(t, "publish_in_progress", str(out, "error", "code"), "B leaves A's live publish to A whatever its clock says")
	require.Zero(t, lookups(), "B looked nothing up")

	// A lease later on B's clock, A's heartbeat has renewed the lease.
	beat := record().Beat
	ticksA <- time.Now()
	require.Eventually(t, func() bool { return record().Beat > beat }, time.Minute, 10*time.Millisecond, "A's heartbeat renews the lease")
	clkB.advance(2 * time.Minute)
	resp, out = fb.post(key, title)
	require.Equal(t, http.StatusConflict, resp.StatusCode, "%v", out)
	require.Equal(t, "publish_in_progress", str(out, "error", "code"), "the renewed lease is A's")
	require.Zero(t, lookups())
	ctx := tenancy.WithPrincipal(t.Context(), tenancy.Principal{TenantID: fa.tenant})
	doubt, err := b.publishesInDoubt(ctx, fa.conn)
	require.NoError(t, err)
	require.Empty(t, doubt, "no warning while A is at work")

	// Another lease on B's clock without a heartbeat: B takes over.
	clkB.advance(2 * time.Minute)
	resp, out = fb.post(key, title)
	require.Equal(t, http.StatusConflict, resp.StatusCode, "%v", out)
	require.Equal(t, "publish_in_doubt", str(out, "error", "code"), "not listed: in doubt")
	require.Equal(t, 1, lookups(), "B looked the publish up once")
	require.Equal(t, publishInDoubt, record().State)
	doubt, err = b.publishesInDoubt(ctx, fa.conn)
	require.NoError(t, err)
	require.Len(t, doubt, 1, "B's console warns")

	// A's answer comes: TikTok's answer is truer than B's lookup.
	close(initHeld.release)
	got := <-first
	require.Equal(t, http.StatusAccepted, got.resp.StatusCode, "%v", got.body)
	require.Equal(t, publishStarted, record().State)
	resp, out = fb.post(key, title)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", out)
	require.Equal(t, str(got.body, "publish_id"), str(out, "publish_id"), "B answers A's publish")
	doubt, err = b.publishesInDoubt(ctx, fa.conn)
	require.NoError(t, err)
	require.Empty(t, doubt)
	require.Equal(t, 1, inits(), "TikTok's init called once")
}
