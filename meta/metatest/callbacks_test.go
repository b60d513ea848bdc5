package metatest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// parseSignedRequest is how a callback should read signed_request.
func parseSignedRequest(sr, secret string) (map[string]any, error) {
	sig, payload, found := strings.Cut(sr, ".")
	if !found {
		return nil, errors.New("no dot")
	}
	got, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(sig, "="))
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(payload))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return nil, errors.New("bad signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if out["algorithm"] != "HMAC-SHA256" {
		return nil, fmt.Errorf("algorithm %v", out["algorithm"])
	}
	return out, nil
}

func TestSignedRequest(t *testing.T) {
	srv := fixture(t)
	sr, err := srv.SignedRequest(appID, userID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sr, "=") {
		t.Errorf("signed_request has padding: %s", sr)
	}
	p, err := parseSignedRequest(sr, appSecret)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if p["user_id"] != userID || p["issued_at"] != float64(t0.Unix()) || p["expires"] != float64(t0.Unix()+3600) {
		t.Fatalf("payload = %v", p)
	}
	if _, err := parseSignedRequest(sr, "other"); err == nil {
		t.Error("signature verified with the wrong secret")
	}
	forged, _ := metatest.EncodeSignedRequest(appSecret, map[string]any{"algorithm": "HS1", "user_id": userID})
	if _, err := parseSignedRequest(forged, appSecret); err == nil {
		t.Error("accepted another algorithm")
	}
	if _, err := srv.SignedRequest("404", userID); !errors.Is(err, metatest.ErrNotFound) {
		t.Errorf("SignedRequest for an unknown app: %v", err)
	}
}

// callbackServer records signed_request posts and answers with h.
func callbackServer(t *testing.T, h func(w http.ResponseWriter, payload map[string]any)) (string, *[]map[string]any) {
	var got []map[string]any
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "want a form POST", http.StatusBadRequest)
			return
		}
		p, err := parseSignedRequest(r.PostFormValue("signed_request"), appSecret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, p)
		h(w, p)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, &got
}

func TestDeauthorizeCallback(t *testing.T) {
	srv := fixture(t)
	tok := userToken(t, srv, userID, metatest.LongLived)
	cb, got := callbackServer(t, func(w http.ResponseWriter, _ map[string]any) {})
	if err := srv.Deauthorize(context.Background(), appID, userID, cb); err != nil {
		t.Fatalf("Deauthorize returned %v", err)
	}
	if len(*got) != 1 || (*got)[0]["user_id"] != userID {
		t.Fatalf("callback got %v", *got)
	}
	wantError(t, get(t, srv, "/me", tok), 190, 458)

	failing, _ := callbackServer(t, func(w http.ResponseWriter, _ map[string]any) { w.WriteHeader(http.StatusInternalServerError) })
	var cbErr *metatest.CallbackError
	if err := srv.Deauthorize(context.Background(), appID, user2ID, failing); !errors.As(err, &cbErr) || cbErr.StatusCode != 500 {
		t.Fatalf("Deauthorize to a failing endpoint returned %v", err)
	}
	if err := srv.Deauthorize(context.Background(), appID, userID, ""); err != nil {
		t.Errorf("Deauthorize without a callback: %v", err)
	}
}

func TestDataDeletionCallback(t *testing.T) {
	srv := fixture(t)
	good, got := callbackServer(t, func(w http.ResponseWriter, p map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"url": "https://crm.example/deletion?id=abc123", "confirmation_code": "abc123",
		})
	})
	dc, err := srv.RequestDataDeletion(context.Background(), appID, userID, good)
	if err != nil {
		t.Fatalf("RequestDataDeletion returned %v", err)
	}
	if dc.ConfirmationCode != "abc123" || dc.URL != "https://crm.example/deletion?id=abc123" || len(*got) != 1 {
		t.Fatalf("confirmation = %+v, calls %d", dc, len(*got))
	}

	for name, answer := range map[string]func(http.ResponseWriter){
		"not json":          func(w http.ResponseWriter) { fmt.Fprint(w, "ok") },
		"relative url":      func(w http.ResponseWriter) { fmt.Fprint(w, `{"url":"/status","confirmation_code":"a1"}`) },
		"code with symbols": func(w http.ResponseWriter) { fmt.Fprint(w, `{"url":"https://x.example/s","confirmation_code":"a-1"}`) },
		"missing code":      func(w http.ResponseWriter) { fmt.Fprint(w, `{"url":"https://x.example/s"}`) },
		"status not 200":    func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) },
	} {
		t.Run(name, func(t *testing.T) {
			cb, _ := callbackServer(t, func(w http.ResponseWriter, _ map[string]any) { answer(w) })
			_, err := srv.RequestDataDeletion(context.Background(), appID, userID, cb)
			var cbErr *metatest.CallbackError
			if !errors.As(err, &cbErr) || cbErr.Kind != "data deletion" {
				t.Fatalf("RequestDataDeletion returned %v, want a *CallbackError", err)
			}
		})
	}
}
