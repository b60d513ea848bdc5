package tiktok_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// killEnv is what a child process needs to act on the parent's
// connection: the database, the key file, the emulator, the tenant, the
// connection and the parent's clock.
const killEnv = "SOCIALCRM_TIKTOK_KILL_CHILD"

// killChild runs in the child process: it opens the parent's database and
// key file, and asks for a token (mode "refresh-held", "refresh-rotated"),
// publishes (mode "publish") or disconnects (mode "disconnect-unsent",
// "disconnect-revoked", "disconnect-hook": in the disconnect hook) through a transport that stops at the
// point the mode names, prints the point's name and waits to be killed.
func killChild(spec string) {
	var mode, kind, where, keyPath, base, tenant, connID, now string
	for _, kv := range strings.Split(spec, "\x1f") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "mode":
			mode = v
		case "kind":
			kind = v
		case "where":
			where = v
		case "key":
			keyPath = v
		case "base":
			base = v
		case "tenant":
			tenant = v
		case "conn":
			connID = v
		case "now":
			now = v
		}
	}
	fail := func(err error) {
		fmt.Println("child error:", err)
		os.Exit(3)
	}
	at, err := time.Parse(time.RFC3339Nano, now)
	if err != nil {
		fail(err)
	}
	clock := func() time.Time { return at }
	var db *bun.DB
	if kind == "sqlite" {
		db, err = sqldb.SQLite(where)
	} else {
		db, err = dbtest.OpenPostgres(where)
	}
	if err != nil {
		fail(err)
	}
	kek, err := insecurekeyfile.Open(keyPath)
	if err != nil {
		fail(err)
	}
	v, err := vault.New(db, kek, vault.WithClock(clock))
	if err != nil {
		fail(err)
	}
	stop := func(point string) {
		fmt.Println("\nkill-point:", point)
		select {} // until killed
	}
	hc := &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		switch {
		case mode == "refresh-held" && r.URL.Path == tiktoktest.TokenPath,
			mode == "disconnect-unsent" && r.URL.Path == tiktoktest.RevokePath:
			stop(mode) // TikTok not yet asked
		case mode == "refresh-rotated" && r.URL.Path == tiktoktest.TokenPath,
			mode == "publish" && r.URL.Path == tiktoktest.VideoInitPath,
			mode == "disconnect-revoked" && r.URL.Path == tiktoktest.RevokePath:
			resp, err := http.DefaultTransport.RoundTrip(r)
			if err == nil {
				_, _ = io.ReadAll(resp.Body) // TikTok has acted; its answer dies with us
			}
			stop(mode)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	p, err := tiktok.NewProvider(tiktok.Config{ClientKey: clientKey, ClientSecret: clientSecret, RedirectURL: redirectURI, BaseURL: base},
		tiktok.WithHTTPClient(hc), tiktok.WithClock(clock))
	if err != nil {
		fail(err)
	}
	opts := []social.Option{social.WithClock(clock), social.WithProviders(p)}
	if mode == "disconnect-hook" {
		opts = append(opts, social.WithDisconnectHook(func(context.Context, social.Connection) error {
			stop(mode) // revoked and committed, not yet handed over
			return nil
		}))
	}
	store, err := social.New(db, v, opts...)
	if err != nil {
		fail(err)
	}
	ctx := owner(tenant)
	if mode == "publish" {
		sess, err := store.Session(ctx, connID, p)
		if err != nil {
			fail(err)
		}
		c, err := tiktok.New(tiktok.Config{ClientKey: clientKey, ClientSecret: clientSecret, RedirectURL: redirectURI, BaseURL: base},
			tiktok.WithSession(sess), tiktok.WithHTTPClient(hc), tiktok.WithClock(clock))
		if err != nil {
			fail(err)
		}
		src, err := tiktok.PlanChunks(1<<20, 0)
		if err != nil {
			fail(err)
		}
		_, _, err = c.Posting.InitVideo(ctx, tiktok.VideoInitRequest{PostInfo: tiktok.PostInfo{Title: "killed", PrivacyLevel: tiktok.PrivacySelfOnly},
			SourceInfo: src})
		fail(fmt.Errorf("publish returned: %v", err))
	}
	if strings.HasPrefix(mode, "disconnect") {
		_, err = store.Disconnect(ctx, connID, p)
		fail(fmt.Errorf("disconnect returned: %v", err))
	}
	_, err = store.Token(ctx, connID, p)
	fail(fmt.Errorf("token returned: %v", err))
}

// killMidway starts a child process acting on e's connection conn in
// mode, waits until it reaches its kill point, and kills it (SIGKILL).
func (e *env) killMidway(mode, keyPath string, conn social.Connection) {
	e.t.Helper()
	where := e.db.Path
	if e.db.Name != "sqlite" {
		where = e.db.DSN()
	}
	tenant, err := tenancy.TenantID(e.ctx)
	require.NoError(e.t, err)
	spec := strings.Join([]string{"mode=" + mode, "kind=" + e.db.Name, "where=" + where, "key=" + keyPath,
		"base=" + e.srv.BaseURL(), "tenant=" + tenant, "conn=" + conn.ID, "now=" + e.clk.Now().Format(time.RFC3339Nano)}, "\x1f")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledMidway$")
	cmd.Env = append(os.Environ(), killEnv+"="+spec)
	out, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	cmd.Stderr = os.Stderr
	require.NoError(e.t, cmd.Start())
	defer func() { _ = cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "kill-point: "+mode {
			require.NoError(e.t, cmd.Process.Kill())
			return
		}
		if strings.HasPrefix(line, "child error:") {
			e.t.Fatal(line)
		}
	}
	e.t.Fatalf("child ended before its kill point %s: %v", mode, sc.Err())
}

// TestKilledMidway kills a process (SIGKILL) in the middle of a refresh
// and of a publish, on both databases, and checks what the next process
// finds.
func TestKilledMidway(t *testing.T) {
	if spec := os.Getenv(killEnv); spec != "" {
		killChild(spec)
		return
	}
	each(t, func(t *testing.T, db *dbtest.DB) {
		e, keyPath := newKillEnv(t, db, tiktoktest.WithRotation(tiktoktest.RotateSingleUse))

		// Killed while holding the connection's row, before TikTok was
		// asked: the lock dies with the process, the refresh token is
		// still the live one, and the next process refreshes.
		conn := e.connect([]string{"video.read", "publish"})
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		e.killMidway("refresh-held", keyPath, conn)
		ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		defer cancel()
		_, err := e.store.Token(ctx, conn.ID, e.prov)
		require.NoError(t, err)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.Equal(t, conn.TokenVersion+1, got.TokenVersion)
		_, _, err = e.client(got).Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.NoError(t, err)

		// Killed mid-publish, after TikTok acted: the post exists once. The
		// log had no trace of it; now the entry written before the
		// request, with nothing after it, names a publish in doubt.
		before := len(e.srv.Publishes())
		e.killMidway("publish", keyPath, got)
		require.Len(t, e.srv.Publishes(), before+1)
		require.Len(t, e.srv.RequestsTo(tiktoktest.VideoInitPath), 1, "sent once")
		actions := e.auditActions()
		require.Equal(t, "tiktok.publish_sending", actions[len(actions)-1], "the publish in doubt is in the log")
		require.Len(t, inDoubt(e.publishRecords()), 1, "and only it is in doubt")

		// Killed after TikTok rotated the single-use refresh token and
		// before the new one was stored: the answer died with the
		// process. The next refresh presents the retired token, and the
		// connection is marked needs_reauth: typed, audited, not stuck.
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		e.killMidway("refresh-rotated", keyPath, got)
		_, err = e.store.Token(ctx, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNeedsReauth)
		got, err = e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusNeedsReauth, got.Status)
	})
}
