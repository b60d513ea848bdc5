package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

const videoListPath = "/v2/video/list/"

// gate holds one request to the emulator after the emulator has carried
// it out, until release: reached is closed when it is held.
type gate struct {
	reached, release chan struct{}
}

func newGate() *gate { return &gate{reached: make(chan struct{}), release: make(chan struct{})} }

// gatedProxy forwards to the TikTok emulator; the next request to a path
// with a gate is held there, its answer delivered on release.
type gatedProxy struct {
	target *url.URL
	mu     sync.Mutex
	gates  map[string]*gate
	all    []*gate
}

func (g *gatedProxy) hold(path string) *gate {
	gt := newGate()
	g.mu.Lock()
	g.gates[path] = gt
	g.all = append(g.all, gt)
	g.mu.Unlock()
	return gt
}

// open releases every gate not released yet (a test that failed midway).
func (g *gatedProxy) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, gt := range g.all {
		select {
		case <-gt.release:
		default:
			close(gt.release)
		}
	}
}

func (g *gatedProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	forward(w, r, g.target, func() {
		g.mu.Lock()
		gt := g.gates[r.URL.Path]
		delete(g.gates, r.URL.Path)
		g.mu.Unlock()
		if gt != nil {
			close(gt.reached)
			<-gt.release
		}
	})
}

// TestPublishTwoReplicasS15: two replicas (separate database handles) on
// one database, SQLite file and PostgreSQL, the TikTok emulator behind a
// proxy that holds chosen answers.
//
//   - Replica A's init is held (TikTok carried it out, its answer is on its
//     way). The same request with the same key on replica B answers 409
//     publish_in_progress without looking anything up: A's lease is live.
//     Once A's answer comes, B replays A's publish.
//   - A's lease lapses while its init is held (a sender that stopped
//     renewing it). B takes the key over and looks the publish up; the
//     lookup's answer is held while A's answer comes and is recorded. The
//     lookup found nothing (a private post is never listed), but B does not
//     overwrite A's result: it replays A's publish, and the record stays
//     started.
//
// Every request initiates TikTok's publish at most once per key.
func TestPublishTwoReplicasS15(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		twoReplicasPublish(t, "-db", filepath.Join(dir, "shared.db"), "-kek", filepath.Join(dir, "kek.json"))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		twoReplicasPublish(t, "-db", db.DSN(), "-owner-db", db.OwnerDSN(), "-kek", filepath.Join(t.TempDir(), "kek.json"))
	})
}

func twoReplicasPublish(t *testing.T, dbArgs ...string) {
	// The replicas' public URL, which the emulated app knows, reaches A.
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
	var replicas [2]*testApp
	for i := range replicas {
		replicas[i] = startTestApp(t, slog.New(slog.DiscardHandler), func(cfg *config) {
			cfg.SessionKey = "a session key both replicas share, 32 bytes or more"
			cfg.PublishLease = time.Hour // renewed only by the test
		}, args...)
	}
	a, b := replicas[0], replicas[1]
	front.set(a.URL)
	fa := newPublishFixture(t, a)
	fb := &publishFixture{t: t, a: b, c: fa.c, tenant: fa.tenant, conn: fa.conn}
	inits := func() int { return len(plat.tiktokSrv.RequestsTo(initPath)) }
	lookups := func() int { return len(plat.tiktokSrv.RequestsTo(videoListPath)) }

	type answer struct {
		resp *http.Response
		body map[string]any
	}
	postOnA := func(key, title string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			resp, body := fa.post(key, title)
			ch <- answer{resp, body}
		}()
		return ch
	}
	waitFor := func(ch chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(2 * time.Minute):
			t.Fatal(what)
		}
	}
	state := func(key string) string {
		var s string
		fa.record(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model((*publishRecord)(nil)).Column("state").Where("idem_key = ?", key).Scan(ctx, &s)
		})
		return s
	}

	// A live sender: B waits for it.
	initHeld := proxy.hold(initPath)
	first := postOnA("two-1", "Two replicas")
	waitFor(initHeld.reached, "A's init reaches TikTok")
	before := lookups()
	resp, out := fb.post("two-1", "Two replicas")
	require.Equal(t, http.StatusConflict, resp.StatusCode, "%v", out)
	require.Equal(t, "publish_in_progress", str(out, "error", "code"), "B leaves A's live publish to A")
	require.Equal(t, before, lookups(), "B looked nothing up")
	require.Equal(t, publishSending, state("two-1"))
	close(initHeld.release)
	got := <-first
	require.Equal(t, http.StatusAccepted, got.resp.StatusCode, "%v", got.body)
	id := str(got.body, "publish_id")
	resp, out = fb.post("two-1", "Two replicas")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", out)
	require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
	require.Equal(t, id, str(out, "publish_id"), "B answers A's publish")
	require.Equal(t, 1, inits())

	// A's lease lapses mid-send: B takes over and looks up, A's answer
	// comes meanwhile and B's "not found" does not overwrite it.
	initHeld = proxy.hold(initPath)
	second := postOnA("two-2", "Lapsed lease")
	waitFor(initHeld.reached, "A's second init reaches TikTok")
	fa.record(func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model((*publishRecord)(nil)).Set("lease_until = ?", leaseLapsed).Where("idem_key = ?", "two-2").Exec(ctx)
		return err
	})
	lookupHeld := proxy.hold(videoListPath)
	third := make(chan answer, 1)
	go func() {
		resp, body := fb.post("two-2", "Lapsed lease")
		third <- answer{resp, body}
	}()
	waitFor(lookupHeld.reached, "B looks the publish up")
	close(initHeld.release)
	got = <-second
	require.Equal(t, http.StatusAccepted, got.resp.StatusCode, "%v", got.body)
	id = str(got.body, "publish_id")
	require.Equal(t, publishStarted, state("two-2"))
	close(lookupHeld.release)
	got = <-third
	require.Equal(t, http.StatusAccepted, got.resp.StatusCode, "B answers the true outcome: %v", got.body)
	require.Equal(t, id, str(got.body, "publish_id"))
	require.Equal(t, publishStarted, state("two-2"), "A's result is never overwritten")
	require.Equal(t, 2, inits(), "one init per key")

	// The console warns of neither.
	ctx := tenancy.WithPrincipal(t.Context(), tenancy.Principal{TenantID: fa.tenant})
	doubt, err := b.publishesInDoubt(ctx, fa.conn)
	require.NoError(t, err)
	require.Empty(t, doubt)
}
