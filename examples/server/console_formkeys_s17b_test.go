package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// eachDBWith is eachDB with the configuration adjusted by configure.
func eachDBWith(t *testing.T, configure func(*config), fn func(t *testing.T, a *testApp)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, startTestApp(t, slog.New(slog.DiscardHandler), configure))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		fn(t, startTestApp(t, slog.New(slog.DiscardHandler), configure, "-db", db.DSN(), "-owner-db", db.OwnerDSN()))
	})
}

// sent is the answer to a form posted from a goroutine.
type sent struct {
	resp *http.Response
	err  error
}

// postForm posts a console form as consolePost does, safe to call from a
// goroutine: failures are returned, not asserted.
func postForm(a *testApp, token, csrf, path string, form url.Values) sent {
	form.Set("csrf", csrf)
	req, err := http.NewRequest("POST", a.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return sent{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: cookieAccess, Value: token})
	resp, err := noRedirect().Do(req)
	if err != nil {
		return sent{err: err}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return sent{resp: resp}
}

// TestConsoleFormSentWhileRunningS17b: a form sent again while its first
// sending still runs (a handler held open) never hears "Already done"
// before the first acted: it waits for the first and tells its real
// outcome — done: "Already done"; failed: it acts itself; still running
// after the wait: "Still working", no claim of success.
func TestConsoleFormSentWhileRunningS17b(t *testing.T) {
	t.Parallel()
	const wait = 1500 * time.Millisecond
	eachDBWith(t, func(c *config) { c.formWait = wait }, func(t *testing.T, a *testApp) {
		entered := make(chan struct{}, 4)
		gate := make(chan error)
		errRefused := &apiError{Status: http.StatusConflict, Code: "conflict", Message: "refused for the test"}
		a.form("POST /console/test/held", member, "", "/console/", func(w http.ResponseWriter, r *http.Request, p *page) error {
			entered <- struct{}{}
			if err := <-gate; err != nil {
				return err
			}
			return a.seeOther(w, r, "/console/", "acted for the test")
		})
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Held", "email": "h@held.example", "name": "H", "password": "long enough password"}, 201)
		token := str(su, "session", "access_token")
		const csrf = "0123456789abcdef0123456789abcdef0123"
		send := func(key string) <-chan sent {
			ch := make(chan sent, 1)
			go func() { ch <- postForm(a, token, csrf, "/console/test/held", url.Values{"form_key": {key}}) }()
			return ch
		}
		recv := func(ch <-chan sent) *http.Response {
			t.Helper()
			select {
			case s := <-ch:
				require.NoError(t, s.err)
				return s.resp
			case <-time.After(time.Minute):
				t.Fatal("no answer")
				return nil
			}
		}
		enter := func() {
			t.Helper()
			select {
			case <-entered:
			case <-time.After(time.Minute):
				t.Fatal("the handler was not entered")
			}
		}

		// Still running after the wait: "Still working", not "Already done".
		key := randomToken()
		first := send(key)
		enter()
		start := time.Now()
		resp := recv(send(key))
		require.GreaterOrEqual(t, time.Since(start), wait, "the second sending waited for the first")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, stillWorking, flashOf(t, a, resp))
		require.NotContains(t, flashOf(t, a, resp), "Already done")

		// The first then acts: a sending waiting for it (or arriving
		// after) hears "Already done", and the handler ran once.
		third := send(key)
		gate <- nil
		resp = recv(first)
		require.Equal(t, "acted for the test", flashOf(t, a, resp))
		resp = recv(third)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, alreadySent, flashOf(t, a, resp))
		require.Empty(t, entered, "a form sent three times acted once")

		// The first fails: the second, waiting for it (or arriving after
		// it freed the key), acts itself and tells its own outcome.
		key = randomToken()
		first = send(key)
		enter()
		second := send(key)
		gate <- errRefused
		resp = recv(first)
		require.Equal(t, http.StatusConflict, resp.StatusCode)
		enter()
		gate <- nil
		resp = recv(second)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "acted for the test", flashOf(t, a, resp))

		// The browser gone while waiting: the waiting sending ends with
		// its request, and the first's outcome is unchanged.
		key = randomToken()
		first = send(key)
		enter()
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		form := url.Values{"form_key": {key}, "csrf": {csrf}}
		req, err := http.NewRequestWithContext(ctx, "POST", a.URL+"/console/test/held", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: cookieAccess, Value: token})
		_, err = noRedirect().Do(req)
		require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		gate <- nil
		resp = recv(first)
		require.Equal(t, "acted for the test", flashOf(t, a, resp))
		resp = recv(send(key))
		require.Equal(t, alreadySent, flashOf(t, a, resp))
		require.Empty(t, entered)
	})
}
