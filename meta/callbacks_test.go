package meta_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// callbackURLs serves the callbacks and returns their URLs.
type callbackURLs struct{ deauth, deletion, status string }

func newCallbacks(t testing.TB, w *world, opts ...meta.Option) (*meta.Callbacks, callbackURLs) {
	t.Helper()
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	cb, err := meta.NewCallbacks(w.cfg, meta.CallbackConfig{DB: w.db.DB, Social: w.sdk.Social, Retention: w.sdk.Retention,
		StatusURL: hs.URL + "/meta/deletion-status"}, append([]meta.Option{meta.WithClock(w.clk.Now),
		meta.WithLogger(w.logger())}, opts...)...)
	require.NoError(t, err)
	mux.Handle("/meta/deauthorize", cb.DeauthorizeHandler())
	mux.Handle("/meta/data-deletion", cb.DataDeletionHandler())
	mux.Handle("/meta/deletion-status", cb.DeletionStatusHandler())
	return cb, callbackURLs{hs.URL + "/meta/deauthorize", hs.URL + "/meta/data-deletion", hs.URL + "/meta/deletion-status"}
}

func postSignedRequest(t testing.TB, u, sr string) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, url.Values{"signed_request": {sr}})
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// badSignedRequests are refused by both callbacks: another secret, a
// tampered payload, a stale one, a wrong algorithm, garbage.
func badSignedRequests(t testing.TB, w *world, user string) map[string]string {
	t.Helper()
	now := w.clk.Now()
	payload := func(alg string, issued time.Time) metatest.SignedRequestPayload {
		return metatest.SignedRequestPayload{Algorithm: alg, IssuedAt: issued.Unix(), Expires: issued.Add(time.Hour).Unix(), UserID: user}
	}
	enc := func(secret string, p metatest.SignedRequestPayload) string {
		s, err := metatest.EncodeSignedRequest(secret, p)
		require.NoError(t, err)
		return s
	}
	valid, err := w.srv.SignedRequest(appID, user)
	require.NoError(t, err)
	sig, body, _ := strings.Cut(valid, ".")
	_, otherBody, _ := strings.Cut(enc(appSecret, metatest.SignedRequestPayload{Algorithm: "HMAC-SHA256",
		IssuedAt: now.Unix(), UserID: user + "0"}), ".")
	tampered := sig + "." + otherBody // the valid signature over another payload
	return map[string]string{
		"other secret":  enc("not-the-app-secret", payload("HMAC-SHA256", now)),
		"tampered":      tampered,
		"expired":       enc(appSecret, payload("HMAC-SHA256", now.Add(-2*time.Hour))),
		"future":        enc(appSecret, payload("HMAC-SHA256", now.Add(time.Hour))),
		"sha1":          enc(appSecret, payload("HMAC-SHA1", now)),
		"no signature":  "." + body,
		"not base64":    "!!!." + body,
		"only one part": sig,
	}
}

func TestDataDeletionCallback(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		tenantA := w.ctx
		connA := w.connect(userID, []string{meta.FeatureProfile, meta.FeaturePages})
		w.ctx = owner(tenancy.NewID())
		tenantB := w.ctx
		connB := w.connect(userID, []string{meta.FeatureProfile})
		cb, urls := newCallbacks(t, w)

		// Refused requests change nothing.
		for name, sr := range badSignedRequests(t, w, userID) {
			status, body := postSignedRequest(t, urls.deletion, sr)
			require.Equal(t, http.StatusUnauthorized, status, name)
			testkit.RequireNoSecret(t, body, appSecret)
		}
		status, _ := postSignedRequest(t, urls.deletion, "")
		require.Equal(t, http.StatusBadRequest, status)
		_, err := w.store.Get(tenantA, connA.ID)
		require.NoError(t, err, "a refused request erases nothing")

		conf, err := w.srv.RequestDataDeletion(t.Context(), appID, userID, urls.deletion)
		require.NoError(t, err, "the emulator checks the answer's shape")
		require.Regexp(t, regexp.MustCompile(`^[A-Z0-9]{20}$`), conf.ConfirmationCode)
		require.Equal(t, urls.status+"?code="+conf.ConfirmationCode, conf.URL)

		_, err = w.store.Get(tenantA, connA.ID)
		require.ErrorIs(t, err, social.ErrNotFound, "the user's connection is erased in tenant A")
		_, err = w.store.Get(tenantB, connB.ID)
		require.ErrorIs(t, err, social.ErrNotFound, "and in tenant B")
		left, err := w.store.AccountTenants(t.Context(), meta.Platform, userID)
		require.NoError(t, err)
		require.Empty(t, left, "the account index forgets the user")

		st, err := cb.DeletionStatus(t.Context(), conf.ConfirmationCode)
		require.NoError(t, err)
		require.Equal(t, meta.DeletionCompleted, st.State)
		require.Equal(t, 2, st.Tenants)
		require.Equal(t, 2, st.Completed)
		require.Equal(t, w.clk.Now().UTC(), st.CompletedAt)

		// The status URL, as a person and as a program reads it.
		resp, err := http.Get(conf.URL)
		require.NoError(t, err)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(page), "Status: completed")
		req, _ := http.NewRequest(http.MethodGet, conf.URL, nil)
		req.Header.Set("Accept", "application/json")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		var got meta.DeletionStatus
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		resp.Body.Close()
		require.Equal(t, st, got)
		resp, err = http.Get(urls.status + "?code=NOSUCHCODE")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)

		// Meta posting the same request again gets the same answer and
		// starts nothing new.
		again, err := w.srv.RequestDataDeletion(t.Context(), appID, userID, urls.deletion)
		require.NoError(t, err)
		require.Equal(t, conf, again)
		reqs, err := w.sdk.Retention.Overdue(tenantA, w.clk.Now().Add(365*24*time.Hour))
		require.NoError(t, err)
		require.Empty(t, reqs, "no open request is left behind")

		// A user nobody connected: completed, nothing held.
		other, err := w.srv.RequestDataDeletion(t.Context(), appID, user2ID, urls.deletion)
		require.NoError(t, err)
		st, err = cb.DeletionStatus(t.Context(), other.ConfirmationCode)
		require.NoError(t, err)
		require.Equal(t, meta.DeletionStatus{ConfirmationCode: other.ConfirmationCode, State: meta.DeletionCompleted,
			ReceivedAt: w.clk.Now().UTC()}, st)
		testkit.RequireNoSecret(t, w.logText(), appSecret)
	})
}

func TestDeauthorizeCallback(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		tenantA := w.ctx
		connA := w.connect(userID, []string{meta.FeatureProfile, meta.FeaturePages})
		w.ctx = owner(tenancy.NewID())
		tenantB := w.ctx
		connB := w.connect(userID, []string{meta.FeatureProfile})
		_, urls := newCallbacks(t, w)

		for name, sr := range badSignedRequests(t, w, userID) {
			status, body := postSignedRequest(t, urls.deauth, sr)
			require.Equal(t, http.StatusUnauthorized, status, name)
			testkit.RequireNoSecret(t, body, appSecret)
		}
		got, err := w.store.Get(tenantA, connA.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status, "a refused request revokes nothing")

		require.NoError(t, w.srv.Deauthorize(t.Context(), appID, userID, urls.deauth))
		for i, tc := range []struct {
			id string
		}{{connA.ID}, {connB.ID}} {
			ctx := tenantA
			if i == 1 {
				ctx = tenantB
			}
			got, err := w.store.Get(ctx, tc.id)
			require.NoError(t, err)
			require.Equal(t, social.StatusRevoked, got.Status)
			require.True(t, got.AccessToken.IsZero(), "tokens deleted")
			require.Equal(t, 1, w.deauthorizedEvents(ctx), "purge scheduled through the disconnect hook")
		}
		w.ctx = tenantA
		require.Contains(t, w.auditActions(), "connection.deauthorized")

		// A second notice changes nothing.
		require.NoError(t, w.srv.Deauthorize(t.Context(), appID, userID, urls.deauth))
		require.Equal(t, 1, w.deauthorizedEvents(tenantA))
		testkit.RequireNoSecret(t, w.logText(), appSecret)
	})
}

func TestParseSignedRequest(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	secret := secretOf("s3cret")
	sr, err := metatest.EncodeSignedRequest("s3cret", metatest.SignedRequestPayload{Algorithm: "HMAC-SHA256", IssuedAt: now.Unix(), UserID: "42"})
	require.NoError(t, err)
	got, err := meta.ParseSignedRequest(sr, secret, now, 0)
	require.NoError(t, err)
	require.Equal(t, meta.SignedRequest{Algorithm: "HMAC-SHA256", UserID: "42", IssuedAt: now.UTC()}, got)

	// Padding is tolerated.
	sig, payload, _ := strings.Cut(sr, ".")
	pad := func(s string) string { return s + strings.Repeat("=", (4-len(s)%4)%4) }
	_, err = meta.ParseSignedRequest(pad(sig)+"."+payload, secret, now, 0)
	require.NoError(t, err)

	_, err = meta.ParseSignedRequest(sr, secret, now.Add(2*time.Minute), time.Minute)
	require.ErrorIs(t, err, meta.ErrSignedRequestExpired)
	require.ErrorIs(t, err, meta.ErrSignedRequest)
	_, err = meta.ParseSignedRequest(sr, secretOf("other"), now, 0)
	require.ErrorIs(t, err, meta.ErrSignedRequest)
	require.NotErrorIs(t, err, meta.ErrSignedRequestExpired)
	testkit.RequireNoSecret(t, err.Error(), "s3cret")

	_, err = meta.NewCallbacks(meta.Config{AppID: appID, AppSecret: secret}, meta.CallbackConfig{})
	require.ErrorIs(t, err, meta.ErrConfig)
}

// An erasure that fails during the callback leaves the request in
// progress; ResumeDeletions finishes it.
func TestDataDeletionResumes(t *testing.T) {
	w := newWorld(t, dbtest.SQLite(t, worldSetup))
	conn := w.connect(userID, []string{meta.FeatureProfile})
	var failing atomic.Bool
	failing.Store(true)
	engine, err := retention.New(w.db.DB, retention.WithClock(w.clk.Now))
	require.NoError(t, err)
	require.NoError(t, engine.Register(retention.Category{Name: "test.connection", Table: social.TableConnections,
		Time: "created_at", Subject: map[string]string{social.SubjectConnection: "id"},
		BeforeErase: func(context.Context, bun.Tx, []string) error {
			if failing.Load() {
				return errors.New("storage unavailable")
			}
			return nil
		}}))
	// The account id is sealed: the store's resolver finds its connections.
	require.NoError(t, engine.RegisterResolver(social.SubjectAccount, w.store.Resolvers()[social.SubjectAccount]))
	cb, err := meta.NewCallbacks(w.cfg, meta.CallbackConfig{DB: w.db.DB, Social: w.store, Retention: engine,
		StatusURL: "https://crm.example/meta/deletion-status"}, meta.WithClock(w.clk.Now))
	require.NoError(t, err)
	hs := httptest.NewServer(cb.DataDeletionHandler())
	t.Cleanup(hs.Close)

	conf, err := w.srv.RequestDataDeletion(t.Context(), appID, userID, hs.URL)
	require.NoError(t, err, "Meta gets its answer: the request is recorded")
	st, err := cb.DeletionStatus(t.Context(), conf.ConfirmationCode)
	require.NoError(t, err)
	require.Equal(t, meta.DeletionInProgress, st.State)
	_, err = w.store.Get(w.ctx, conn.ID)
	require.NoError(t, err, "nothing erased yet")

	_, err = cb.ResumeDeletions(t.Context())
	require.Error(t, err)
	failing.Store(false)
	n, err := cb.ResumeDeletions(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	st, err = cb.DeletionStatus(t.Context(), conf.ConfirmationCode)
	require.NoError(t, err)
	require.Equal(t, meta.DeletionCompleted, st.State)
	_, err = w.store.Get(w.ctx, conn.ID)
	require.ErrorIs(t, err, social.ErrNotFound)
	n, err = cb.ResumeDeletions(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to resume")
}

// A deletion request whose second tenant failed (the callback answered 500)
// is completed by Meta's retry of the same signed_request: the retry does
// not take "a row exists for this code" for "done", and the status page
// counts the tenant that was missing.
func TestDataDeletionRetryReachesTheTenantAFailureMissed(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		w.connect(userID, []string{meta.FeatureProfile})
		w.ctx = owner(tenancy.NewID())
		w.connect(userID, []string{meta.FeatureProfile})
		_, urls := newCallbacks(t, w)
		ts, err := w.sdk.Social.AccountTenants(t.Context(), meta.Platform, userID)
		require.NoError(t, err)
		require.Len(t, ts, 2)
		second := ts[1].TenantID // AccountTenants orders by tenant id

		// The second tenant's erasure request cannot be written, once.
		// Triggers are the owner's to create, beneath the Guard (which
		// refuses them, and is installed on Owner too).
		raw := w.db.Reopen(t).DB
		if w.db.Name == "postgres" {
			owner, err := dbtest.OpenPostgres(w.db.OwnerDSN())
			require.NoError(t, err)
			t.Cleanup(func() { owner.Close() })
			raw = owner.DB
		}
		if w.db.Name == "postgres" {
			_, err = raw.ExecContext(t.Context(), `CREATE FUNCTION fail_second() RETURNS trigger LANGUAGE plpgsql AS
				$$ BEGIN RAISE EXCEPTION 'transient'; END $$`)
			require.NoError(t, err)
			_, err = raw.ExecContext(t.Context(), `CREATE TRIGGER fail_second BEFORE INSERT ON socialcrm_retention_requests
				FOR EACH ROW WHEN (NEW.tenant_id = '`+second+`') EXECUTE FUNCTION fail_second()`)
		} else {
			_, err = raw.ExecContext(t.Context(), `CREATE TRIGGER fail_second BEFORE INSERT ON socialcrm_retention_requests
				WHEN NEW.tenant_id = '`+second+`' BEGIN SELECT RAISE(ABORT, 'transient'); END`)
		}
		require.NoError(t, err)
		sr, err := w.srv.SignedRequest(appID, userID)
		require.NoError(t, err)
		status, _ := postSignedRequest(t, urls.deletion, sr)
		require.Equal(t, http.StatusInternalServerError, status, "the failure is reported, so Meta retries")
		dropped := "DROP TRIGGER fail_second"
		if w.db.Name == "postgres" {
			dropped += " ON socialcrm_retention_requests"
		}
		_, err = raw.ExecContext(t.Context(), dropped)
		require.NoError(t, err)

		status, body := postSignedRequest(t, urls.deletion, sr)
		require.Equal(t, http.StatusOK, status, body)
		// Each tenant has its request recorded under the code, and the
		// missed tenant's erasure was carried out by the retry.
		requestOf := func() map[string]string {
			var recorded []struct {
				TenantID  string `bun:"tenant_id"`
				RequestID string `bun:"request_id"`
			}
			require.NoError(t, w.db.DB.NewSelect().Table("socialcrm_meta_deletions").
				Column("tenant_id", "request_id").Scan(t.Context(), &recorded))
			m := map[string]string{}
			for _, r := range recorded {
				m[r.TenantID] = r.RequestID
			}
			return m
		}
		recorded := requestOf()
		require.Len(t, recorded, 2, "one recorded request per tenant")
		sctx, err := tenancy.AsTenant(tenancy.System(t.Context(), "test"), second)
		require.NoError(t, err)
		req, err := w.sdk.Retention.Get(sctx, recorded[second])
		require.NoError(t, err, "the retry submitted the missed tenant's erasure")
		require.NotEqual(t, retention.StatusOpen, req.Status, "and carried it out")

		// A third post starts nothing new.
		status, _ = postSignedRequest(t, urls.deletion, sr)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, recorded, requestOf())
	})
}
