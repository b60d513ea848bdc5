package metatest_test

import (
	"net/http"
	"testing"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestFaultActed: a fault with Acted carries the request out, then
// answers with the error — a message the Send API delivered and answered
// with code 1200 — while a fault without it fails before anything is done.
func TestFaultActed(t *testing.T) {
	srv := fixture(t)
	page := pageToken(t, srv, userID, pageID)
	path := "/" + pageID + "/messages"

	if err := srv.InjectFault(metatest.Fault{Method: "POST", Path: path, Code: 2, Count: 1}); err != nil {
		t.Fatal(err)
	}
	r := sendText(t, srv, page, pageID, psid, "RESPONSE", "", "before acting")
	wantError(t, r, 2, 0)
	if n := len(srv.SentMessages()); n != 0 {
		t.Fatalf("a fault without Acted delivered %d messages, want 0", n)
	}

	if err := srv.InjectFault(metatest.Fault{Method: "POST", Path: path, Code: 1200, Count: 1, Acted: true}); err != nil {
		t.Fatal(err)
	}
	r = sendText(t, srv, page, pageID, psid, "RESPONSE", "", "after acting")
	wantError(t, r, 1200, 0)
	if r.status != http.StatusInternalServerError {
		t.Errorf("code 1200 answered HTTP %d, want 500", r.status)
	}
	sent := srv.SentMessages()
	if len(sent) != 1 || sent[0].Text != "after acting" {
		t.Fatalf("SentMessages() = %+v, want the one message sent before the error", sent)
	}
	if n := srv.PendingFaults(); n != 0 {
		t.Errorf("PendingFaults() = %d, want 0", n)
	}
	wantOK(t, sendText(t, srv, page, pageID, psid, "RESPONSE", "", "answered"))
}
