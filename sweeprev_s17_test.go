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

// sweeprevOpen opens the SDK as s16Open does, with the default policy
// plus a rule that sweeps queued platform revokes a day after they were
// queued.
func sweeprevOpen(t testing.TB, target, kek, base, authorize string, hc *http.Client, now func() time.Time) (*socialcrm.SDK, *tiktok.Provider) {
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
	p := socialcrm.DefaultPolicy(socialcrm.Categories(nil))
	p.Rules = append(p.Rules, retention.Rule{Category: social.CategoryRevocation, Period: retention.Day,
		Note: "queued revokes made or given up a day after they were queued"})
	sdk, err := socialcrm.Open(context.Background(), socialcrm.Config{DB: db, Owner: owner, KEK: kf, Now: now,
		Providers: []social.Provider{prov}, Policy: &p})
	require.NoError(t, err)
	return sdk, prov
}

// sweeprevWorld is a tenant with a TikTok connection whose Disconnect's
// revoke failed: the revoke is queued with the connection's tokens, and
// the clock is two days on, so that a sweep erases the queued revoke and
// the access token has expired (TikTok's provider refreshes to revoke).
type sweeprevWorld struct {
	sdk    *socialcrm.SDK
	tt     *tiktoktest.Server
	clk    *fakeclock.Clock
	ctx    context.Context
	sys    context.Context
	conn   social.Connection
	openID string
	target string
	kek    string
}

func newSweeprevWorld(t *testing.T, db *dbtest.DB, kek, name string) *sweeprevWorld {
	w := &sweeprevWorld{clk: fakeclock.New(), openID: "s17-sweep-" + name, kek: kek,
		sys: tenancy.System(context.Background(), "retention")}
	w.clk.Set(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	const redirect = "https://crm.example/callback"
	w.tt = tiktoktest.Start(t, tiktoktest.WithClock(w.clk.Now), tiktoktest.WithRotation(tiktoktest.RotateSingleUse),
		tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURIs: []string{redirect},
			Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: w.openID, DisplayName: "S17 Creator"}))
	w.target = "sqlite:" + db.Path
	if db.Name == "postgres" {
		w.target = "postgres:" + db.DSN() + " " + db.OwnerDSN()
	}
	var prov *tiktok.Provider
	w.sdk, prov = sweeprevOpen(t, w.target, kek, w.tt.BaseURL(), w.tt.AuthorizeURL(), w.tt.Client(), w.clk.Now)
	_, owner, err := w.sdk.Tenants.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "S17 sweep " + name,
		Owner: tenancy.NewMember{Email: name + "@s17sweep.example", Name: "Ada"}})
	require.NoError(t, err)
	w.ctx = tenancy.WithPrincipal(context.Background(), owner.Principal())
	flow, err := w.sdk.Social.NewFlow(prov, social.FlowConfig{Features: []string{"profile"}, Purposes: []string{"analytics"}})
	require.NoError(t, err)
	authURL, err := flow.Begin(w.ctx)
	require.NoError(t, err)
	cb, err := w.tt.Consent(authURL, w.openID, tiktoktest.ConsentOptions{})
	require.NoError(t, err)
	u, err := url.Parse(cb)
	require.NoError(t, err)
	w.conn, err = flow.Complete(w.ctx, u.Query())
	require.NoError(t, err)

	w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusInternalServerError})
	_, err = w.sdk.Social.Disconnect(w.ctx, w.conn.ID, nil)
	require.NoError(t, err)
	require.Equal(t, 1, w.pending(t), "Disconnect's revoke failed: queued")
	require.True(t, w.tt.Authorized("ck", w.openID))
	w.clk.Advance(2 * 24 * time.Hour)
	return w
}

func (w *sweeprevWorld) pending(t *testing.T) int {
	t.Helper()
	n, err := w.sdk.Social.PendingRevocations(w.ctx)
	require.NoError(t, err)
	return n
}

// revoked returns the attempts and outcome ("" when made) of the
// connection's connection.revoked audit entries, oldest first.
func (w *sweeprevWorld) revoked(t *testing.T, action string) []string {
	t.Helper()
	var got []string
	for _, e := range auditOf(t, w.sdk, w.ctx, action) {
		if e.Target == "connection:"+w.conn.ID {
			got = append(got, e.Metadata["attempts"]+"|"+e.Metadata["revoke"])
		}
	}
	return got
}

// TestSweepSlowPlatformHoldsNoTransactionS17: a sweep reaches a queued
// TikTok revoke (a day old: the policy sweeps them) while TikTok's revoke
// hangs. The sweep asks TikTok before any of its batches, outside any
// transaction, having claimed the revoke; so another writer of the same
// queued row — RetryRevocations of another process, which would claim
// it — is answered at once (claimed: not its to make) rather than after
// the platform's timeout. Once TikTok answers, the sweep completes: the
// grant is gone, TikTok was asked once, nothing is left queued, and the
// audit shows the revoke made at its second attempt. (The sweep used to
// call TikTok inside the batch's transaction, the row locked.)
func TestSweepSlowPlatformHoldsNoTransactionS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newSweeprevWorld(t, db, filepath.Join(t.TempDir(), "kek.json"), "slow")
		revokes := len(w.tt.RequestsTo(tiktoktest.RevokePath))
		h := newS17Hold(t)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Hold: h.hold, Pass: true})

		type outcome struct {
			rep retention.Report
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			rep, err := w.sdk.Retention.Sweep(w.sys, w.clk.Now())
			done <- outcome{rep, err}
		}()
		h.reached(t)

		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		n, err := w.sdk.Social.RetryRevocations(ctx)
		took := time.Since(start)
		t.Logf("the other writer waited %v while TikTok hung", took)
		require.NoError(t, err, "the other writer was not kept waiting")
		require.Zero(t, n, "the sweep holds the revoke's claim")
		require.Less(t, took, 2*time.Second, "the writer waited %v on the sweep's transaction", took)
		require.True(t, w.tt.Authorized("ck", w.openID), "TikTok has not answered yet")

		h.release()
		out := <-done
		require.NoError(t, out.err)
		require.False(t, w.tt.Authorized("ck", w.openID), "TikTok's grant is gone")
		require.Len(t, w.tt.RequestsTo(tiktoktest.RevokePath), revokes+1, "TikTok asked once")
		require.Zero(t, w.pending(t), "no queued token outlives the sweep")
		for _, rc := range out.rep.Receipts {
			require.Zero(t, rc.Pending, "%+v", rc)
		}
		got := w.revoked(t, "connection.revoked")
		require.Equal(t, "2|", got[len(got)-1], "made at the second attempt: %v", got)
	}, migrated)
}

// TestSweepRevokePendingS17: a sweep whose queued revoke still fails
// records the failure (attempts, last error), keeps the revoke and its
// tokens, stops with ErrRevokePending and says so in its report: the
// category's receipt counts the revoke as Pending. Once the revoke was
// queued RevokeAbandonAfter ago, a sweep whose attempt fails again gives
// it up (connection.revoke_abandoned), erases it and completes.
func TestSweepRevokePendingS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newSweeprevWorld(t, db, filepath.Join(t.TempDir(), "kek.json"), "pending")
		revokes := func() int { return len(w.tt.RequestsTo(tiktoktest.RevokePath)) }
		before := revokes()
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusBadGateway})
		rep, err := w.sdk.Retention.Sweep(w.sys, w.clk.Now())
		require.ErrorIs(t, err, social.ErrRevokePending)
		require.Equal(t, before+1, revokes(), "TikTok asked once")
		var rc retention.CategoryReceipt
		for _, r := range rep.Receipts {
			if r.Category == social.CategoryRevocation {
				rc = r
			}
		}
		require.Equal(t, int64(1), rc.Pending, "the report says the revoke is pending: %+v", rep.Receipts)
		require.Zero(t, rc.Erased)
		p, err := w.sdk.Social.Revocations(w.ctx, social.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		require.Equal(t, 2, p.Items[0].Attempts, "the sweep's attempt is recorded")
		require.NotEmpty(t, p.Items[0].LastError)
		require.True(t, w.tt.Authorized("ck", w.openID))

		// A week after it was queued, failing once more: given up.
		w.clk.Advance(social.RevokeAbandonAfter)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusBadGateway})
		_, err = w.sdk.Retention.Sweep(w.sys, w.clk.Now())
		require.NoError(t, err)
		require.Equal(t, before+2, revokes())
		require.Zero(t, w.pending(t))
		require.Equal(t, []string{"3|"}, w.revoked(t, "connection.revoke_abandoned"))
	}, migrated)
}

// The kill -9 test of a sweep's revoke by refresh. A child process (this
// test binary, running TestSweepRevokeByRefreshKilledChildS17) opens the
// SDK on the parent's database and key file and sweeps: the sweep's start
// hook makes the queued revoke, whose access token has expired, so
// TikTok's provider refreshes first (TikTok rotates the refresh token:
// the old one stops working), then revokes the new access token. The
// child's transport stops at the revoke: before TikTok is asked
// ("unsent"), or after TikTok revoked the grant and before its answer is
// read back ("acted"); the parent kills it with SIGKILL.
const envSweepRevokeKillS17 = "SOCIALCRM_S17_SWEEP_REVOKE_KILL"

// TestSweepRevokeByRefreshKilledChildS17 is the child's body; it does
// nothing unless started by TestSweepRevokeByRefreshKilledS17.
func TestSweepRevokeByRefreshKilledChildS17(t *testing.T) {
	spec := os.Getenv(envSweepRevokeKillS17)
	if spec == "" {
		return
	}
	f := strings.Split(spec, "\x1f") // mode, target, kek, base, authorize, now
	mode := f[0]
	at, err := time.Parse(time.RFC3339Nano, f[5])
	require.NoError(t, err)
	hc := &http.Client{Transport: s16RoundTrip(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == tiktoktest.RevokePath {
			if mode == "acted" {
				if resp, err := http.DefaultTransport.RoundTrip(r); err == nil {
					_, _ = io.ReadAll(resp.Body) // TikTok revoked; its answer dies with us
				}
			}
			fmt.Println("\nkill-point: " + mode)
			select {} // until killed
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	sdk, _ := sweeprevOpen(t, f[1], f[2], f[3], f[4], hc, func() time.Time { return at })
	_, err = sdk.Retention.Sweep(tenancy.System(context.Background(), "retention"), at)
	fmt.Println("child error: sweep returned:", err)
	os.Exit(3)
}

// TestSweepRevokeByRefreshKilledS17: a sweep makes a queued revoke of a
// TikTok connection whose access token expired, through a refresh; the
// process is killed (SIGKILL) once TikTok rotated the tokens, before or
// after TikTok revoked the grant. The rotated tokens were stored, sealed,
// in the queued revoke before the revoke was sent, so the revoke is still
// queued, and once the dead process's claim lapses the next sweep revokes
// the grant with them — without another refresh — and the grant is gone.
// (The sweep used to revoke inside its batch's transaction without
// storing them: the kill rolled the batch back to the spent refresh
// token, the next sweep's refresh was refused, the revoke counted as done
// with token_invalid, and the grant stayed alive at TikTok.) On both
// databases.
func TestSweepRevokeByRefreshKilledS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		kek := filepath.Join(t.TempDir(), "kek.json")
		for _, mode := range []string{"unsent", "acted"} {
			t.Run(mode, func(t *testing.T) { sweepRevokeByRefreshKilled(t, db, kek, mode) })
		}
	}, migrated)
}

func sweepRevokeByRefreshKilled(t *testing.T, db *dbtest.DB, kek, mode string) {
	w := newSweeprevWorld(t, db, kek, mode)
	refreshes := len(w.tt.RequestsTo(tiktoktest.TokenPath))
	spec := strings.Join([]string{mode, w.target, kek, w.tt.BaseURL(), w.tt.AuthorizeURL(), w.clk.Now().Format(time.RFC3339Nano)}, "\x1f")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSweepRevokeByRefreshKilledChildS17$", "-test.count=1")
	cmd.Env = append(os.Environ(), envSweepRevokeKillS17+"="+spec)
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
	require.Len(t, w.tt.RequestsTo(tiktoktest.TokenPath), refreshes+1, "the child refreshed once")
	require.Equal(t, mode == "unsent", w.tt.Authorized("ck", w.openID), "TikTok revoked only in the acted mode")
	require.Equal(t, 1, w.pending(t), "the revoke is still queued")

	w.clk.Advance(social.RevocationLease + time.Second)
	_, err = w.sdk.Retention.Sweep(w.sys, w.clk.Now())
	require.NoError(t, err)
	require.False(t, w.tt.Authorized("ck", w.openID), "TikTok's grant is gone")
	require.Len(t, w.tt.RequestsTo(tiktoktest.TokenPath), refreshes+1, "the sweep revoked with the rotated tokens, without a refresh")
	require.Zero(t, w.pending(t))
	got := w.revoked(t, "connection.revoked")
	for _, e := range got {
		require.NotContains(t, e, "token_invalid", "the revoke went through a live token: %v", got)
	}
	require.Equal(t, "2|", got[len(got)-1], "%v", got)
}
