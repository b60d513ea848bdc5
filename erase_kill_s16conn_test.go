package socialcrm_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// The kill -9 test of an erasure's platform revoke. A child process (this
// test binary, running TestEraseRevokeKilledChildS16) opens the SDK on the
// parent's database and key file, with a TikTok provider whose transport
// stops at the revoke: before TikTok is asked ("unsent"), or after TikTok
// revoked the grant and before its answer is read back ("acted"). It
// prints the kill point and waits; the parent kills it with SIGKILL.
const envEraseKill = "SOCIALCRM_S16_ERASE_KILL"

type s16RoundTrip func(*http.Request) (*http.Response, error)

func (f s16RoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// s16Open opens the SDK on target ("sqlite:<path>" or "postgres:<dsn>
// <owner dsn>") with the key file kek, the TikTok provider of base through
// hc, and the clock now.
func s16Open(t testing.TB, target, kek, base, authorize string, hc *http.Client, now func() time.Time) (*socialcrm.SDK, *tiktok.Provider) {
	var db, owner *bun.DB
	var err error
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok {
		db, err = socialcrm.OpenDB(path)
		owner = db
	} else {
		dsns := strings.Fields(strings.TrimPrefix(target, "postgres:"))
		db, err = dbtest.OpenPostgres(dsns[0])
		require.NoError(t, err)
		owner, err = dbtest.OpenPostgres(dsns[1])
	}
	require.NoError(t, err)
	kf, err := insecurekeyfile.Open(kek)
	require.NoError(t, err)
	prov, err := tiktok.NewProvider(tiktok.Config{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURL: "https://crm.example/callback",
		BaseURL: base, AuthorizeURL: authorize}, tiktok.WithHTTPClient(hc), tiktok.WithClock(now))
	require.NoError(t, err)
	sdk, err := socialcrm.Open(context.Background(), socialcrm.Config{DB: db, Owner: owner, KEK: kf, Now: now,
		Providers: []social.Provider{prov}})
	require.NoError(t, err)
	return sdk, prov
}

// TestEraseRevokeKilledChildS16 is the child's body; it does nothing
// unless started by TestEraseRevokeKilledS16.
func TestEraseRevokeKilledChildS16(t *testing.T) {
	spec := os.Getenv(envEraseKill)
	if spec == "" {
		return
	}
	f := strings.Split(spec, "\x1f") // mode, target, kek, base, now, tenant, member, request
	mode := f[0]
	at, err := time.Parse(time.RFC3339Nano, f[4])
	require.NoError(t, err)
	stop := func() {
		fmt.Println("\nkill-point: " + mode)
		select {} // until killed
	}
	hc := &http.Client{Transport: s16RoundTrip(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == tiktoktest.RevokePath {
			if strings.HasSuffix(mode, "acted") {
				if resp, err := http.DefaultTransport.RoundTrip(r); err == nil {
					_, _ = io.ReadAll(resp.Body) // TikTok revoked; its answer dies with us
				}
			}
			stop()
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	sdk, _ := s16Open(t, f[1], f[2], f[3], f[3], hc, func() time.Time { return at })
	if strings.HasPrefix(mode, "purge") {
		_, err = sdk.Retention.PurgeTenants(tenancy.System(context.Background(), "s16"), at)
		fmt.Println("child error: purge returned:", err)
		os.Exit(3)
	}
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: f[5], MemberID: f[6], Role: tenancy.RoleOwner})
	_, err = sdk.Retention.Erase(ctx, f[7])
	fmt.Println("child error: erase returned:", err)
	os.Exit(3)
}

// TestEraseRevokeKilledS16: an erasure that reaches a TikTok connection is
// killed (SIGKILL) while TikTok is asked to revoke — before TikTok acted,
// and after TikTok revoked the grant with its answer lost. Either way the
// erasure had committed: the connection is gone, its tokens wait only in
// the revoke queue (sealed apart), and the request is still open. The
// scheduled ResumeErasures completes it and its receipt reports the
// platform revoke still pending; once the dead process's claim lapses
// (RevocationLease), RetryRevocations makes the revoke once, TikTok's grant
// is gone, the queue is empty and the audit log records the revoke queued
// by the erasure, then made. On both databases.
func TestEraseRevokeKilledS16(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		kek := filepath.Join(t.TempDir(), "kek.json")
		for _, mode := range []string{"unsent", "acted", "purge-unsent", "purge-acted"} {
			t.Run(mode, func(t *testing.T) { eraseRevokeKilled(t, db, kek, mode) })
		}
	})
}

func eraseRevokeKilled(t *testing.T, db *dbtest.DB, kek, mode string) {
	clk := fakeclock.New()
	clk.Set(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	const redirect = "https://crm.example/callback"
	openID := "s16-" + mode
	tt := tiktoktest.Start(t, tiktoktest.WithClock(clk.Now),
		tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURIs: []string{redirect},
			Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: openID, DisplayName: "S16 Creator"}))
	target := "sqlite:" + db.Path
	if db.Name == "postgres" {
		target = "postgres:" + db.DSN() + " " + db.OwnerDSN()
	}
	sdk, prov := s16Open(t, target, kek, tt.BaseURL(), tt.AuthorizeURL(), tt.Client(), clk.Now)
	_, owner, err := sdk.Tenants.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "S16 " + mode,
		Owner: tenancy.NewMember{Email: mode + "@s16.example", Name: "Ada"}})
	require.NoError(t, err)
	ctx := tenancy.WithPrincipal(context.Background(), owner.Principal())

	flow, err := sdk.Social.NewFlow(prov, social.FlowConfig{Features: []string{"profile"}, Purposes: []string{"analytics"}})
	require.NoError(t, err)
	authURL, err := flow.Begin(ctx)
	require.NoError(t, err)
	cb, err := tt.Consent(authURL, openID, tiktoktest.ConsentOptions{})
	require.NoError(t, err)
	u, err := url.Parse(cb)
	require.NoError(t, err)
	conn, err := flow.Complete(ctx, u.Query())
	require.NoError(t, err)
	tok, err := sdk.Social.Token(ctx, conn.ID, prov)
	require.NoError(t, err)
	live := func() bool {
		req, err := http.NewRequest(http.MethodGet, tt.BaseURL()+tiktoktest.UserInfoPath+"?fields=open_id", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := tt.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	require.True(t, live())

	purge := strings.HasPrefix(mode, "purge")
	var er retention.Request
	if purge {
		// A short grace: the access token is still live at the purge.
		_, err = sdk.Tenants.CloseTenant(ctx, time.Minute)
		require.NoError(t, err)
		clk.Advance(2 * time.Minute)
	} else {
		er = submitVerified(t, sdk, ctx, retention.KindErasure, map[string]string{social.SubjectAccount: openID})
	}
	p, _ := tenancy.FromContext(ctx)
	spec := strings.Join([]string{mode, target, kek, tt.BaseURL(), clk.Now().Format(time.RFC3339Nano), p.TenantID, p.MemberID, er.ID}, "\x1f")
	cmd := exec.Command(os.Args[0], "-test.run=^TestEraseRevokeKilledChildS16$", "-test.count=1")
	cmd.Env = append(os.Environ(), envEraseKill+"="+spec)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "kill-point: "+mode {
			require.NoError(t, cmd.Process.Kill())
			killed = true
			break
		}
		require.False(t, strings.HasPrefix(line, "child error:"), line)
	}
	_ = cmd.Wait()
	require.True(t, killed, "the child reached its kill point")
	acted := strings.HasSuffix(mode, "acted")
	require.Equal(t, acted, !live(), "TikTok acted only in the acted modes")
	if purge {
		// A tenant purge queues the revoke in its batch's transaction and
		// asks TikTok after the commit: killed there, the connection is
		// gone and the revoke waits in the queue, under the dead process's
		// claim. Until RevocationLease has passed the next run leaves it
		// to that claim and keeps the tenant's key (ErrRevokePending);
		// then it makes the revoke once (TikTok answers a revoke of a
		// revoked grant with success) and purges. On PostgreSQL the dead
		// child's session holds the tenant's purge lock until the server
		// has noticed the closed connection: the next run leaves the
		// tenant to it until then.
		_, err = sdk.Social.Get(ctx, conn.ID)
		require.ErrorIs(t, err, social.ErrNotFound)
		var res []retention.PurgeResult
		require.Eventually(t, func() bool {
			res, err = sdk.Retention.PurgeTenants(tenancy.System(context.Background(), "s16"), clk.Now())
			if len(res) == 0 {
				require.NoError(t, err)
			}
			return len(res) > 0
		}, time.Minute, 20*time.Millisecond)
		require.ErrorIs(t, err, social.ErrRevokePending)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged, "the key waits for the queued revoke")
		clk.Advance(social.RevocationLease + time.Second)
		res, err = sdk.Retention.PurgeTenants(tenancy.System(context.Background(), "s16"), clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged)
		require.False(t, live(), "TikTok's grant is gone")
		require.Len(t, tt.RequestsTo(tiktoktest.RevokePath), map[bool]int{false: 1, true: 2}[acted], "TikTok asked once after the kill")
		var left int
		require.NoError(t, db.Owner.NewRaw("SELECT count(*) FROM "+social.TableRevocations+" WHERE tenant_id = ?", p.TenantID).Scan(context.Background(), &left))
		require.Zero(t, left, "no queued token outlives the purge")
		require.NoError(t, db.Owner.NewRaw("SELECT count(*) FROM "+social.TableConnections+" WHERE tenant_id = ?", p.TenantID).Scan(context.Background(), &left))
		require.Zero(t, left, "no connection outlives the purge")
		return
	}

	// Killed after the erasure's batch committed: no token is on a
	// connection; the revoke waits in the queue, the request stays open.
	_, err = sdk.Social.Get(ctx, conn.ID)
	require.ErrorIs(t, err, social.ErrNotFound)
	n, err := sdk.Social.PendingRevocations(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the revoke is queued")
	r, err := sdk.Retention.Get(ctx, er.ID)
	require.NoError(t, err)
	require.Equal(t, retention.StatusOpen, r.Status)

	// The scheduled job completes the request; the dead process's claim
	// holds the revoke, which the receipt reports as still pending.
	rcs, err := sdk.Retention.ResumeErasures(tenancy.System(context.Background(), "s16"))
	require.NoError(t, err)
	require.Len(t, rcs, 1)
	require.Equal(t, int64(1), receiptOf(rcs[0], social.CategoryConnection).Erased)
	require.Equal(t, int64(1), receiptOf(rcs[0], social.CategoryRevocation).Pending,
		"the receipt says a platform revoke of the erased connection is still pending: %+v", rcs[0])
	r, err = sdk.Retention.Get(ctx, er.ID)
	require.NoError(t, err)
	require.Equal(t, retention.StatusCompleted, r.Status)
	done, err := sdk.Social.RetryRevocations(ctx)
	require.NoError(t, err)
	require.Zero(t, done, "the dead process's claim holds until RevocationLease")

	clk.Advance(social.RevocationLease + time.Second)
	done, err = sdk.Social.RetryRevocations(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, done)
	require.False(t, live(), "TikTok's grant is gone")
	n, err = sdk.Social.PendingRevocations(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing of the connection's tokens is left")
	require.Len(t, tt.RequestsTo(tiktoktest.RevokePath), map[string]int{"unsent": 1, "acted": 2}[mode],
		"TikTok asked once after the kill")

	var revoked []string
	for _, e := range auditOf(t, sdk, ctx, "connection.revoked", tok.AccessToken) {
		if e.Target == "connection:"+conn.ID {
			revoked = append(revoked, e.Metadata["revoke"]+"|"+e.Metadata["reason"])
		}
	}
	require.Equal(t, []string{"queued|erased", "|"}, revoked, "the audit: queued in the erasure, made after it")
}
