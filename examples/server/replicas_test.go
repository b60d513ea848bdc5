package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// launched is a server process started by launch, not yet known to listen.
type launched struct {
	p    *process
	line chan string // its first line of output, or "" when it ended first
}

// launch starts the server binary with args (and the environment plus env)
// without waiting for it; wait reads its "listening" line.
func launch(t *testing.T, env []string, args ...string) *launched {
	t.Helper()
	bin, err := buildServer()
	require.NoError(t, err)
	dir := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TIKTOK_CLIENT_KEY=", "TIKTOK_CLIENT_SECRET=", "META_APP_ID=", "META_APP_SECRET="), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &process{cmd: cmd, Dir: dir, stderr: &lockedBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	l := &launched{p: p, line: make(chan string, 1)}
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		l.line <- line
		_, _ = io.Copy(io.Discard, stdout)
		p.waitFor(cmd)
	}()
	p.killAtCleanup(t)
	return l
}

func (l *launched) wait(t *testing.T) *process {
	t.Helper()
	var line string
	select {
	case line = <-l.line:
	case <-time.After(90 * time.Second):
		_ = l.p.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, in its stderr
		time.Sleep(time.Second)
		t.Fatalf("server did not start within 90 s:\n%s", l.p.stderr.String())
	}
	m := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
	require.NotEmpty(t, m, "%q\n%s", line, l.p.stderr.String())
	l.p.URL = m
	return l.p
}

// balancer is a round-robin reverse proxy in front of the replicas: the
// public URL the emulated platforms redirect to and post webhooks at.
type balancer struct {
	mu       sync.Mutex
	backends []*httputil.ReverseProxy
	urls     []string // of backends, in order
	next     atomic.Uint64
}

func (b *balancer) add(raw string) {
	u, _ := url.Parse(raw)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, httputil.NewSingleHostReverseProxy(u))
	b.urls = append(b.urls, raw)
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	bs := b.backends
	b.mu.Unlock()
	if len(bs) == 0 {
		http.Error(w, "no replica yet", http.StatusServiceUnavailable)
		return
	}
	bs[b.next.Add(1)%uint64(len(bs))].ServeHTTP(w, r)
}

// TestTwoReplicas starts two server processes together on one PostgreSQL
// database (two roles, as in production), behind a round-robin balancer,
// with one shared sandbox process, and drives a tenant's life across
// both: sign-up on one and login on the other, contacts and deals, a
// TikTok connection begun on one and completed on the other, a
// disconnect, a privacy request, the login rate limit and the tenant's
// closure. The background jobs run as River jobs every second; each
// effect must happen exactly once and neither replica may log an error.
func TestTwoReplicas(t *testing.T) {
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("set SOCIALCRM_TEST_POSTGRES to run the two-replica test (CI does)")
	}
	db := dbtest.Postgres(t)
	lb := &balancer{}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)

	sandbox := launch(t, nil, "-addr", "127.0.0.1:0", "-sandbox-only", "-public-url", front.URL).wait(t)

	// One key-encryption key and one session key for both replicas.
	kek := filepath.Join(t.TempDir(), "kek.json")
	_, err := insecurekeyfile.Open(kek)
	require.NoError(t, err)
	const rate = 6
	env := []string{"SOCIALCRM_SESSION_KEY=" + strings.Repeat("k", 40)}
	args := []string{"-addr", "127.0.0.1:0", "-db", db.DSN(), "-owner-db", db.OwnerDSN(), "-kek", kek,
		"-sandbox-url", sandbox.URL, "-public-url", front.URL, "-jobs-interval", "1s", "-closure-grace", "1s",
		"-login-rate", strconv.Itoa(rate)}
	// Started together: the migrations (socialcrm's, the server's own
	// tables, River's) must serialize.
	la, lbb := launch(t, env, args...), launch(t, env, args...)
	ra, rb := la.wait(t), lbb.wait(t)
	lb.add(ra.URL)
	lb.add(rb.URL)

	a, b := newClient(t, ra.URL), newClient(t, rb.URL)
	const password = "a long enough password"
	su := a.call("POST", "/v1/signup", map[string]any{"tenant_name": "Acme", "email": "ada@acme.example", "name": "Ada", "password": password}, 201)
	tenantID := str(su, "tenant", "id")
	signIn := time.Now().Truncate(time.Minute) // the minute the sign-in below counts in, if it does not turn meanwhile
	login := b.call("POST", "/v1/login", map[string]string{"tenant_id": tenantID, "email": "ada@acme.example", "password": password}, 200)
	if !time.Now().Truncate(time.Minute).Equal(signIn) {
		signIn = time.Time{} // the minute turned during the sign-in: which one it counts in is unknown
	}
	// A session opened on one replica is used on the other.
	a.token = str(login, "session", "access_token")
	b.token = str(su, "session", "access_token")
	require.Equal(t, "owner", str(a.call("GET", "/v1/me", nil, 200), "role"))
	require.Equal(t, "owner", str(b.call("GET", "/v1/me", nil, 200), "role"))

	// The login rate limit is shared: attempts alternate between the
	// replicas, and the limit holds for the sum. (A window boundary in
	// the middle resets the count; then the round is run again. The
	// sign-in above counts only when it fell in the round's minute.)
	for round := 0; ; round++ {
		window := time.Now().Truncate(time.Minute)
		limit := rate
		if window.Equal(signIn) {
			limit = rate - 1
		}
		allowed := 0
		for i := range 2 * rate {
			c := []*client{a, b}[i%2]
			resp, _ := c.do("POST", "/v1/login", "application/json",
				strings.NewReader(`{"tenant_id":"`+tenantID+`","email":"ada@acme.example","password":"wrong password!"}`))
			if resp.StatusCode == http.StatusUnauthorized {
				allowed++
			} else {
				require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
			}
		}
		if time.Now().Truncate(time.Minute).Equal(window) {
			require.LessOrEqual(t, allowed, limit, "the replicas share one count (with the sign-in above when it fell in this minute)")
			require.Positive(t, allowed)
			break
		}
		require.Less(t, round, 2, "the minute keeps turning")
	}

	// Contacts and deals, written on one replica, read and changed on the
	// other.
	ct := a.call("POST", "/v1/contacts", map[string]any{"first_name": "Ann", "email": "ann@lee.example"}, 201)
	contactID := str(ct, "contact", "id")
	require.Equal(t, "ann@lee.example", str(b.call("GET", "/v1/contacts/"+contactID, nil, 200), "contact", "email"))
	upd := field(b.call("GET", "/v1/contacts/"+contactID, nil, 200), "contact").(map[string]any)
	upd["first_name"] = "Anne"
	b.call("PUT", "/v1/contacts/"+contactID, upd, 200)
	require.Equal(t, "Anne", str(a.call("GET", "/v1/contacts/"+contactID, nil, 200), "contact", "first_name"))
	pl := b.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new", "won"}}, 201)
	dl := a.call("POST", "/v1/deals", map[string]any{"pipeline_id": str(pl, "pipeline", "id"), "title": "Rings", "amount": 1000,
		"currency": "EUR", "contact_id": contactID}, 201)
	b.call("POST", "/v1/deals/"+str(dl, "deal", "id")+"/stage", map[string]any{"version": 1, "stage": "won"}, 200)
	require.Equal(t, "won", str(a.call("GET", "/v1/deals/"+str(dl, "deal", "id"), nil, 200), "deal", "stage"))

	// TikTok through the shared sandbox: begun on one replica, the
	// consent's redirect lands on the balancer, completed on the other.
	st := a.call("POST", "/v1/connections/tiktok/start", nil, 200)
	callback := a.consent(str(st, "authorize_url"), "sandbox-creator")
	require.True(t, strings.HasPrefix(callback, front.URL+"/connect/tiktok/callback?"), callback)
	conn := b.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": callback}, 201)
	connID := str(conn, "connection", "id")
	a.call("POST", "/v1/connections/"+connID+"/sync", nil, 200)
	// A code spent already: the platform's invalid_grant is the client's
	// problem, a 4xx — never a 500.
	st2 := b.call("POST", "/v1/connections/tiktok/start", nil, 200)
	cb2 := b.consent(str(st2, "authorize_url"), "sandbox-brand")
	u2, err := url.Parse(cb2)
	require.NoError(t, err)
	q := u2.Query()
	q.Set("code", mustQuery(t, callback, "code"))
	u2.RawQuery = q.Encode()
	resp, body := a.do("POST", "/v1/connections/tiktok/complete", "application/json",
		strings.NewReader(`{"callback_url":"`+u2.String()+`"}`))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"code":"invalid_grant"`)
	a.call("DELETE", "/v1/connections/"+connID, nil, 200)

	// A privacy request, each step on another replica.
	er := a.call("POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"contact_id": contactID}}, 201)
	erID := str(er, "request", "id")
	b.call("POST", "/v1/privacy/requests/"+erID+"/verify", map[string]string{"outcome": "verified"}, 200)
	// The resumption job (every second here) may have finished the
	// verified erasure before the explicit call: then the call finds it
	// closed. Either way it completes, once.
	resp, body = a.do("POST", "/v1/privacy/requests/"+erID+"/erase", "", nil)
	require.Contains(t, []int{http.StatusOK, http.StatusConflict}, resp.StatusCode, "%s", body)
	require.Equal(t, "completed", str(b.call("GET", "/v1/privacy/requests/"+erID, nil, 200), "request", "status"))
	b.call("GET", "/v1/contacts/"+contactID, nil, 404)

	// The tenant closes on one replica; the purge job runs on whichever
	// replica River gives it to, once.
	b.call("POST", "/v1/tenant/close", map[string]string{"confirm": "Acme"}, 200)
	deadline := time.Now().Add(30 * time.Second)
	for status(t, db.Owner, tenantID) != "purged" {
		require.True(t, time.Now().Before(deadline), "the tenant is purged within seconds of its grace")
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // more periodic runs, which must find nothing to do

	// Each effect once.
	actions := auditCounts(t, db.Owner, tenantID)
	require.Equal(t, 1, actions["tenant.purged"], "%v", actions)
	require.Equal(t, 1, actions["vault.key_destroyed"], "%v", actions)
	receipts := receiptsPerCategory(t, db.Owner, tenantID)
	for cat, n := range receipts {
		require.Equal(t, 1, n, "one receipt per batch (each category fits in one): %s", cat)
	}
	require.NotEmpty(t, receipts)
	var revokes struct {
		Count int `json:"count"`
	}
	// The sandbox process's control API is not the server's API: asked with
	// plain HTTP, not through the client that checks against openapi.yaml.
	resp, err = http.Get(sandbox.URL + "/sandbox/requests?platform=tiktok&path=/v2/oauth/revoke/")
	require.NoError(t, err)
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.NoError(t, jsonDecode(body, &revokes))
	require.Equal(t, 1, revokes.Count, "one revocation call at the platform")
	var purgeRuns int
	require.NoError(t, db.Owner.NewRaw("SELECT count(*) FROM river_job WHERE kind = 'socialcrm.retention.purge' AND state = 'completed'").Scan(context.Background(), &purgeRuns))
	require.Positive(t, purgeRuns)
	t.Logf("purge jobs completed: %d; receipts: %v; audit: %v", purgeRuns, receipts, actions)

	// No errors anywhere.
	ra.stop(t)
	rb.stop(t)
	for name, p := range map[string]*process{"a": ra, "b": rb} {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, `"component":"river"`) && strings.Contains(line, `"error":"context canceled"`) {
				continue // River's periodic enqueuer, stopped mid-tick by the shutdown
			}
			require.NotContains(t, line, `"level":"ERROR"`, "replica %s logged an error", name)
		}
	}
	sandbox.stop(t)
}

func mustQuery(t *testing.T, raw, key string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	v := u.Query().Get(key)
	require.NotEmpty(t, v, "%s in %s", key, raw)
	return v
}

// asTenant runs fn in a transaction of owner with the tenant's row-level
// security setting.
func asTenant(t *testing.T, owner *bun.DB, tenantID string, fn func(tx bun.Tx) error) {
	t.Helper()
	require.NoError(t, owner.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT set_config('app.tenant_id', ?, true)", tenantID); err != nil {
			return err
		}
		return fn(tx)
	}))
}

func status(t *testing.T, owner *bun.DB, tenantID string) string {
	var s string
	asTenant(t, owner, tenantID, func(tx bun.Tx) error {
		return tx.NewRaw("SELECT status FROM socialcrm_tenants WHERE id = ?", tenantID).Scan(context.Background(), &s)
	})
	return s
}

func auditCounts(t *testing.T, owner *bun.DB, tenantID string) map[string]int {
	var rows []struct {
		Action string `bun:"action"`
		N      int    `bun:"n"`
	}
	asTenant(t, owner, tenantID, func(tx bun.Tx) error {
		return tx.NewRaw("SELECT action, count(*) AS n FROM socialcrm_audit_log WHERE tenant_id = ? GROUP BY action", tenantID).Scan(context.Background(), &rows)
	})
	out := map[string]int{}
	for _, r := range rows {
		out[r.Action] = r.N
	}
	return out
}

func receiptsPerCategory(t *testing.T, owner *bun.DB, tenantID string) map[string]int {
	var targets []string
	asTenant(t, owner, tenantID, func(tx bun.Tx) error {
		return tx.NewRaw("SELECT target FROM socialcrm_audit_log WHERE tenant_id = ? AND action = 'retention.purged'", tenantID).Scan(context.Background(), &targets)
	})
	out := map[string]int{}
	for _, tg := range targets {
		out[tg]++
	}
	return out
}

func jsonDecode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", b, err)
	}
	return nil
}
