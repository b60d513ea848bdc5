package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
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

		// A key left pending by a sending whose process died (recorded
		// longer ago than formKeyStale) is free again: the form acts.
		key = randomToken()
		ctx = tenancy.WithPrincipal(t.Context(), tenancy.Principal{TenantID: str(su, "tenant", "id")})
		require.NoError(t, tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(&formKeyRecord{Owned: tenancy.Owned{TenantID: str(su, "tenant", "id")}, Key: key,
				CreatedAt: time.Now().UTC().Add(-formKeyStale - time.Minute), State: formKeyPending}).Exec(ctx)
			return err
		}))
		second = send(key)
		enter()
		gate <- nil
		resp = recv(second)
		require.Equal(t, "acted for the test", flashOf(t, a, resp))
	})
}

// TestConsolePasswordLengthS17b: the password's length is told in
// characters with the note for non-ASCII ones (bcrypt keeps 72 bytes):
// the label and the refusal say the same, and 72 bytes of two-byte
// letters are taken, 74 refused with the note.
func TestConsolePasswordLengthS17b(t *testing.T) {
	t.Parallel()
	require.Empty(t, passwordProblem(strings.Repeat("é", 36)), "36 two-byte letters are 72 bytes")
	require.Empty(t, passwordProblem(strings.Repeat("é", 5)), "5 two-byte letters are 10 bytes")
	require.Contains(t, passwordProblem(strings.Repeat("x", 9)), "at least 10 characters")
	require.Contains(t, passwordProblem(strings.Repeat("é", 37)), "non-ASCII characters count 2 to 4 each")
	eachDB(t, func(t *testing.T, a *testApp) {
		const csrf = "0123456789abcdef0123456789abcdef0123"
		status, html := consoleGet(t, a, "", csrf, "/console/signup")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, html, "Password (10 to 72 characters; accented and other non-ASCII ones count 2 to 4 each)")
		form := func(pw string) url.Values {
			return url.Values{"tenant_name": {"Lengths"}, "email": {"l@lengths.example"}, "name": {"L"}, "password": {pw}}
		}
		resp, body := consolePost(t, a, "", csrf, "/console/signup", form(strings.Repeat("é", 37)))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Contains(t, body, "too long: at most 72 bytes, which is 72 plain characters")
		require.NotContains(t, body, "72 bytes long")
		resp, body = consolePost(t, a, "", csrf, "/console/signup", form("short"))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Contains(t, body, "too short: at least 10 characters")
		resp, body = consolePost(t, a, "", csrf, "/console/signup", form(strings.Repeat("é", 36)))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	})
}

// TestConsoleRefillsOnlyTheFormSentS17b: a refused form on the contact
// page is shown again with what it sent, and another form there with a
// field of the same name (kind: the activity's and the privacy
// request's) is not refilled with it.
func TestConsoleRefillsOnlyTheFormSentS17b(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Refill", "email": "r@refill.example", "name": "R", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		id := str(c.call("POST", "/v1/contacts", map[string]any{"first_name": "Kim", "email": "kim@refill.example"}, 201), "contact", "id")
		const csrf = "0123456789abcdef0123456789abcdef0123"
		meeting := regexp.MustCompile(`(?s)id="activity_kind">.*?<option selected>meeting</option>`)

		// The activity form refused (no summary) keeps its kind.
		resp, body := consolePost(t, a, c.token, csrf, "/console/contacts/"+id+"/activities", url.Values{"kind": {"meeting"}, "subject": {""}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Regexp(t, meeting, body)

		// The privacy request form refused with the same field name: the
		// activity form is left as it was.
		resp, body = consolePost(t, a, c.token, csrf, "/console/contacts/"+id+"/request", url.Values{"kind": {"meeting"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Contains(t, body, "must be export or erasure")
		require.NotRegexp(t, meeting, body)

		// A refused task keeps its title in the task form alone, and the
		// edit form stays closed.
		resp, body = consolePost(t, a, c.token, csrf, "/console/contacts/"+id+"/activities", url.Values{"kind": {"call"}, "subject": {""}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.NotContains(t, body, `id="edit" open`)
		resp, body = consolePost(t, a, c.token, csrf, "/console/contacts/"+id+"/edit", url.Values{"first_name": {"Kimberly"}, "email": {"not an e-mail"}, "version": {"1"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Contains(t, body, `id="edit" open`)
		require.Contains(t, body, `value="Kimberly"`)
	})
}

// TestConsoleCloseSentTwiceS17b: "Close the organization" sent twice (a
// double click, at once or after the first ended; another tab; a session
// the first sending ended) says the organization was closed — never a
// 403, never "a form you sent was not saved".
func TestConsoleCloseSentTwiceS17b(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		const csrf = "0123456789abcdef0123456789abcdef0123"
		const pw = "long enough password"
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Shut", "email": "s@shut.example", "name": "S", "password": pw}, 201)
		token := str(su, "session", "access_token")
		// A second session of the same person, which the closing ends.
		resp, _ := consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {"s@shut.example"}, "password": {pw}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		var other string
		for _, ck := range resp.Cookies() {
			if ck.Name == cookieAccess {
				other = ck.Value
			}
		}
		require.NotEmpty(t, other)

		// A double click: both sendings at once, one key.
		key := randomToken()
		first, second := send2(a, token, csrf, key)
		for _, s := range []sent{first, second} {
			require.NoError(t, s.err)
			require.Equal(t, http.StatusSeeOther, s.resp.StatusCode)
			require.Equal(t, "/console/", s.resp.Header.Get("Location"))
		}
		flashes := []string{flashOf(t, a, first.resp), flashOf(t, a, second.resp)}
		require.Contains(t, flashes[0]+flashes[1], "Closed. Everything is erased after")
		require.Contains(t, flashes[0]+flashes[1], dupFlash["/console/tenant/close"])

		// Sent again after, with its key: closed once.
		resp, body := consolePost(t, a, token, csrf, "/console/tenant/close", url.Values{"form_key": {key}, "confirm": {"Shut"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, dupFlash["/console/tenant/close"], flashOf(t, a, resp))
		// From another tab (another key): closed already.
		resp, body = consolePost(t, a, token, csrf, "/console/tenant/close", url.Values{"confirm": {"Shut"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "/console/", resp.Header.Get("Location"))
		require.Contains(t, flashOf(t, a, resp), "Already done: the organization is closed. Everything is erased after")
		// From the session the closing ended: to sign in, told it is
		// closed, not that the form was lost.
		resp, body = consolePost(t, a, other, csrf, "/console/tenant/close", url.Values{"confirm": {"Shut"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "/console/login", resp.Header.Get("Location"))
		f := flashOf(t, a, resp)
		require.Contains(t, f, "Already done: the organization is closed.")
		require.Contains(t, f, "Sign in to reopen it.")
		require.NotContains(t, f, "not saved")
		// Another form from that ended session is still "not saved".
		resp, _ = consolePost(t, a, other, csrf, "/console/contacts", url.Values{"first_name": {"Lost"}})
		require.Equal(t, sessionEnded, flashOf(t, a, resp))
		// A forged access cookie names no organization.
		resp, _ = consolePost(t, a, other[:len(other)-2]+"xx", csrf, "/console/tenant/close", url.Values{"confirm": {"Shut"}})
		require.Equal(t, sessionEnded, flashOf(t, a, resp))
	})
}

// send2 posts the close form twice at once with one key.
func send2(a *testApp, token, csrf, key string) (sent, sent) {
	ch := make(chan sent, 2)
	for range 2 {
		go func() {
			ch <- postForm(a, token, csrf, "/console/tenant/close", url.Values{"form_key": {key}, "confirm": {"Shut"}})
		}()
	}
	return <-ch, <-ch
}
