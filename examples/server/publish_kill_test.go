package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestPublishKilledAfterInit kills the server (SIGKILL) while TikTok's
// answer to a publish init is on its way: the emulator (in this test
// process, behind a proxy that holds its answer) has carried the init out,
// the server has not recorded the answer. Restarted on the same database,
// the same form resent with the same key sends no second init: the server
// looks the publish up, does not find it (a file upload that never got its
// bytes is not listed) and answers 409 publish_in_doubt; the connection's
// page shows the warning.
func TestPublishKilledAfterInit(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		killAfterInit(t, filepath.Join(t.TempDir(), "kill.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		killAfterInit(t, db.DSN(), "-owner-db", db.OwnerDSN())
	})
}

// frontProxy forwards to the server process of the moment.
type frontProxy struct {
	mu sync.Mutex
	rp *httputil.ReverseProxy
}

func (f *frontProxy) set(raw string) {
	u, _ := url.Parse(raw)
	f.mu.Lock()
	f.rp = httputil.NewSingleHostReverseProxy(u)
	f.mu.Unlock()
}

func (f *frontProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	rp := f.rp
	f.mu.Unlock()
	rp.ServeHTTP(w, r)
}

// holdingProxy forwards to the TikTok emulator; the first publish init is
// carried out by the emulator and its answer then held until release, and
// never delivered.
type holdingProxy struct {
	target  *url.URL
	inits   atomic.Int32
	acted   chan struct{}
	release chan struct{}
}

func (h *holdingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	forward(w, r, h.target, func() {
		if r.URL.Path == initPath && h.inits.Add(1) == 1 {
			close(h.acted)
			<-h.release
			panic(http.ErrAbortHandler) // the answer is lost
		}
	})
}

// forward sends r to target and, once the answer has come and acted has
// returned, writes it to w.
func forward(w http.ResponseWriter, r *http.Request, target *url.URL, acted func()) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host, out.Host = target.Scheme, target.Host, target.Host
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	acted()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// sandboxFor serves plat's sandbox control, naming tiktokBase as TikTok's
// API (a proxy in front of the emulator), for servers started with
// -sandbox-url.
func sandboxFor(t *testing.T, plat *platforms, tiktokBase string) *httptest.Server {
	control := sandboxMux(plat)
	ctrl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && r.URL.Path == "/sandbox" {
			var ep sandboxEndpoints
			ep.TikTok.BaseURL, ep.TikTok.AuthorizeURL = tiktokBase, plat.tiktokSrv.AuthorizeURL()
			ep.Meta.GraphURL, ep.Meta.DialogURL, ep.Meta.Version = plat.metaSrv.GraphURL(), plat.metaSrv.DialogURL(), plat.metaSrv.Version()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(ep)
			return
		}
		control.ServeHTTP(w, r)
	}))
	t.Cleanup(ctrl.Close)
	return ctrl
}

func killAfterInit(t *testing.T, dsn string, extra ...string) {
	front := &frontProxy{}
	frontSrv := httptest.NewServer(front)
	t.Cleanup(frontSrv.Close)

	// The emulators, in this process, as a sandbox the server dials.
	plat, err := startPlatforms(config{PublicURL: frontSrv.URL}, frontSrv.URL, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(plat.close)
	target, _ := url.Parse(plat.tiktokSrv.BaseURL())
	hold := &holdingProxy{target: target, acted: make(chan struct{}), release: make(chan struct{})}
	holdSrv := httptest.NewServer(hold)
	t.Cleanup(holdSrv.Close)
	t.Cleanup(func() {
		select {
		case <-hold.release:
		default:
			close(hold.release)
		}
	})
	ctrl := sandboxFor(t, plat, holdSrv.URL)

	kek := filepath.Join(t.TempDir(), "kek.json")
	// A short lease: the killed sender's lapses soon after the kill.
	args := append([]string{"-kek", kek, "-sandbox-url", ctrl.URL, "-public-url", frontSrv.URL, "-publish-lease", "100ms"}, extra...)
	p := startServer(t, dsn, args...)
	front.set(p.URL)
	c := newClient(t, frontSrv.URL)
	const email, password = "owner@publish-kill.example", "a long kill-test password"
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Kill Posts", "email": email, "name": "Ow", "password": password}, 201)
	c.token = str(su, "session", "access_token")
	st := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
	conn := str(c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": c.consent(str(st, "authorize_url"), sandboxCreator)}, 201), "connection", "id")

	send := func() (int, map[string]any, error) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("title", "Killed mid-publish")
		_ = mw.WriteField("privacy_level", "PUBLIC_TO_EVERYONE")
		fw, _ := mw.CreateFormFile("video", "clip.mp4")
		_, _ = fw.Write(bytes.Repeat([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p'}, 1<<12))
		_ = mw.Close()
		req, _ := http.NewRequest("POST", frontSrv.URL+"/v1/connections/"+conn+"/tiktok/publish", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Idempotency-Key", "kill-key-1")
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, nil
	}
	done := make(chan struct{})
	go func() { // its answer never comes
		defer close(done)
		_, _, _ = send()
	}()
	select {
	case <-hold.acted:
	case <-time.After(time.Minute):
		t.Fatal("the init reaches TikTok")
	}
	require.NoError(t, p.cmd.Process.Kill())
	<-p.exited
	close(hold.release)
	<-done
	require.Len(t, plat.tiktokSrv.RequestsTo(initPath), 1, "TikTok carried out one init")

	// Restarted on the same database and key; sign in again and resend.
	p = startServer(t, dsn, args...)
	front.set(p.URL)
	c.token = str(c.call("POST", "/v1/login", map[string]any{"email": email, "password": password}, 200), "session", "access_token")
	// Until the dead sender's lease lapses the key is in progress; then
	// the restarted server looks the publish up.
	var status int
	var out map[string]any
	require.Eventually(t, func() bool {
		status, out, err = send()
		require.NoError(t, err)
		return str(out, "error", "code") != "publish_in_progress"
	}, time.Minute, 50*time.Millisecond)
	require.Equal(t, http.StatusConflict, status, "%v", out)
	require.Equal(t, "publish_in_doubt", str(out, "error", "code"))
	status, out, err = send()
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, status, "%v", out)
	require.Len(t, plat.tiktokSrv.RequestsTo(initPath), 1, "no second init after the restart")

	req, _ := http.NewRequest("GET", frontSrv.URL+"/console/connections/"+conn, nil)
	req.AddCookie(&http.Cookie{Name: cookieAccess, Value: c.token})
	resp, err := noRedirect().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	html, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(html), `id="publish-in-doubt"`, "the page warns before the user posts again")
}
