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
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// s17Hold is a fault hold: held reports (once) that the platform reached
// it, and the request waits until release is called or the test ends.
type s17Hold struct {
	held    chan struct{}
	release func()
	wait    chan struct{}
	once    sync.Once
}

func newS17Hold(t *testing.T) *s17Hold {
	h := &s17Hold{held: make(chan struct{}), wait: make(chan struct{})}
	var once sync.Once
	h.release = func() { once.Do(func() { close(h.wait) }) }
	t.Cleanup(h.release)
	return h
}

func (h *s17Hold) hold() {
	h.once.Do(func() { close(h.held) })
	<-h.wait
}

func (h *s17Hold) reached(t *testing.T) {
	t.Helper()
	select {
	case <-h.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the platform was not reached")
	}
}

// TestPurgeSlowPlatformHoldsNoTransactionS17: a tenant purge reaches a
// live TikTok connection while TikTok's revoke hangs. The purge has
// queued the revoke and committed before it asks TikTok, so another writer
// of the same tenant — a disconnect of that very connection, which waits
// for the connection's row lock (PostgreSQL) or the write lock (SQLite) —
// is answered at once (the connection is gone) rather than after the
// platform's timeout. Once TikTok answers, the purge completes: the grant
// is gone, asked once, nothing is left queued, and the audit shows the
// revoke queued in the purge's transaction, then made. (The purge used to
// call TikTok inside the batch's transaction.)
func TestPurgeSlowPlatformHoldsNoTransactionS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		conn := w.connectTikTok([]string{"profile"})
		_, err := w.sdk.Tenants.CloseTenant(w.ctx, time.Minute)
		require.NoError(t, err)
		w.clk.Advance(2 * time.Minute)
		h := newS17Hold(t)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Hold: h.hold, Pass: true})

		sys := tenancy.System(context.Background(), "retention")
		type outcome struct {
			purged bool
			err    error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := w.sdk.Retention.PurgeTenants(sys, w.clk.Now())
			done <- outcome{len(res) == 1 && res[0].Purged, err}
		}()
		h.reached(t)

		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err = w.sdk.Social.Disconnect(ctx, conn.ID, nil)
		took := time.Since(start)
		t.Logf("the other writer waited %v while TikTok hung", took)
		require.ErrorIs(t, err, social.ErrNotFound, "the purge erased the connection before asking TikTok")
		require.Less(t, took, 2*time.Second, "the writer waited %v on the purge's transaction", took)
		require.True(t, w.tt.Authorized("ck", canaryOpenID), "TikTok has not answered yet")

		h.release()
		out := <-done
		require.NoError(t, out.err)
		require.True(t, out.purged)
		require.False(t, w.tt.Authorized("ck", canaryOpenID), "TikTok's grant is gone")
		require.Len(t, w.tt.RequestsTo(tiktoktest.RevokePath), 1, "TikTok asked once")
		left, err := w.sdk.Social.PendingRevocations(w.ctx)
		require.NoError(t, err)
		require.Zero(t, left, "no queued token outlives the purge")
		var got []string
		for _, e := range auditOf(t, w.sdk, w.ctx, "connection.revoked") {
			if e.Target == "connection:"+conn.ID {
				got = append(got, e.Metadata["revoke"]+"|"+e.Metadata["reason"])
			}
		}
		require.Equal(t, []string{"queued|erased", "|"}, got, "queued in the purge's transaction, made after it")
	}, migrated)
}

// The kill -9 test of a revoke by refresh. A child process (this test
// binary, running TestRevokeByRefreshKilledChildS17) opens the SDK on the
// parent's database and key file and disconnects a TikTok connection
// whose access token has expired: TikTok's provider refreshes first
// (TikTok rotates the refresh token: the old one stops working), then
// revokes the new access token. The child's transport stops at the
// revoke: before TikTok is asked ("unsent"), or after TikTok revoked the
// grant and before its answer is read back ("acted"); the parent kills
// it with SIGKILL.
const envRevokeKillS17 = "SOCIALCRM_S17_REVOKE_KILL"

// TestRevokeByRefreshKilledChildS17 is the child's body; it does nothing
// unless started by TestRevokeByRefreshKilledS17.
func TestRevokeByRefreshKilledChildS17(t *testing.T) {
	spec := os.Getenv(envRevokeKillS17)
	if spec == "" {
		return
	}
	f := strings.Split(spec, "\x1f") // mode, target, kek, base, now, tenant, member, connection
	mode := f[0]
	at, err := time.Parse(time.RFC3339Nano, f[4])
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
	sdk, _ := s16Open(t, f[1], f[2], f[3], f[3], hc, func() time.Time { return at })
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: f[5], MemberID: f[6], Role: tenancy.RoleOwner})
	_, err = sdk.Social.Disconnect(ctx, f[7], nil)
	fmt.Println("child error: disconnect returned:", err)
	os.Exit(3)
}

// TestRevokeByRefreshKilledS17: a disconnect revokes a TikTok connection
// whose access token expired, through a refresh; the process is killed
// (SIGKILL) once TikTok rotated the tokens, before or after TikTok
// revoked the grant. The rotated tokens were stored, sealed, in the
// queued revoke before the revoke was sent, so once the dead process's
// claim lapses RetryRevocations revokes the grant with them — without
// another refresh — and the grant is gone. (The queue used to keep the
// spent refresh token: the retry's refresh was refused, the revoke
// counted as done, and the grant stayed alive at TikTok.) On both
// databases.
func TestRevokeByRefreshKilledS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		kek := filepath.Join(t.TempDir(), "kek.json")
		for _, mode := range []string{"unsent", "acted"} {
			t.Run(mode, func(t *testing.T) { revokeByRefreshKilled(t, db, kek, mode) })
		}
	})
}

func revokeByRefreshKilled(t *testing.T, db *dbtest.DB, kek, mode string) {
	clk := fakeclock.New()
	clk.Set(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	const redirect = "https://crm.example/callback"
	openID := "s17-" + mode
	tt := tiktoktest.Start(t, tiktoktest.WithClock(clk.Now), tiktoktest.WithRotation(tiktoktest.RotateSingleUse),
		tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURIs: []string{redirect},
			Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: openID, DisplayName: "S17 Creator"}))
	target := "sqlite:" + db.Path
	if db.Name == "postgres" {
		target = "postgres:" + db.DSN() + " " + db.OwnerDSN()
	}
	sdk, prov := s16Open(t, target, kek, tt.BaseURL(), tt.AuthorizeURL(), tt.Client(), clk.Now)
	_, owner, err := sdk.Tenants.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "S17 " + mode,
		Owner: tenancy.NewMember{Email: mode + "@s17.example", Name: "Ada"}})
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

	// The access token expires; the refresh token lives on.
	clk.Advance(tiktoktest.DefaultAccessTokenLifetime + time.Minute)
	refreshes := len(tt.RequestsTo(tiktoktest.TokenPath))
	p, _ := tenancy.FromContext(ctx)
	spec := strings.Join([]string{mode, target, kek, tt.BaseURL(), clk.Now().Format(time.RFC3339Nano), p.TenantID, p.MemberID, conn.ID}, "\x1f")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRevokeByRefreshKilledChildS17$", "-test.count=1")
	cmd.Env = append(os.Environ(), envRevokeKillS17+"="+spec)
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
	require.Len(t, tt.RequestsTo(tiktoktest.TokenPath), refreshes+1, "the child refreshed once")
	require.Equal(t, mode == "unsent", tt.Authorized("ck", openID), "TikTok revoked only in the acted mode")

	n, err := sdk.Social.PendingRevocations(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the revoke is queued")
	clk.Advance(social.RevocationLease + time.Second)
	done, err := sdk.Social.RetryRevocations(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, done)
	require.False(t, tt.Authorized("ck", openID), "TikTok's grant is gone")
	require.Len(t, tt.RequestsTo(tiktoktest.TokenPath), refreshes+1, "the retry revoked with the rotated tokens, without a refresh")
	n, err = sdk.Social.PendingRevocations(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	for _, e := range auditOf(t, sdk, ctx, "connection.revoked") {
		require.NotEqual(t, "token_invalid", e.Metadata["revoke"], "the revoke went through a live token")
	}
}

// TestRefreshLoserRevokesS17: a refresh of a TikTok connection whose
// database connection drops once TikTok has rotated the tokens (the
// server ends its backend) while a disconnect of the connection commits
// before the refresh saves them again. The disconnect queued the spent
// tokens (its revoke by refresh is refused: TikTok answers the old
// refresh token with invalid_grant); the refresh's save then finds the
// connection revoked, and revokes the live tokens it holds instead of
// dropping them: the grant is gone and the refresh fails with
// ErrRevoked. (They used to be dropped, the grant alive at TikTok.)
//
// PostgreSQL only: on SQLite a refresh holds the database's write lock
// from its read to its commit (BEGIN IMMEDIATE), so no disconnect can
// commit between TikTok's answer and the save, and no backend can be
// ended under it from outside.
func TestRefreshLoserRevokesS17(t *testing.T) {
	db := dbtest.Postgres(t, migrated)
	w := newPlatformWorld(t, db)
	conn := w.connectTikTok([]string{"profile"})
	w.clk.Advance(tiktoktest.DefaultAccessTokenLifetime + time.Minute)
	h := newS17Hold(t)
	w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath, Processed: true, Pass: true, Hold: h.hold})

	refreshed := make(chan error, 1)
	go func() {
		_, err := w.sdk.Social.Token(w.ctx, conn.ID, w.ttProv)
		refreshed <- err
	}()
	h.reached(t) // TikTok rotated the tokens; its answer is on the way

	// The refresh's database connection drops: the only backend of the
	// test's database in a transaction is the refresh's.
	admin := db.Admin(t)
	var ended []bool
	require.NoError(t, admin.NewRaw(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`).
		Scan(context.Background(), &ended))
	require.Equal(t, []bool{true}, ended)
	_, err := w.sdk.Social.Disconnect(w.ctx, conn.ID, nil)
	require.NoError(t, err)
	require.True(t, w.tt.Authorized("ck", canaryOpenID), "the disconnect's revoke went through the spent tokens")

	h.release()
	require.ErrorIs(t, <-refreshed, social.ErrRevoked)
	require.False(t, w.tt.Authorized("ck", canaryOpenID), "the refresh revoked the live tokens it held")
	n, err := w.sdk.Social.PendingRevocations(w.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

// TestRefreshLoserKeepsLiveTokensS17: a refresh of a TikTok connection
// whose database connection drops once TikTok has rotated the tokens,
// while another caller refreshes with the refresh token TikTok has just
// rotated away: TikTok refuses it (invalid_grant) and that caller marks
// the connection needs_reauth. The first refresh then saves the live
// tokens it holds over the version they replace: the connection is
// active again (audited as connection.reauthorized), the first caller
// gets the new access token, and TikTok honours it. (They used to be
// dropped: the connection stayed needs_reauth with a live grant that
// nothing held, and the user had to connect again.)
//
// PostgreSQL only, as TestRefreshLoserRevokesS17.
func TestRefreshLoserKeepsLiveTokensS17(t *testing.T) {
	db := dbtest.Postgres(t, migrated)
	w := newPlatformWorld(t, db)
	conn := w.connectTikTok([]string{"profile"})
	w.clk.Advance(tiktoktest.DefaultAccessTokenLifetime + time.Minute)
	h := newS17Hold(t)
	w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath, Processed: true, Pass: true, Hold: h.hold})

	type answer struct {
		tok string
		err error
	}
	refreshed := make(chan answer, 1)
	go func() {
		tok, err := w.sdk.Social.Token(w.ctx, conn.ID, w.ttProv)
		if err != nil {
			refreshed <- answer{err: err}
			return
		}
		refreshed <- answer{tok: tok.AccessToken}
	}()
	h.reached(t)
	admin := db.Admin(t)
	var ended []bool
	require.NoError(t, admin.NewRaw(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`).
		Scan(context.Background(), &ended))
	require.Equal(t, []bool{true}, ended)
	_, err := w.sdk.Social.Token(w.ctx, conn.ID, w.ttProv)
	require.ErrorIs(t, err, social.ErrNeedsReauth, "the rotated-away refresh token is refused")

	h.release()
	a := <-refreshed
	require.NoError(t, a.err)
	c, err := w.sdk.Social.Get(w.ctx, conn.ID)
	require.NoError(t, err)
	require.Equal(t, social.StatusActive, c.Status)
	tok, err := w.sdk.Social.Token(w.ctx, conn.ID, w.ttProv)
	require.NoError(t, err)
	require.Equal(t, a.tok, tok.AccessToken, "the saved tokens are the live ones")
	req, err := http.NewRequest(http.MethodGet, w.tt.BaseURL()+tiktoktest.UserInfoPath+"?fields=open_id", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := w.tt.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "TikTok honours the saved token")
	var got []string
	for _, e := range auditOf(t, w.sdk, w.ctx, "connection.reauthorized") {
		got = append(got, e.Target+"|"+e.Metadata["reason"])
	}
	require.Equal(t, []string{"connection:" + conn.ID + "|rotated tokens saved"}, got)
}

// TestPurgeTwoProcessesRevokeOnceS17: two processes (two SDKs on one
// database) purge the same closed tenant at once while TikTok's revoke
// hangs. The first erases the connection, queues its revoke, commits and
// asks TikTok under its claim; the second finds the revoke claimed and
// stops without the key going (ErrRevokePending), asking TikTok nothing.
// Once TikTok answers, the first completes the purge: TikTok was asked
// once, the grant is gone, nothing is left queued. On both databases.
func TestPurgeTwoProcessesRevokeOnceS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		clk := fakeclock.New()
		clk.Set(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
		const redirect = "https://crm.example/callback"
		const openID = "s17-two"
		tt := tiktoktest.Start(t, tiktoktest.WithClock(clk.Now),
			tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURIs: []string{redirect},
				Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
			tiktoktest.WithUser(tiktoktest.User{OpenID: openID, DisplayName: "S17 Creator"}))
		target := "sqlite:" + db.Path
		if db.Name == "postgres" {
			target = "postgres:" + db.DSN() + " " + db.OwnerDSN()
		}
		kek := filepath.Join(t.TempDir(), "kek.json")
		a, prov := s16Open(t, target, kek, tt.BaseURL(), tt.AuthorizeURL(), tt.Client(), clk.Now)
		b, _ := s16Open(t, target, kek, tt.BaseURL(), tt.AuthorizeURL(), tt.Client(), clk.Now)
		_, owner, err := a.Tenants.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "S17 two",
			Owner: tenancy.NewMember{Email: "two@s17.example", Name: "Ada"}})
		require.NoError(t, err)
		ctx := tenancy.WithPrincipal(context.Background(), owner.Principal())
		flow, err := a.Social.NewFlow(prov, social.FlowConfig{Features: []string{"profile"}, Purposes: []string{"analytics"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(ctx)
		require.NoError(t, err)
		cb, err := tt.Consent(authURL, openID, tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		u, err := url.Parse(cb)
		require.NoError(t, err)
		_, err = flow.Complete(ctx, u.Query())
		require.NoError(t, err)
		_, err = a.Tenants.CloseTenant(ctx, time.Minute)
		require.NoError(t, err)
		clk.Advance(2 * time.Minute)

		h := newS17Hold(t)
		tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Hold: h.hold, Pass: true})
		sys := tenancy.System(context.Background(), "s17")
		type outcome struct {
			purged bool
			err    error
		}
		first := make(chan outcome, 1)
		go func() {
			res, err := a.Retention.PurgeTenants(sys, clk.Now())
			first <- outcome{len(res) == 1 && res[0].Purged, err}
		}()
		h.reached(t)
		res, err := b.Retention.PurgeTenants(sys, clk.Now())
		if db.Name == "postgres" {
			// The first holds the tenant's purge lock: the second leaves it.
			require.NoError(t, err)
			require.Empty(t, res)
		} else {
			require.ErrorIs(t, err, social.ErrRevokePending)
			require.Len(t, res, 1)
			require.False(t, res[0].Purged)
		}
		require.Len(t, tt.RequestsTo(tiktoktest.RevokePath), 0, "TikTok has answered nothing yet")

		h.release()
		out := <-first
		require.NoError(t, out.err)
		require.True(t, out.purged)
		require.Len(t, tt.RequestsTo(tiktoktest.RevokePath), 1, "TikTok asked once")
		require.False(t, tt.Authorized("ck", openID), "TikTok's grant is gone")
		n, err := a.Social.PendingRevocations(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// TestRevokeByRefreshCancelledS17: a disconnect of a TikTok connection
// whose access token expired is cancelled by its caller while TikTok
// answers the refresh that the revoke needs — TikTok has rotated the
// tokens. The refresh is not cancelled with the caller: its answer is
// stored in the queued revoke (the revoke itself, cancelled, is left
// queued), and RetryRevocations revokes the grant with the rotated tokens,
// without another refresh. (The refresh used to be cancelled, its answer
// lost: the queue kept the spent refresh token, the retry was refused and
// counted as done, and the grant stayed alive at TikTok.) On both
// databases.
func TestRevokeByRefreshCancelledS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		conn := w.connectTikTok([]string{"profile"})
		w.clk.Advance(tiktoktest.DefaultAccessTokenLifetime + time.Minute)
		refreshes := len(w.tt.RequestsTo(tiktoktest.TokenPath))
		h := newS17Hold(t)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath, Processed: true, Pass: true, Hold: h.hold})

		ctx, cancel := context.WithCancel(w.ctx)
		disconnected := make(chan error, 1)
		go func() {
			_, err := w.sdk.Social.Disconnect(ctx, conn.ID, nil)
			disconnected <- err
		}()
		h.reached(t) // TikTok rotated the tokens
		cancel()
		h.release()
		require.NoError(t, <-disconnected)
		require.True(t, w.tt.Authorized("ck", canaryOpenID), "the cancelled revoke was not sent")
		n, err := w.sdk.Social.PendingRevocations(w.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		w.clk.Advance(time.Hour)
		done, err := w.sdk.Social.RetryRevocations(w.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, done)
		require.False(t, w.tt.Authorized("ck", canaryOpenID), "TikTok's grant is gone")
		require.Len(t, w.tt.RequestsTo(tiktoktest.TokenPath), refreshes+1, "revoked with the rotated tokens, without another refresh")
	}, migrated)
}

// TestPurgePendingReceiptS17: a tenant purge whose platform revoke fails
// erases the connection (its receipt counts it), keeps the queued revoke
// and the key, and says so: the social.revocation receipt counts the
// revoke as pending. Once the platform is back the next run makes the
// revoke and purges. On both databases.
func TestPurgePendingReceiptS17(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		w.connectTikTok([]string{"profile"})
		_, err := w.sdk.Tenants.CloseTenant(w.ctx, time.Minute)
		require.NoError(t, err)
		w.clk.Advance(2 * time.Minute)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
		sys := tenancy.System(context.Background(), "retention")
		res, err := w.sdk.Retention.PurgeTenants(sys, w.clk.Now())
		require.ErrorIs(t, err, social.ErrRevokePending)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged)
		require.Equal(t, int64(1), receiptOf(retention.Receipt{Categories: res[0].Receipts}, social.CategoryConnection).Erased)
		require.Equal(t, int64(1), receiptOf(retention.Receipt{Categories: res[0].Receipts}, social.CategoryRevocation).Pending, "%+v", res[0].Receipts)
		require.True(t, w.tt.Authorized("ck", canaryOpenID))

		res, err = w.sdk.Retention.PurgeTenants(sys, w.clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged)
		require.False(t, w.tt.Authorized("ck", canaryOpenID))
	}, migrated)
}
