package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type recorder struct{ waits []time.Duration }

func (r *recorder) wait(ctx context.Context, d time.Duration) error {
	r.waits = append(r.waits, d)
	return ctx.Err()
}

func server(t *testing.T, statuses []int, header http.Header) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		for k, v := range header {
			w.Header()[k] = v
		}
		if i < len(statuses) {
			w.WriteHeader(statuses[i])
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRetriesAndHonoursRetryAfter(t *testing.T) {
	srv, n := server(t, []int{429, 503}, http.Header{"Retry-After": {"3"}})
	rec := &recorder{}
	r := &Retrier{Client: srv.Client(), Wait: rec.wait}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := r.Do(req, true)
	if err != nil {
		t.Fatalf("Do returned %v, want nil", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || n.Load() != 3 {
		t.Fatalf("Do returned %d after %d requests, want 200 after 3", resp.StatusCode, n.Load())
	}
	for _, w := range rec.waits {
		if w < 3*time.Second {
			t.Errorf("waited %v, want at least Retry-After 3s", w)
		}
	}
}

func TestBoundedAttempts(t *testing.T) {
	srv, n := server(t, []int{500, 500, 500, 500, 500, 500}, nil)
	rec := &recorder{}
	r := &Retrier{Client: srv.Client(), Attempts: 3, Wait: rec.wait}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := r.Do(req, true)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 || n.Load() != 3 {
		t.Fatalf("Do returned %d after %d requests, want 500 after 3", resp.StatusCode, n.Load())
	}
	if len(rec.waits) != 2 {
		t.Fatalf("waited %d times, want 2", len(rec.waits))
	}
	for i, w := range rec.waits {
		full := DefaultBaseDelay << i
		if w < full/2 || w > full {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, w, full/2, full)
		}
	}
}

func TestNonIdempotentRetriedOnlyOn429(t *testing.T) {
	srv, n := server(t, []int{502}, nil)
	r := &Retrier{Client: srv.Client(), Wait: (&recorder{}).wait}
	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("a=b"))
	resp, err := r.Do(req, false)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 || n.Load() != 1 {
		t.Fatalf("Do returned %d after %d requests, want 502 after 1", resp.StatusCode, n.Load())
	}
	srv2, n2 := server(t, []int{429}, nil)
	req, _ = http.NewRequest("POST", srv2.URL, strings.NewReader("a=b"))
	resp, err = (&Retrier{Client: srv2.Client(), Wait: (&recorder{}).wait}).Do(req, false)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || n2.Load() != 2 {
		t.Fatalf("Do returned %d after %d requests, want 200 after 2", resp.StatusCode, n2.Load())
	}
}

func TestRetryAfterBeyondDeadlineReturnsAtOnce(t *testing.T) {
	srv, n := server(t, []int{429}, http.Header{"Retry-After": {"20"}})
	rec := &recorder{}
	r := &Retrier{Client: srv.Client(), Wait: rec.wait}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := r.Do(req, true)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || n.Load() != 1 || len(rec.waits) != 0 {
		t.Fatalf("Do returned %d after %d requests and %d waits, want 429 after 1 and none", resp.StatusCode, n.Load(), len(rec.waits))
	}
	// A Retry-After beyond MaxDelay is not waited for either.
	srv2, n2 := server(t, []int{429}, http.Header{"Retry-After": {"3600"}})
	req, _ = http.NewRequest("GET", srv2.URL, nil)
	resp, err = (&Retrier{Client: srv2.Client(), Wait: rec.wait}).Do(req, true)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n2.Load() != 1 {
		t.Fatalf("sent %d requests, want 1", n2.Load())
	}
}

func TestCanceledContextStops(t *testing.T) {
	srv, n := server(t, []int{503, 503}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r := &Retrier{Client: srv.Client(), Wait: func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }}
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err := r.Do(req, true)
	if !errors.Is(err, context.Canceled) || n.Load() != 1 {
		t.Fatalf("Do returned %v after %d requests, want context.Canceled after 1", err, n.Load())
	}
}

func TestTransportErrorRedacted(t *testing.T) {
	const canary = "act.CANARY-SECRET-TOKEN"
	srv, _ := server(t, nil, nil)
	srv.Close() // connection refused
	r := &Retrier{Attempts: 2, Wait: (&recorder{}).wait}
	u := srv.URL + "/x?access_token=" + url.QueryEscape(canary) + "&client_secret=" + canary + "&fields=a"
	req, _ := http.NewRequest("GET", u, nil)
	_, err := r.Do(req, true)
	if err == nil {
		t.Fatal("Do returned nil, want a transport error")
	}
	if strings.Contains(err.Error(), canary) {
		t.Fatalf("error %q holds the secret", err)
	}
	if !strings.Contains(err.Error(), "fields=a") {
		t.Errorf("error %q lost the harmless parameters", err)
	}
}

func TestRedactURL(t *testing.T) {
	u, _ := url.Parse("https://u:p@h/p?code=1&appsecret_proof=2&x=3")
	got := RedactURL(u)
	for _, bad := range []string{"u:p", "code=1", "proof=2"} {
		if strings.Contains(got, bad) {
			t.Errorf("RedactURL returned %q, holding %q", got, bad)
		}
	}
}

func TestFailsFastWhileRateLimitSpent(t *testing.T) {
	srv, n := server(t, []int{429}, http.Header{"Retry-After": {"3600"}})
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := &Retrier{Client: srv.Client(), Wait: (&recorder{}).wait, Now: func() time.Time { return now }}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := r.Do(req, true)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", srv.URL, nil)
	_, err = r.Do(req, true)
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Hour || n.Load() != 1 {
		t.Fatalf("Do returned %v after %d requests, want RateLimitedError{1h} after 1", err, n.Load())
	}
	now = now.Add(time.Hour)
	req, _ = http.NewRequest("GET", srv.URL, nil)
	resp, err = r.Do(req, true)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Do after the wait returned %v, %v, want 200", resp, err)
	}
	resp.Body.Close()
}

// TestScrubJSONError: a type error of encoding/json loses the value it
// quoted and keeps the field, the JSON kind and the type; other errors
// pass as they are.
func TestScrubJSONError(t *testing.T) {
	var v struct {
		ID uint8 `json:"id"`
	}
	err := json.Unmarshal([]byte(`{"id":88005512}`), &v) // out of range: quoted
	if err == nil || !strings.Contains(err.Error(), "88005512") {
		t.Fatalf("encoding/json returned %v, want a type error quoting the number", err)
	}
	got := ScrubJSONError(err).Error()
	if strings.Contains(got, "88005512") || !strings.Contains(got, "field id") || !strings.Contains(got, "number") {
		t.Errorf("ScrubJSONError returned %q, want the field and the kind without the value", got)
	}
	other := errors.New("json: something else")
	if ScrubJSONError(other) != other {
		t.Errorf("ScrubJSONError changed an error that is not a type error")
	}
}
