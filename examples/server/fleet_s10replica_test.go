package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// sandboxCount is how many requests the shared sandbox's emulator of
// platform served at path.
func sandboxCount(t *testing.T, sandbox *process, platform, path string) int {
	t.Helper()
	resp, err := http.Get(sandbox.URL + "/sandbox/requests?platform=" + platform + "&path=" + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Count int `json:"count"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Count
}

// rawLogin posts a sign-in to base without the test client (safe from any
// goroutine) and returns the status, the Retry-After header and the body.
func rawLogin(hc *http.Client, base, tenantID, email, password string) (int, string, string, error) {
	body, _ := json.Marshal(map[string]string{"tenant_id": tenantID, "email": email, "password": password})
	resp, err := hc.Post(base+"/v1/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b), err
}

// TestThreeReplicasS10 checks, from outside, what three replicas of the
// server on one PostgreSQL database with one shared sandbox promise: the
// account lockout and the login rate limit hold for the sum of the attempts
// on every replica; OAuth connections to TikTok and Meta begun on one
// replica complete on another; a code spent already is a 4xx on every
// route that completes a connection; the tenant's closure purges once, with
// one receipt per category and one revocation at the platform per live
// connection; and the periodic jobs run at most once per period.
func TestThreeReplicasS10(t *testing.T) {
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("set SOCIALCRM_TEST_POSTGRES to run the three-replica test (CI does)")
	}
	db := dbtest.Postgres(t)
	lb := &balancer{}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)
	sandbox := launch(t, nil, "-addr", "127.0.0.1:0", "-sandbox-only", "-public-url", front.URL).wait(t)
	kek := filepath.Join(t.TempDir(), "kek.json")
	_, err := insecurekeyfile.Open(kek)
	require.NoError(t, err)
	const rate = 12
	env := []string{"SOCIALCRM_SESSION_KEY=" + strings.Repeat("s", 40)}
	args := []string{"-addr", "127.0.0.1:0", "-db", db.DSN(), "-owner-db", db.OwnerDSN(), "-kek", kek,
		"-sandbox-url", sandbox.URL, "-public-url", front.URL, "-jobs-interval", "1s", "-closure-grace", "1s",
		"-login-rate", strconv.Itoa(rate)}
	ps := startTogether(t, 3, env, args...)
	cs := make([]*client, len(ps))
	for i, p := range ps {
		lb.add(p.URL)
		cs[i] = newClient(t, p.URL)
	}

	const email, password = "grace@hopper.example", "a long enough password"
	su := cs[0].call("POST", "/v1/signup", map[string]any{"tenant_name": "Hopper", "email": email, "name": "Grace Hopper", "password": password}, 201)
	tenantID := str(su, "tenant", "id")
	for _, c := range cs {
		c.token = str(su, "session", "access_token")
	}

	// Account lockout: eight wrong passwords at once, spread over the
	// three replicas, lock the member after the fifth as one process
	// would; then the right password is refused too. The answers are
	// the same 401 either way and name no one.
	var wg sync.WaitGroup
	type answer struct {
		status     int
		retryAfter string
		body       string
		err        error
	}
	answers := make([]answer, 8)
	for i := range answers {
		wg.Go(func() {
			var a answer
			a.status, a.retryAfter, a.body, a.err = rawLogin(http.DefaultClient, ps[i%3].URL, tenantID, email, "wrong password #"+strconv.Itoa(i))
			answers[i] = a
		})
	}
	wg.Wait()
	for _, a := range answers {
		require.NoError(t, a.err)
		require.Equal(t, http.StatusUnauthorized, a.status, a.body)
		require.NotContains(t, a.body, "grace")
		require.Contains(t, a.body, `"request_id"`)
	}
	code, _, body, err := rawLogin(http.DefaultClient, ps[1].URL, tenantID, email, password)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, code, "locked: the right password is refused; %s", body)
	actions := auditCounts(t, db.Owner, tenantID)
	require.Equal(t, 1, actions["member.locked"], "%v", actions)
	require.Equal(t, 4, actions["login.failed"], "%v", actions)
	require.Equal(t, 4, actions["login.locked"], "%v", actions)

	// The login rate limit per address, from another loopback address
	// than the attempts above (its own count): the replicas together
	// allow rate attempts a minute.
	fromElsewhere := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	untilNextMinute := func() time.Duration { return time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)) }
	for round := 0; ; round++ {
		window := time.Now().Truncate(time.Minute)
		allowed, limited := 0, 0
		for i := 0; limited < 3; i++ {
			code, retry, body, err := rawLogin(fromElsewhere, ps[i%3].URL, "00000000-0000-4000-8000-000000000000", email, "guess")
			require.NoError(t, err)
			switch code {
			case http.StatusUnauthorized:
				allowed++
			case http.StatusTooManyRequests:
				limited++
				require.Equal(t, "60", retry)
				require.Contains(t, body, `"code":"rate_limited"`)
				require.Contains(t, body, `"request_id"`)
				require.NotContains(t, body, "grace")
			default:
				t.Fatalf("login answered %d: %s", code, body)
			}
			require.Less(t, i, 4*rate, "the limit never applied")
		}
		if time.Now().Truncate(time.Minute).Equal(window) {
			require.Equal(t, rate, allowed, "the replicas share one count per address and minute")
			break
		}
		require.Less(t, round, 2, "the minute keeps turning")
		time.Sleep(untilNextMinute() + 100*time.Millisecond) // a fresh count
	}

	// TikTok begun on replica 2, completed on replica 3; Meta begun on 3
	// and completed on 1. The redirects land on the balancer.
	st := cs[1].call("POST", "/v1/connections/tiktok/start", nil, 200)
	creatorCB := cs[1].consent(str(st, "authorize_url"), "sandbox-creator")
	creator := str(cs[2].call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": creatorCB}, 201), "connection", "id")
	st = cs[0].call("POST", "/v1/connections/tiktok/start", nil, 200)
	brand := str(cs[1].call("POST", "/v1/connections/tiktok/complete",
		map[string]string{"callback_url": cs[0].consent(str(st, "authorize_url"), "sandbox-brand")}, 201), "connection", "id")
	ms := cs[2].call("POST", "/v1/connections/meta/start", nil, 200)
	metaCB := cs[2].consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")
	require.True(t, strings.HasPrefix(metaCB, front.URL+"/connect/meta/callback?"), metaCB)
	mc := cs[0].call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": metaCB}, 201)
	require.NotEmpty(t, str(mc, "connection", "id"))

	// A code spent already, with a fresh state: the platform refuses the
	// grant, the client is told so with a 4xx, on either platform.
	reuse := func(cb, spent string) string {
		u, err := url.Parse(cb)
		require.NoError(t, err)
		q := u.Query()
		q.Set("code", mustQuery(t, spent, "code"))
		u.RawQuery = q.Encode()
		return u.String()
	}
	st = cs[2].call("POST", "/v1/connections/tiktok/start", nil, 200)
	cb := reuse(cs[2].consent(str(st, "authorize_url"), "sandbox-creator"), creatorCB)
	resp, raw := cs[0].do("POST", "/v1/connections/tiktok/complete", "application/json", strings.NewReader(`{"callback_url":"`+cb+`"}`))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", raw)
	ms = cs[1].call("POST", "/v1/connections/meta/start", nil, 200)
	cb = reuse(cs[1].consentMeta(str(ms, "authorize_url"), "sandbox-fb-user"), metaCB)
	resp, raw = cs[2].do("POST", "/v1/connections/meta/complete", "application/json", strings.NewReader(`{"callback_url":"`+cb+`"}`))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", raw)

	// The creator removes the app at TikTok: the signed webhook reaches a
	// replica through the balancer; every replica then sees the
	// connection revoked, and the routes that use it answer 4xx, not 500.
	cs[0].call("POST", "/v1/sandbox/tiktok/deauthorize", map[string]string{"open_id": "sandbox-creator"}, 204)
	require.Equal(t, "revoked", str(cs[2].call("GET", "/v1/connections/"+creator, nil, 200), "connection", "status"))
	for _, c := range cs {
		resp, raw := c.do("POST", "/v1/connections/"+creator+"/sync", "", nil)
		require.True(t, resp.StatusCode >= 400 && resp.StatusCode < 500, "%d %s", resp.StatusCode, raw)
	}
	cs[1].call("POST", "/v1/connections/"+brand+"/sync", nil, 200)
	syncJobs := func() int {
		var n int
		require.NoError(t, db.Owner.NewRaw(`SELECT count(*) FROM river_job WHERE args->>'task' = ? AND state = 'completed'`, kindSync).Scan(context.Background(), &n))
		return n
	}
	// The scheduled sync, every second on each replica's schedule, runs
	// once per period: each completed run calls TikTok once for the one
	// active TikTok connection (a run in flight at either count may be
	// off by one), not once per replica.
	u0, j0 := sandboxCount(t, sandbox, "tiktok", "/v2/user/info/"), syncJobs()
	time.Sleep(3 * time.Second)
	u1, j1 := sandboxCount(t, sandbox, "tiktok", "/v2/user/info/"), syncJobs()
	require.Positive(t, j1-j0, "the sync job runs")
	require.InDelta(t, j1-j0, u1-u0, 1, "TikTok calls %d→%d for sync runs %d→%d", u0, u1, j0, j1)

	// A verified erasure started on replica 1, which is then killed
	// (SIGKILL) while it works, is finished by another replica's
	// resumption job: the request completes once and its receipts count
	// every row of the subject once, whatever part the killed replica
	// had done.
	contactID := str(cs[0].call("POST", "/v1/contacts", map[string]any{"first_name": "Kim", "email": "kim@erase.example"}, 201), "contact", "id")
	const notes = 60
	codes := make([]int, notes)
	for w := range 6 {
		wg.Go(func() {
			for i := w; i < notes; i += 6 {
				req, _ := http.NewRequest("POST", ps[i%3].URL+"/v1/notes", strings.NewReader(`{"contact_id":"`+contactID+`","body":"note `+strconv.Itoa(i)+`"}`))
				req.Header.Set("Authorization", "Bearer "+cs[0].token)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					codes[i] = resp.StatusCode
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	for i, code := range codes {
		require.Equal(t, http.StatusCreated, code, "note %d", i)
	}
	other := str(cs[1].call("POST", "/v1/contacts", map[string]any{"first_name": "Lee", "email": "lee@erase.example"}, 201), "contact", "id")
	erasure := str(cs[0].call("POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"contact_id": contactID}}, 201), "request", "id")
	cs[1].call("POST", "/v1/privacy/requests/"+erasure+"/verify", map[string]string{"outcome": "verified"}, 200)
	go func() { // its answer never comes
		req, _ := http.NewRequest("POST", ps[0].URL+"/v1/privacy/requests/"+erasure+"/erase", nil)
		req.Header.Set("Authorization", "Bearer "+cs[0].token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(40 * time.Millisecond)
	require.NoError(t, ps[0].cmd.Process.Kill())
	<-ps[0].done
	lb.remove(ps[0].URL)
	deadline := time.Now().Add(30 * time.Second)
	for str(cs[1].call("GET", "/v1/privacy/requests/"+erasure, nil, 200), "request", "status") != "completed" {
		require.True(t, time.Now().Before(deadline), "another replica finishes the erasure")
		time.Sleep(200 * time.Millisecond)
	}
	cs[2].call("GET", "/v1/contacts/"+contactID, nil, 404)
	cs[2].call("GET", "/v1/contacts/"+other, nil, 200)
	erased := erasedByCategory(t, db.Owner, tenantID, erasure)
	require.Equal(t, 1, erased["crm.contact"], "%v", erased)
	require.Equal(t, notes, erased["crm.note"], "%v", erased)
	require.Equal(t, 1, auditCounts(t, db.Owner, tenantID)["retention.request_completed"])
	ps = ps[1:]

	// The same erasure asked of both remaining replicas at once, twice
	// each, while their resumption jobs run: it is carried out once.
	var leeNotes = 10
	for i := range leeNotes {
		cs[1+i%2].call("POST", "/v1/notes", map[string]any{"contact_id": other, "body": "lee " + strconv.Itoa(i)}, 201)
	}
	erasure2 := str(cs[1].call("POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"email": "lee@erase.example"}}, 201), "request", "id")
	cs[2].call("POST", "/v1/privacy/requests/"+erasure2+"/verify", map[string]string{"outcome": "verified"}, 200)
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", ps[i%2].URL+"/v1/privacy/requests/"+erasure2+"/erase", nil)
			req.Header.Set("Authorization", "Bearer "+cs[0].token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				statuses[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	for _, code := range statuses {
		require.Contains(t, []int{http.StatusOK, http.StatusConflict}, code, "%v", statuses)
	}
	deadline = time.Now().Add(30 * time.Second)
	for str(cs[2].call("GET", "/v1/privacy/requests/"+erasure2, nil, 200), "request", "status") != "completed" {
		require.True(t, time.Now().Before(deadline), "the erasure completes")
		time.Sleep(200 * time.Millisecond)
	}
	erased2 := erasedByCategory(t, db.Owner, tenantID, erasure2)
	require.Equal(t, 1, erased2["crm.contact"], "%v", erased2)
	require.Equal(t, leeNotes, erased2["crm.note"], "%v", erased2)
	require.Equal(t, 2, auditCounts(t, db.Owner, tenantID)["retention.request_completed"], "each request completes once")

	// The tenant closes; one purge, once.
	revokesBefore := sandboxCount(t, sandbox, "tiktok", "/v2/oauth/revoke/")
	metaRevokesBefore := sandboxCount(t, sandbox, "meta", "/me/permissions&method=DELETE")
	cs[2].call("POST", "/v1/tenant/close", map[string]string{"confirm": "Hopper"}, 200)
	deadline = time.Now().Add(45 * time.Second)
	for status(t, db.Owner, tenantID) != "purged" {
		require.True(t, time.Now().Before(deadline), "the tenant is purged within seconds of its grace")
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // more periodic runs on every replica, which must find nothing to do
	for _, p := range ps {
		p.stop(t)
	}
	actions = auditCounts(t, db.Owner, tenantID)
	require.Equal(t, 1, actions["tenant.purged"], "%v", actions)
	require.Equal(t, 1, actions["vault.key_destroyed"], "%v", actions)
	receipts := receiptsPerCategory(t, db.Owner, tenantID)
	require.NotEmpty(t, receipts)
	for cat, n := range receipts {
		require.Equal(t, 1, n, "one receipt per category: %s", cat)
	}
	require.Equal(t, 1, sandboxCount(t, sandbox, "tiktok", "/v2/oauth/revoke/")-revokesBefore,
		"one revocation at TikTok for the one live TikTok connection")
	require.Equal(t, 1, sandboxCount(t, sandbox, "meta", "/me/permissions&method=DELETE")-metaRevokesBefore,
		"one revocation at Meta for the user's connection (its Page's and Instagram's follow it)")

	// Each periodic job once per period (one second here) across the
	// replicas: River enqueues at most one per period bucket (its
	// scheduled time, truncated to the period), so a kind's runs are at
	// most the periods its runs span, plus the bucket at either end and
	// the run a newly elected leader starts at once (replica 1, killed
	// above, may have led). Run by every replica, they would be about
	// three times that.
	var perKind []struct {
		Kind string  `bun:"kind"`
		Task string  `bun:"task"`
		Span float64 `bun:"span"`
		N    int     `bun:"n"`
	}
	require.NoError(t, db.Owner.NewRaw(`SELECT kind, coalesce(args->>'task', '') AS task,
		extract(epoch FROM max(created_at) - min(created_at))::float8 AS span, count(*) AS n
		FROM river_job WHERE metadata->>'periodic' IS NOT NULL GROUP BY 1, 2`).Scan(context.Background(), &perKind))
	require.NotEmpty(t, perKind)
	for _, k := range perKind {
		require.LessOrEqual(t, float64(k.N), k.Span+3, "%s %s: %d runs in %.1f s", k.Kind, k.Task, k.N, k.Span)
	}
	var periodic int
	require.NoError(t, db.Owner.NewRaw(`SELECT count(*) FROM river_job WHERE metadata->>'periodic' IS NOT NULL`).Scan(context.Background(), &periodic))
	require.Positive(t, periodic)
	t.Logf("erasure %v; receipts %v; audit %v; periodic jobs %d; tiktok user info calls %d; meta requests to /me/permissions %d",
		erased, receipts, actions, periodic, sandboxCount(t, sandbox, "tiktok", "/v2/user/info/"), sandboxCount(t, sandbox, "meta", "/me/permissions"))
	requireNoErrorLogged(t, ps)
}

// erasedByCategory sums the rows the erasure request's receipts count, by
// category.
func erasedByCategory(t *testing.T, owner *bun.DB, tenantID, requestID string) map[string]int {
	t.Helper()
	var rows []string
	asTenant(t, owner, tenantID, func(tx bun.Tx) error {
		return tx.NewRaw("SELECT metadata FROM socialcrm_audit_log WHERE tenant_id = ? AND action = 'retention.erased'", tenantID).Scan(context.Background(), &rows)
	})
	erased := map[string]int{}
	for _, r := range rows {
		var md map[string]string
		require.NoError(t, json.Unmarshal([]byte(r), &md), r)
		if md["request"] != requestID {
			continue
		}
		n, err := strconv.Atoi(md["count"])
		require.NoError(t, err)
		erased[md["category"]] += n
	}
	return erased
}

// remove takes the replica at raw out of the balancer's rotation.
func (b *balancer) remove(raw string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, u := range b.urls {
		if u == raw {
			b.backends = append(b.backends[:i:i], b.backends[i+1:]...)
			b.urls = append(b.urls[:i:i], b.urls[i+1:]...)
			return
		}
	}
}
