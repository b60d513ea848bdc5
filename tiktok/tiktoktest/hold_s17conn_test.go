package tiktoktest_test

import (
	"net/http"
	"testing"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestFaultHoldS17: a Processed, Pass fault with a Hold rotates the
// refresh token first (TikTok's single-use rotation: the old one stops
// working at once), holds the answer until Hold returns, then answers
// normally; Authorized follows the grant until its revoke.
func TestFaultHoldS17(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")
	if !srv.Authorized(webKey, anaID) {
		t.Fatalf("Authorized returned false for a fresh grant, want true")
	}
	held, release := make(chan struct{}), make(chan struct{})
	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath, Processed: true, Pass: true,
		Hold: func() { close(held); <-release }})
	type answer struct {
		status int
		body   map[string]any
	}
	got := make(chan answer, 1)
	go func() {
		s, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
		got <- answer{s, body}
	}()
	<-held
	// Rotated already, while the answer is held: the old token is spent.
	s, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	wantOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
	close(release)
	a := <-got
	if a.status != http.StatusOK || a.body["refresh_token"] == nil || a.body["refresh_token"] == tok.RefreshToken {
		t.Fatalf("held refresh returned %d with a new refresh token %v, want 200 and true", a.status, a.body["refresh_token"] != nil)
	}
	srv.Revoke(webKey, anaID)
	if srv.Authorized(webKey, anaID) {
		t.Errorf("Authorized returned true after the revoke, want false")
	}
}
