package tiktoktest_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// verify is an independent implementation of TikTok's documented check.
func verify(secret, header string, body []byte) (int64, bool) {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "s":
			sig = v
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(mac.Sum(nil))
	t, err := strconv.ParseInt(ts, 10, 64)
	return t, err == nil && hmac.Equal([]byte(want), []byte(sig))
}

func TestSign(t *testing.T) {
	body := []byte(`{"client_key":"ck","event":"authorization.removed","create_time":1615338610,"user_openid":"u","content":"{\"reason\":1}"}`)
	h := tiktoktest.Sign("secret", 1633174587, body)
	if !strings.HasPrefix(h, "t=1633174587,s=") || len(h) != len("t=1633174587,s=")+64 {
		t.Fatalf("Sign = %q, want t=<ts>,s=<64 hex>", h)
	}
	if _, ok := verify("secret", h, body); !ok {
		t.Error("an independent verifier rejects Sign's output")
	}
	if _, ok := verify("other", h, body); ok {
		t.Error("Sign's output verifies under another secret")
	}
	if _, ok := verify("secret", h, append(body, ' ')); ok {
		t.Error("Sign's output verifies for a changed body")
	}
	if tiktoktest.Sign("secret", 1633174588, body) == h {
		t.Error("the timestamp is not part of the signature")
	}
}

type received struct {
	header http.Header
	body   []byte
}

func receiver(t *testing.T, status int) (*httptest.Server, func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), b})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rs.Close)
	return rs, func() []received { mu.Lock(); defer mu.Unlock(); return append([]received(nil), got...) }
}

func TestSendWebhook(t *testing.T) {
	srv := setup(t)
	rs, got := receiver(t, http.StatusOK)
	sent, err := srv.SendWebhook(context.Background(), rs.URL, tiktoktest.Event{
		ClientKey: webKey, Event: "video.publish.completed", UserOpenID: anaID,
		Content: `{"share_id":"video.6974245311675353080.VDCxrcMJ"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := got()
	if len(r) != 1 || string(r[0].body) != string(sent.Body) {
		t.Fatalf("receiver got %d deliveries", len(r))
	}
	ts, ok := verify(webSecret, r[0].header.Get("Tiktok-Signature"), r[0].body)
	if now := srv.Now().Unix(); !ok || (ts != now && ts != now-1) {
		t.Errorf("signature header %q: valid=%v t=%d, want valid at the server clock", r[0].header.Get(tiktoktest.SignatureHeader), ok, ts)
	}
	var ev tiktoktest.Event
	if err := json.Unmarshal(r[0].body, &ev); err != nil {
		t.Fatal(err)
	}
	var content struct {
		ShareID string `json:"share_id"`
	}
	if err := json.Unmarshal([]byte(ev.Content), &content); err != nil || content.ShareID == "" || ev.CreateTime == 0 || ev.UserOpenID != anaID {
		t.Errorf("delivered event %+v (content %v)", ev, err)
	}
	if strings.Contains(string(r[0].body), webSecret) {
		t.Error("the webhook body contains the client secret")
	}

	bad, _ := receiver(t, http.StatusInternalServerError)
	_, err = srv.SendWebhook(context.Background(), bad.URL, tiktoktest.Event{ClientKey: webKey, Event: "x", Content: "{}"})
	var we *tiktoktest.WebhookError
	if !errors.As(err, &we) || we.StatusCode != http.StatusInternalServerError {
		t.Errorf("delivery to a failing receiver returned %v, want *WebhookError 500", err)
	}
	if _, err := srv.SendWebhook(context.Background(), rs.URL, tiktoktest.Event{ClientKey: "nope"}); !errors.Is(err, tiktoktest.ErrUnknownApp) {
		t.Errorf("SendWebhook for an unknown app returned %v", err)
	}
}

func TestDeauthorizeRevokesThenNotifies(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")
	// The receiver checks that the token is dead when the event arrives.
	var tokenStatus int
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest(http.MethodGet, srv.BaseURL()+tiktoktest.UserInfoPath+"?fields=open_id", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			tokenStatus = resp.StatusCode
			resp.Body.Close()
		}
		b, _ := io.ReadAll(r.Body)
		if _, ok := verify("cs-hook", r.Header.Get(tiktoktest.SignatureHeader), b); !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev tiktoktest.Event
		_ = json.Unmarshal(b, &ev)
		if ev.Event != "authorization.removed" || ev.Content != `{"reason":4}` || ev.UserOpenID != anaID {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer rs.Close()
	if err := srv.AddApp(tiktoktest.App{ClientKey: "ck-hook", ClientSecret: "cs-hook", RedirectURIs: []string{webRedirect}, Scopes: []string{"user.info.basic"}, WebhookURL: rs.URL}); err != nil {
		t.Fatal(err)
	}
	tok, _ = srv.IssueToken("ck-hook", anaID, "user.info.basic")
	if err := srv.Deauthorize(context.Background(), "ck-hook", anaID, 4); err != nil {
		t.Fatalf("Deauthorize returned %v", err)
	}
	if tokenStatus != http.StatusUnauthorized {
		t.Errorf("during delivery the token answered %d, want 401 (already revoked)", tokenStatus)
	}
	if err := srv.Deauthorize(context.Background(), "ck-hook", "nobody", 1); !errors.Is(err, tiktoktest.ErrUnknownUser) {
		t.Errorf("Deauthorize of an unknown user returned %v", err)
	}
}
