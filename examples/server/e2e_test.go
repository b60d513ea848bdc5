package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// buildServer builds the server binary once per test run.
var buildServer = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "socialcrm-e2e-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is the server running as a subprocess.
type process struct {
	URL    string
	Dir    string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
	// exited is closed once the process has been waited for (whoever
	// takes its error from done): cleanups wait on it, never reading the
	// Cmd's state, which the waiting goroutine writes.
	exited chan struct{}
}

// waitFor waits for cmd in the background: its error goes to p.done and
// p.exited closes.
func (p *process) waitFor(cmd *exec.Cmd) {
	err := cmd.Wait()
	close(p.exited)
	p.done <- err
}

// killAtCleanup kills the process at the end of the test unless it has
// exited already, and waits for it.
func (p *process) killAtCleanup(t testing.TB) {
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// startServer builds the binary, starts it on a free loopback port with the
// given database and waits for its "listening" line.
func startServer(t testing.TB, dsn string, extra ...string) *process {
	t.Helper()
	bin, err := buildServer()
	require.NoError(t, err)
	dir := t.TempDir()
	args := append([]string{"-addr", "127.0.0.1:0", "-db", dsn, "-kek", filepath.Join(dir, "kek.json")}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TIKTOK_CLIENT_KEY=", "TIKTOK_CLIENT_SECRET=", "META_APP_ID=", "META_APP_SECRET=")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &process{cmd: cmd, Dir: dir, stderr: &lockedBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("server printed nothing: %v\n%s", err, p.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout); p.waitFor(cmd) }()
	p.killAtCleanup(t)
	m := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
	require.NotEmpty(t, m, line)
	p.URL = m
	return p
}

// stop sends SIGINT and waits for a clean exit.
func (p *process) stop(t testing.TB) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-p.done:
		require.NoError(t, err, "graceful shutdown; stderr:\n%s", p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("server did not shut down")
	}
}

// client is an API client of the e2e tests.
type client struct {
	t     testing.TB
	base  string
	token string
	hc    *http.Client
}

func newClient(t testing.TB, base string) *client {
	return &client{t: t, base: base, hc: &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path, contentType string, body io.Reader) (*http.Response, []byte) {
	c.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = c.base + path
	}
	var reqBody []byte
	if body != nil {
		var err error
		reqBody, err = io.ReadAll(body)
		require.NoError(c.t, err)
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(reqBody))
	require.NoError(c.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" && strings.HasPrefix(u, c.base) {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	validateExchange(c.t, c.base, req, reqBody, resp, b)
	return resp, b
}

// call sends a JSON body (nil: none) and decodes a JSON answer, requiring
// status want.
func (c *client) call(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		r, ct = strings.NewReader(b), "application/json"
	default:
		j, err := json.Marshal(b)
		require.NoError(c.t, err)
		r, ct = bytes.NewReader(j), "application/json"
	}
	resp, raw := c.do(method, path, ct, r)
	require.Equal(c.t, want, resp.StatusCode, "%s %s answered %s", method, path, raw)
	out := map[string]any{}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(c.t, json.Unmarshal(raw, &out), "%s", raw)
	}
	if want >= 400 {
		e, ok := out["error"].(map[string]any)
		require.True(c.t, ok, "error shape: %s", raw)
		require.NotEmpty(c.t, e["code"])
		require.NotEmpty(c.t, e["message"])
	}
	return out
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func str(m map[string]any, path ...string) string { s, _ := field(m, path...).(string); return s }

// problems returns the fields an error answer names.
func problems(m map[string]any) []string {
	var out []string
	fs, _ := field(m, "error", "fields").([]any)
	for _, f := range fs {
		out = append(out, f.(map[string]any)["field"].(string))
	}
	return out
}

// consent drives the emulated consent page as a browser would: GET the
// page, submit its form for openID, return the redirect to our callback.
func (c *client) consent(authorizeURL, openID string) string {
	c.t.Helper()
	resp, page := c.do("GET", authorizeURL, "", nil)
	require.Equal(c.t, http.StatusOK, resp.StatusCode, "%s", page)
	action := regexp.MustCompile(`<form method="post" action="([^"]*)"`).FindSubmatch(page)
	require.NotNil(c.t, action, "%s", page)
	form := url.Values{"open_id": {openID}, "decision": {"approve"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`).FindAllSubmatch(page, -1) {
		form.Add(string(m[1]), htmlUnescape(string(m[2])))
	}
	for _, m := range regexp.MustCompile(`name="grant_scope" value="([^"]*)"`).FindAllSubmatch(page, -1) {
		form.Add("grant_scope", string(m[1]))
	}
	target, err := url.Parse(authorizeURL)
	require.NoError(c.t, err)
	ref, err := url.Parse(htmlUnescape(string(action[1])))
	require.NoError(c.t, err)
	resp, body := c.do("POST", target.ResolveReference(ref).String(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.Equal(c.t, http.StatusFound, resp.StatusCode, "%s", body)
	return resp.Header.Get("Location")
}

// consentMeta drives the emulated Facebook Login dialog: GET it, post its
// form back as userID allowing everything, return the redirect.
func (c *client) consentMeta(dialogURL, userID string) string {
	c.t.Helper()
	resp, page := c.do("GET", dialogURL, "", nil)
	require.Equal(c.t, http.StatusOK, resp.StatusCode, "%s", page)
	form := url.Values{"metatest_user": {userID}, "metatest_decision": {"allow"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`).FindAllSubmatch(page, -1) {
		form.Add(string(m[1]), htmlUnescape(string(m[2])))
	}
	for _, m := range regexp.MustCompile(`name="metatest_grant" value="([^"]*)"`).FindAllSubmatch(page, -1) {
		form.Add("metatest_grant", string(m[1]))
	}
	resp, body := c.do("POST", dialogURL, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.Contains(c.t, []int{http.StatusFound, http.StatusSeeOther}, resp.StatusCode, "%s", body)
	return resp.Header.Get("Location")
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func (c *client) publish(connID, title, privacy string, video []byte, want int) map[string]any {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("title", title)
	_ = mw.WriteField("privacy_level", privacy)
	_ = mw.WriteField("idempotency_key", randomToken())
	if video != nil {
		fw, err := mw.CreateFormFile("video", "clip.mp4")
		require.NoError(c.t, err)
		_, _ = fw.Write(video)
	}
	require.NoError(c.t, mw.Close())
	resp, raw := c.do("POST", "/v1/connections/"+connID+"/tiktok/publish", mw.FormDataContentType(), &buf)
	require.Equal(c.t, want, resp.StatusCode, "%s", raw)
	out := map[string]any{}
	require.NoError(c.t, json.Unmarshal(raw, &out))
	return out
}

// TestEndToEnd starts the server binary on SQLite and on PostgreSQL and
// drives every endpoint group through HTTP.
func TestEndToEnd(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		p := startServer(t, filepath.Join(t.TempDir(), "e2e.db"))
		driveEverything(t, p)
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		p := startServer(t, db.DSN(), "-owner-db", db.OwnerDSN()) // two roles, as in production
		driveEverything(t, p)
	})
}

func driveEverything(t *testing.T, p *process) {
	c := newClient(t, p.URL)
	const canary = "canary-password-7f3a9c"

	// Operations.
	require.Equal(t, "sandbox", str(c.call("GET", "/healthz", nil, 200), "mode", "tiktok"))
	c.call("GET", "/readyz", nil, 200)
	resp, doc := c.do("GET", "/openapi.yaml", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(doc), "openapi: 3.1.0")
	require.Contains(t, resp.Header.Get("X-Socialcrm-Mode"), "tiktok=sandbox")
	require.Equal(t, "sandbox", str(c.call("GET", "/v1/sandbox", nil, 200), "mode", "meta"))

	// Sign-up: bad input is a 400 naming each field, never a 500.
	bad := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "", "email": "nope", "name": "", "password": "short"}, 400)
	require.ElementsMatch(t, []string{"tenant_name", "email", "name", "password"}, problems(bad))
	require.Equal(t, []string{"extra"}, problems(c.call("POST", "/v1/signup", `{"extra":1}`, 400)))
	require.Equal(t, []string{"email"}, problems(c.call("POST", "/v1/signup", `{"email":5}`, 400)))
	c.call("POST", "/v1/signup", `{"tenant_name":`, 400)
	c.call("POST", "/v1/signup", `{} {}`, 400)
	resp, _ = c.do("POST", "/v1/signup", "text/plain", strings.NewReader("x"))
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)

	email := "ada@acme.example"
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Acme", "email": email, "name": "Ada", "password": canary}, 201)
	tenantID := str(su, "tenant", "id")
	require.NotEmpty(t, tenantID)
	require.NotContains(t, fmt.Sprint(su), "$2a$", "no password hash in the answer")
	c.token = str(su, "session", "access_token")
	refresh := str(su, "session", "refresh_token")
	require.Equal(t, "owner", str(c.call("GET", "/v1/me", nil, 200), "role"))

	// Sessions: refresh rotates; a spent refresh token is refused (past a
	// 30-second grace for racing tabs it also ends the session: TestTokens
	// shows that on a fake clock).
	anon := newClient(t, p.URL)
	r1 := anon.call("POST", "/v1/token/refresh", map[string]string{"refresh_token": refresh}, 200)
	next := str(r1, "session", "refresh_token")
	require.NotEqual(t, refresh, next)
	anon.call("POST", "/v1/token/refresh", map[string]string{"refresh_token": refresh}, 401)
	r2 := anon.call("POST", "/v1/token/refresh", map[string]string{"refresh_token": next}, 200)
	anon.call("POST", "/v1/token/refresh", map[string]string{"refresh_token": next}, 401)
	second0 := newClient(t, p.URL)
	second0.token = str(r2, "session", "access_token")
	second0.call("POST", "/v1/logout", nil, 204)
	// Signing out ends the session at once: every access token it issued
	// (c's from sign-up among them) is refused from now on.
	c.call("GET", "/v1/me", nil, 401)
	c.token = str(anon.call("POST", "/v1/login", map[string]string{"tenant_id": tenantID, "email": email, "password": canary}, 200), "session", "access_token")
	anon.call("POST", "/v1/token/refresh", map[string]string{"refresh_token": str(r2, "session", "refresh_token")}, 401) // signed out
	anon.call("POST", "/v1/token/refresh", map[string]string{"refresh_token": "rt1.x.y.z"}, 401)
	anon.call("POST", "/v1/token/refresh", map[string]string{}, 400)
	anon.call("GET", "/v1/me", nil, 401)
	anon.token = "at1.forged.token"
	anon.call("GET", "/v1/me", nil, 401)

	// Login, then lockout after five failures (tenancy's policy).
	login := map[string]string{"tenant_id": tenantID, "email": email, "password": canary}
	li := anon.call("POST", "/v1/login", login, 200)
	require.Equal(t, "owner", str(li, "role"))
	require.Equal(t, []string{"tenant_id"}, problems(anon.call("POST", "/v1/login", map[string]string{"tenant_id": "x", "email": "a", "password": "b"}, 400)))
	second := newClient(t, p.URL)
	second.token = str(li, "session", "access_token")
	second.call("GET", "/v1/me", nil, 200)
	second.call("POST", "/v1/logout", nil, 204)
	second.call("GET", "/v1/me", nil, 401) // at once, not when the access token expires
	c.call("GET", "/v1/me", nil, 200)      // another session of the same member lives on

	// API keys: shown once, listed without the key, usable, revocable.
	kc := c.call("POST", "/v1/api-keys", map[string]string{"name": "ci", "role": "staff"}, 201)
	key := str(kc, "key")
	require.NotEmpty(t, key)
	c.call("POST", "/v1/api-keys", map[string]string{"name": "", "role": "emperor"}, 400)
	keys := c.call("GET", "/v1/api-keys", nil, 200)
	require.NotContains(t, fmt.Sprint(keys), key)
	kcl := newClient(t, p.URL)
	kcl.token = key
	require.Equal(t, "staff", str(kcl.call("GET", "/v1/me", nil, 200), "role"))
	kcl.call("POST", "/v1/api-keys", map[string]string{"name": "escalate", "role": "owner"}, 403)
	c.call("DELETE", "/v1/api-keys/"+str(kc, "api_key", "id"), nil, 204)
	kcl.call("GET", "/v1/me", nil, 401)
	c.call("DELETE", "/v1/api-keys/not-an-id", nil, 404)

	// TikTok: the real OAuth redirect through the emulator's consent page.
	st := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
	require.Equal(t, "sandbox", str(st, "mode"))
	callback := c.consent(str(st, "authorize_url"), "sandbox-creator")
	require.True(t, strings.HasPrefix(callback, p.URL+"/connect/tiktok/callback?"), callback)
	conn := c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": callback}, 201)
	connID := str(conn, "connection", "id")
	require.Equal(t, "active", str(conn, "connection", "status"))
	c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": callback}, 400) // state is single use
	c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": "::"}, 400)
	list := c.call("GET", "/v1/connections", nil, 200)
	require.Len(t, list["connections"], 1)
	require.NotContains(t, fmt.Sprint(list), "access_token")
	c.call("GET", "/v1/connections/"+connID, nil, 200)
	c.call("GET", "/v1/connections/01a23000-0000-7000-8000-000000000000", nil, 404)

	c.call("POST", "/v1/connections/"+connID+"/sync", nil, 200)
	c.call("POST", "/v1/connections/"+connID+"/sync", nil, 200)
	ins := c.call("GET", "/v1/connections/"+connID+"/insights", nil, 200)
	trend := ins["follower_trend"].([]any)
	// The two syncs above stored a snapshot each; the server's periodic
	// sync job (River, RunOnStart once a leader is elected, which on
	// PostgreSQL may come after the connection) may have stored one more,
	// never more than that in this short a test. Each sync finds the
	// sandbox account grown.
	require.GreaterOrEqual(t, len(trend), 2, "%v", trend)
	require.LessOrEqual(t, len(trend), 3, "%v", trend)
	for i := 1; i < len(trend); i++ {
		require.Greater(t, trend[i].(map[string]any)["followers"], trend[i-1].(map[string]any)["followers"])
	}
	require.Len(t, ins["media"], 3)

	video := bytes.Repeat([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p'}, 1<<17) // 1 MiB
	pb := c.publish(connID, "Launch day", "NOPE", video, 400)
	require.Equal(t, []string{"privacy_level"}, problems(pb))
	pb = c.publish(connID, "Launch day", "", video, 400) // no default audience: the creator chooses
	require.Equal(t, []string{"privacy_level"}, problems(pb))
	c.publish(connID, "no video", "SELF_ONLY", nil, 400)
	pub := c.publish(connID, "Launch day", "SELF_ONLY", video, 202)
	pubID := str(pub, "publish_id")
	require.Equal(t, "PUBLISH_COMPLETE", str(pub, "status", "status"))
	require.Equal(t, "PUBLISH_COMPLETE", str(c.call("GET", "/v1/connections/"+connID+"/tiktok/publish/"+pubID, nil, 200), "status", "status"))

	// A second account, then the creator removes the app in TikTok: the
	// signed authorization.removed webhook revokes that connection.
	st = c.call("POST", "/v1/connections/tiktok/start", nil, 200)
	brand := c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": c.consent(str(st, "authorize_url"), "sandbox-brand")}, 201)
	brandID := str(brand, "connection", "id")
	c.call("POST", "/v1/sandbox/tiktok/deauthorize", map[string]string{"open_id": "sandbox-brand"}, 204)
	require.Equal(t, "revoked", str(c.call("GET", "/v1/connections/"+brandID, nil, 200), "connection", "status"))
	c.call("POST", "/v1/sandbox/tiktok/deauthorize", map[string]string{"open_id": "someone"}, 400)
	resp, _ = c.do("POST", "/webhooks/tiktok", "application/json", strings.NewReader(`{"event":"authorization.removed"}`))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an unsigned webhook is refused")

	// Meta: Facebook Login through the emulator's dialog connects the user,
	// the Page and the Instagram account behind it; publish to both.
	c.call("POST", "/v1/sandbox/meta/message", map[string]string{"text": "too early"}, 409) // no Page subscribed yet
	ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
	require.Equal(t, "sandbox", str(ms, "mode"))
	mcb := c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")
	require.True(t, strings.HasPrefix(mcb, p.URL+"/connect/meta/callback?"), mcb)
	mc := c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": mcb}, 201)
	fbUser := str(mc, "connection", "id")
	pages := mc["pages"].([]any)
	require.Len(t, pages, 1, "%v", mc)
	pageConn := str(pages[0].(map[string]any), "page", "id")
	igConn := str(pages[0].(map[string]any), "instagram", "id")
	require.NotEmpty(t, pageConn, "%v", pages[0])
	require.NotEmpty(t, igConn, "%v", pages[0])
	require.Equal(t, []string{"message"}, problems(c.call("POST", "/v1/connections/"+pageConn+"/meta/publish", map[string]string{}, 400)))
	require.Equal(t, []string{"image_url"}, problems(c.call("POST", "/v1/connections/"+igConn+"/meta/publish", map[string]string{"caption": "x"}, 400)))
	pp := c.call("POST", "/v1/connections/"+pageConn+"/meta/publish", map[string]string{"message": "New collection", "link": "https://gems.example/new"}, 201)
	require.NotEmpty(t, str(pp, "page_post", "id"), "%v", pp)
	ip := c.call("POST", "/v1/connections/"+igConn+"/meta/publish", map[string]string{"image_url": "https://cdn.gems.example/ring.jpg", "caption": "Rings"}, 201)
	require.NotEmpty(t, str(ip, "instagram_media", "id"), "%v", ip)
	c.call("POST", "/v1/connections/"+pageConn+"/sync", nil, 200)
	c.call("POST", "/v1/connections/"+igConn+"/sync", nil, 200)
	require.NotEmpty(t, c.call("GET", "/v1/connections/"+pageConn+"/insights", nil, 200)["media"], "after publishing, the Page sync shows the post")
	require.Nil(t, c.call("POST", "/v1/connections/"+fbUser+"/sync", nil, 200)["snapshot"], "the Facebook user syncs its profile only")
	igTrend := c.call("GET", "/v1/connections/"+igConn+"/insights", nil, 200)["follower_trend"].([]any)
	// The sync above stored one snapshot; the server's periodic sync job
	// (River, every connection of every tenant) may have stored another
	// meanwhile, never more than that in this short a test.
	require.NotEmpty(t, igTrend)
	require.LessOrEqual(t, len(igTrend), 2, "%v", igTrend)
	// The Instagram sync stored the audience demographics with the counts.
	for _, snap := range igTrend {
		audience := snap.(map[string]any)["breakdowns"].(map[string]any)
		require.Equal(t, float64(3900), audience["gender"].(map[string]any)["F"])
		require.Contains(t, snap.(map[string]any)["source"], "follower_demographics")
	}
	// Messenger: a person writes to the Page (the emulator delivers the
	// signed webhook), the message lands in the inbox, the reply goes out
	// through the Send API and is stored.
	resp, body := c.do("GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=sandbox-meta-verify&hub.challenge=12345", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "12345", string(body))
	resp, _ = c.do("GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", "", nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = c.do("POST", "/webhooks/meta", "application/json", strings.NewReader(`{"object":"page","entry":[]}`))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an unsigned delivery is refused")
	c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-ann", "text": "Is the ring in stock?"}, 204)
	c.call("POST", "/v1/sandbox/meta/message", map[string]string{"text": ""}, 400)
	convs := c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)
	require.Len(t, convs, 1)
	convID := convs[0].(map[string]any)["id"].(string)
	msgs := c.call("GET", "/v1/conversations/"+convID+"/messages", nil, 200)
	require.Equal(t, "Is the ring in stock?", msgs["items"].([]any)[0].(map[string]any)["text"])
	require.Equal(t, []string{"text"}, problems(c.call("POST", "/v1/conversations/"+convID+"/reply", map[string]string{"text": " "}, 400)))
	rp := c.call("POST", "/v1/conversations/"+convID+"/reply", map[string]string{"text": "Yes, size 6 and 7."}, 201)
	require.Equal(t, "sent", str(rp, "message", "status"), "%v", rp)
	require.Len(t, c.call("GET", "/v1/conversations/"+convID+"/messages", nil, 200)["items"], 2)
	c.call("GET", "/v1/conversations/"+tenantID+"/messages", nil, 404)

	mdc := c.call("DELETE", "/v1/connections/"+fbUser, nil, 200)
	require.Len(t, mdc["disconnected"], 3, "the user, the Page and the Instagram account")
	require.Equal(t, "revoked", str(c.call("GET", "/v1/connections/"+pageConn, nil, 200), "connection", "status"))

	// Meta's data deletion callback: a signed_request for the user starts
	// an erasure and answers a status URL with a confirmation code.
	forged, err := metatest.EncodeSignedRequest("not-the-secret", metatest.SignedRequestPayload{Algorithm: "HMAC-SHA256", IssuedAt: time.Now().Unix(), UserID: "sandbox-fb-user"})
	require.NoError(t, err)
	resp, _ = c.do("POST", "/webhooks/meta/data-deletion", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"signed_request": {forged}}.Encode()))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a forged signed_request is refused")
	signed, err := metatest.EncodeSignedRequest("sandbox-meta-secret", metatest.SignedRequestPayload{Algorithm: "HMAC-SHA256", IssuedAt: time.Now().Unix(), UserID: "sandbox-fb-user"})
	require.NoError(t, err)
	resp, body = c.do("POST", "/webhooks/meta/data-deletion", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"signed_request": {signed}}.Encode()))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var del struct {
		URL  string `json:"url"`
		Code string `json:"confirmation_code"`
	}
	require.NoError(t, json.Unmarshal(body, &del))
	require.True(t, strings.HasPrefix(del.URL, p.URL+"/meta/deletion-status?"), del.URL)
	resp, _ = c.do("GET", del.URL, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = c.do("POST", "/webhooks/meta/deauthorize", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"signed_request": {signed}}.Encode()))
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Contacts: bad input names each field; versions guard updates.
	bad = c.call("POST", "/v1/contacts", map[string]any{"email": "not-an-email", "phone": "12", "stage": "royalty"}, 400)
	require.Subset(t, problems(bad), []string{"email", "phone", "stage"})
	c.call("POST", "/v1/contacts", `{"first_name": 7}`, 400)
	ct := c.call("POST", "/v1/contacts", map[string]any{"first_name": "Ann", "last_name": "Lee", "email": "ann@lee.example",
		"phone": "+15551234567", "tags": []string{"vip"}, "birthday": map[string]int{"month": 6, "day": 1}}, 201)
	contactID := str(ct, "contact", "id")
	require.Equal(t, "ann@lee.example", str(c.call("GET", "/v1/contacts/"+contactID, nil, 200), "contact", "email"))
	require.Len(t, c.call("GET", "/v1/contacts?tag=vip", nil, 200)["items"], 1)
	require.Len(t, c.call("GET", "/v1/contacts?email=ann@lee.example", nil, 200)["items"], 1)
	c.call("GET", "/v1/contacts?limit=-1", nil, 400)
	upd := field(ct, "contact").(map[string]any)
	upd["stage"] = "customer"
	u1 := c.call("PUT", "/v1/contacts/"+contactID, upd, 200)
	require.Equal(t, "customer", str(u1, "contact", "stage"))
	c.call("PUT", "/v1/contacts/"+contactID, upd, 409) // the version read is stale now
	co := c.call("POST", "/v1/companies", map[string]any{"name": "Lee Jewels"}, 201)
	c.call("GET", "/v1/companies/"+str(co, "company", "id"), nil, 200)
	c.call("DELETE", "/v1/companies/"+str(co, "company", "id"), nil, 204)
	c.call("GET", "/v1/companies/"+str(co, "company", "id"), nil, 404)
	driveRecords(t, c, p.URL, tenantID)

	// The contact's export, then their erasure.
	cx := c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "export", "subject": map[string]string{"contact_id": contactID}}, 201)
	c.call("POST", "/v1/privacy/requests/"+str(cx, "request", "id")+"/verify", map[string]string{"outcome": "verified"}, 200)
	resp, czip := c.do("GET", "/v1/privacy/requests/"+str(cx, "request", "id")+"/export", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(czip), "crm.contact.json")
	ce := c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"contact_id": contactID}}, 201)
	c.call("POST", "/v1/privacy/requests/"+str(ce, "request", "id")+"/verify", map[string]string{"outcome": "verified"}, 200)
	c.call("POST", "/v1/privacy/requests/"+str(ce, "request", "id")+"/erase", nil, 200)
	c.call("GET", "/v1/contacts/"+contactID, nil, 404)

	// Data-subject requests: access export as a zip, erasure with a receipt.
	bad = c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "delete-everything", "subject": map[string]string{"shoe_size": "42"}}, 400)
	require.ElementsMatch(t, []string{"kind", "subject.shoe_size"}, problems(bad))
	ex := c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "access", "subject": map[string]string{"email": email}}, 201)
	exID := str(ex, "request", "id")
	require.NotEmpty(t, str(ex, "request", "due_at"))
	c.call("GET", "/v1/privacy/requests/"+exID+"/export", nil, 409) // not verified
	c.call("POST", "/v1/privacy/requests/"+exID+"/verify", map[string]string{"outcome": "maybe"}, 400)
	c.call("POST", "/v1/privacy/requests/"+exID+"/verify", map[string]string{"outcome": "verified"}, 200)
	require.Equal(t, "open", str(c.call("GET", "/v1/privacy/requests/"+exID, nil, 200), "request", "status"))
	resp, zipped := c.do("GET", "/v1/privacy/requests/"+exID+"/export", "", nil)
	require.Equal(t, 200, resp.StatusCode, "%s", zipped)
	// Delivered: the access request is answered and closed.
	done := c.call("GET", "/v1/privacy/requests/"+exID, nil, 200)
	require.Equal(t, "completed", str(done, "request", "status"), "%v", done)
	require.NotEmpty(t, str(done, "request", "completed_at"))
	resp, _ = c.do("GET", "/v1/privacy/requests/"+exID+"/export", "", nil)
	require.Equal(t, 200, resp.StatusCode, "the export stays available to owners and admins")
	require.Equal(t, "completed", str(c.call("GET", "/v1/privacy/requests/"+exID, nil, 200), "request", "status"))
	require.Equal(t, "application/zip", resp.Header.Get("Content-Type"))
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	require.Contains(t, names, "manifest.json")
	require.Contains(t, names, "tenancy.member.csv")
	require.NotContains(t, string(zipped), canary)

	er := c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"account_id": "sandbox-brand"}}, 201)
	erID := str(er, "request", "id")
	c.call("POST", "/v1/privacy/requests/"+erID+"/erase", nil, 409)
	c.call("POST", "/v1/privacy/requests/"+erID+"/verify", map[string]string{"outcome": "verified"}, 200)
	receipt := c.call("POST", "/v1/privacy/requests/"+erID+"/erase", nil, 200)
	require.NotEmpty(t, field(receipt, "receipt", "categories"))
	c.call("GET", "/v1/connections/"+brandID, nil, 404) // erased
	reqs := c.call("GET", "/v1/privacy/requests", nil, 200)
	require.GreaterOrEqual(t, len(reqs["requests"].([]any)), 4)
	c.call("GET", "/v1/privacy/requests/"+erID, nil, 200)

	dm := c.call("GET", "/v1/privacy/datamap", nil, 200)
	require.NotEmpty(t, dm)
	resp, md := c.do("GET", "/v1/privacy/datamap?format=md", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(md), "example.session")
	c.call("GET", "/v1/privacy/datamap?format=pdf", nil, 400)

	// Disconnect: revoked at the platform, tokens gone.
	dc := c.call("DELETE", "/v1/connections/"+connID, nil, 200)
	require.Equal(t, "revoked", str(dc, "connection", "status"))
	c.call("POST", "/v1/connections/"+connID+"/sync", nil, 409)

	// Audit log and tenant closure.
	audit := c.call("GET", "/v1/audit", nil, 200)
	require.NotEmpty(t, audit["entries"])
	require.NotContains(t, fmt.Sprint(audit), canary)
	require.Equal(t, []string{"confirm"}, problems(c.call("POST", "/v1/tenant/close", map[string]string{"confirm": "wrong"}, 400)))
	other := newClient(t, p.URL)
	other.token = str(anon.call("POST", "/v1/login", login, 200), "session", "access_token")
	other.call("GET", "/v1/contacts", nil, 200)
	closed := c.call("POST", "/v1/tenant/close", map[string]string{"confirm": "Acme"}, 200)
	require.Equal(t, "closed", str(closed, "tenant", "status"))
	require.NotEmpty(t, str(closed, "tenant", "purge_after"))
	// Closure ends every other session at once; the closer's may only see
	// the tenant, reopen it or sign out.
	other.call("GET", "/v1/me", nil, 401)
	require.Equal(t, "tenant_closed", str(c.call("GET", "/v1/contacts", nil, 403), "error", "code"))
	c.call("POST", "/v1/contacts", map[string]any{"first_name": "Late"}, 403)
	require.Equal(t, "closed", str(c.call("GET", "/v1/tenant", nil, 200), "tenant", "status"))
	require.Equal(t, "active", str(c.call("POST", "/v1/tenant/reopen", nil, 200), "tenant", "status"))
	c.call("GET", "/v1/contacts", nil, 200)
	other.call("GET", "/v1/me", nil, 401) // reopening does not revive ended sessions
	c.call("GET", "/v1/tenant", nil, 200)

	// The console answers (the browser test drives it).
	resp, html := c.do("GET", "/console/login", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(html), `class="sandbox"`)
	resp, _ = c.do("GET", "/console/", "", nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)

	// Lockout: five wrong passwords lock the member even for the right
	// one, and the answer is the one an unknown email gets, so it tells a
	// stranger nothing about which emails have accounts.
	unknown := anon.call("POST", "/v1/login", map[string]string{"tenant_id": tenantID, "email": "nobody@example.com", "password": "wrong password"}, 401)
	for range 5 {
		anon.call("POST", "/v1/login", map[string]string{"tenant_id": tenantID, "email": email, "password": "wrong password"}, 401)
	}
	require.Equal(t, withoutRequestID(unknown), withoutRequestID(anon.call("POST", "/v1/login", login, 401)),
		"a locked member's answer equals an unknown email's")

	p.stop(t)
	info, err := os.Stat(filepath.Join(p.Dir, "kek.json"))
	require.NoError(t, err, "the local key-encryption key was created")
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	logs := p.stderr.String()
	require.NotContains(t, logs, canary, "no password in the logs")
	require.NotContains(t, logs, key, "no API key in the logs")
	require.NotContains(t, logs, `"level":"ERROR"`, "no request failed with a 500; error lines:\n%s", errorLines(logs))
}

// errorLines returns the log lines at level ERROR, for a failure message
// (the test has already checked that no secret is in the logs).
func errorLines(logs string) string {
	var out []string
	for line := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
