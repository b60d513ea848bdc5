package metatest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

func TestAppSecretProof(t *testing.T) {
	srv := fixture(t, metatest.WithApp(metatest.App{ID: "1004", Secret: "proof-secret", RequireAppSecretProof: true}))
	tok, err := srv.UserToken("1004", userID, metatest.LongLived)
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, srv, "/me", tok)
	wantError(t, r, 100, 0)
	if r.errMessage() != "API calls from the server require an appsecret_proof argument" || r.body["error"].(map[string]any)["type"] != "GraphMethodException" {
		t.Errorf("missing proof: %s", r.raw)
	}
	plain := metatest.AppSecretProof("proof-secret", tok, 0)
	wantOK(t, get(t, srv, "/me", tok, "appsecret_proof", plain))

	r = get(t, srv, "/me", tok, "appsecret_proof", metatest.AppSecretProof("wrong-secret", tok, 0))
	wantError(t, r, 100, 0)
	if r.errMessage() != "Invalid appsecret_proof provided in the API argument" {
		t.Errorf("wrong proof: %s", r.raw)
	}
	if strings.Contains(r.raw, tok) || strings.Contains(r.raw, "proof-secret") {
		t.Errorf("error leaks a secret: %s", r.raw)
	}

	now := srv.Now().Unix()
	stamped := metatest.AppSecretProof("proof-secret", tok, now)
	wantOK(t, get(t, srv, "/me", tok, "appsecret_proof", stamped, "appsecret_time", strconv.FormatInt(now, 10)))
	// The stamped proof does not verify without its time, nor after 5 minutes.
	wantError(t, get(t, srv, "/me", tok, "appsecret_proof", stamped), 100, 0)
	srv.Advance(5*time.Minute + time.Second)
	wantError(t, get(t, srv, "/me", tok, "appsecret_proof", stamped, "appsecret_time", strconv.FormatInt(now, 10)), 100, 0)

	// Apps that do not require proofs still check one that is sent.
	other := userToken(t, srv, userID, metatest.LongLived)
	wantOK(t, get(t, srv, "/me", other))
	wantError(t, get(t, srv, "/me", other, "appsecret_proof", plain), 100, 0)
	// App tokens need no proof.
	wantOK(t, get(t, srv, "/"+pageID, "1004|proof-secret"))
}

func TestErrorEnvelope(t *testing.T) {
	srv := fixture(t)
	r := get(t, srv, "/424242", userToken(t, srv, userID, metatest.LongLived))
	if r.status != http.StatusBadRequest {
		t.Fatalf("status = %d", r.status)
	}
	var env struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.raw), &env); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"message", "type", "code", "error_subcode", "fbtrace_id", "is_transient"} {
		if _, ok := env.Error[k]; !ok {
			t.Errorf("envelope lacks %q: %s", k, r.raw)
		}
	}
	wantError(t, r, 100, 33)
	if r.header.Get("X-Fb-Trace-Id") == "" || r.header.Get("Content-Type") != "application/json; charset=UTF-8" {
		t.Errorf("headers = %v", r.header)
	}
	wantError(t, get(t, srv, "/"+pageID+"/nonsense", userToken(t, srv, userID, metatest.LongLived)), 100, 0)
}

func usageHeader(t *testing.T, h http.Header, name string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(h.Get(name)), &out); err != nil {
		t.Fatalf("%s = %q: %v", name, h.Get(name), err)
	}
	return out
}

func TestUsageHeaders(t *testing.T) {
	srv := fixture(t,
		metatest.WithRateLimit(metatest.RateApp, metatest.RateLimit{Calls: 10, Window: time.Hour}),
		metatest.WithRateLimit(metatest.RatePage, metatest.RateLimit{Calls: 4, Window: time.Hour}),
		metatest.WithRateLimit(metatest.RateInstagram, metatest.RateLimit{Calls: 5, Window: time.Hour}),
	)
	user := userToken(t, srv, userID, metatest.LongLived)
	page := pageToken(t, srv, userID, pageID)

	r := get(t, srv, "/me", user)
	app := usageHeader(t, r.header, "X-App-Usage")
	if app["call_count"] != float64(10) || app["total_time"] == nil || app["total_cputime"] == nil {
		t.Fatalf("X-App-Usage = %v", app)
	}
	if r.header.Get("X-Business-Use-Case-Usage") != "" || r.header.Get("X-Page-Usage") != "" {
		t.Errorf("a user call on /me carries BUC headers: %v", r.header)
	}

	r = get(t, srv, "/"+pageID, page)
	if r.header.Get("X-App-Usage") != "" {
		t.Errorf("Page token call carries X-App-Usage")
	}
	if pu := usageHeader(t, r.header, "X-Page-Usage"); pu["call_count"] != float64(25) {
		t.Errorf("X-Page-Usage = %v, want 25%%", pu)
	}
	buc := usageHeader(t, r.header, "X-Business-Use-Case-Usage")
	entries := buc[pageID].([]any)
	e := entries[0].(map[string]any)
	if e["type"] != "pages" || e["call_count"] != float64(25) || e["estimated_time_to_regain_access"] != float64(0) {
		t.Fatalf("BUC = %v", buc)
	}

	r = get(t, srv, "/"+igID, user, "fields", "username")
	ig := usageHeader(t, r.header, "X-Business-Use-Case-Usage")[igID].([]any)[0].(map[string]any)
	if ig["type"] != "instagram" || ig["call_count"] != float64(20) {
		t.Fatalf("IG BUC = %v", ig)
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("app code 4", func(t *testing.T) {
		srv := fixture(t, metatest.WithRateLimit(metatest.RateApp, metatest.RateLimit{Calls: 2, Window: time.Hour}))
		tok := userToken(t, srv, userID, metatest.LongLived)
		wantOK(t, get(t, srv, "/me", tok))
		wantOK(t, get(t, srv, "/me", tok))
		r := get(t, srv, "/me", tok)
		wantError(t, r, 4, 0)
		if r.body["error"].(map[string]any)["is_transient"] != true {
			t.Errorf("rate limit is not transient: %s", r.raw)
		}
		if usageHeader(t, r.header, "X-App-Usage")["call_count"] != float64(150) {
			t.Errorf("X-App-Usage = %s", r.header.Get("X-App-Usage"))
		}
		srv.Advance(time.Hour)
		wantOK(t, get(t, srv, "/me", tok))
	})
	t.Run("user code 17", func(t *testing.T) {
		srv := fixture(t, metatest.WithRateLimit(metatest.RateUser, metatest.RateLimit{Calls: 1, Window: time.Minute}))
		tok := userToken(t, srv, userID, metatest.LongLived)
		wantOK(t, get(t, srv, "/me", tok))
		wantError(t, get(t, srv, "/me", tok), 17, 0)
		wantOK(t, get(t, srv, "/me", userToken(t, srv, user2ID, metatest.LongLived)))
	})
	t.Run("page codes 32 and 80001", func(t *testing.T) {
		srv := fixture(t, metatest.WithRateLimit(metatest.RatePage, metatest.RateLimit{Calls: 1, Window: time.Hour}))
		user := userToken(t, srv, userID, metatest.LongLived)
		wantOK(t, get(t, srv, "/"+pageID, user))
		wantError(t, get(t, srv, "/"+pageID, user), 32, 0)
		r := get(t, srv, "/"+pageID, pageToken(t, srv, userID, pageID))
		wantError(t, r, 80001, 0)
		e := usageHeader(t, r.header, "X-Business-Use-Case-Usage")[pageID].([]any)[0].(map[string]any)
		if e["estimated_time_to_regain_access"] != float64(60) {
			t.Errorf("regain = %v, want 60 minutes", e["estimated_time_to_regain_access"])
		}
		wantOK(t, get(t, srv, "/"+page2ID, user))
	})
	t.Run("send API code 613", func(t *testing.T) {
		srv := fixture(t, metatest.WithRateLimit(metatest.RateMessenger, metatest.RateLimit{Calls: 1, Window: time.Second}))
		page := pageToken(t, srv, userID, pageID)
		wantOK(t, sendText(t, srv, page, pageID, psid, "RESPONSE", "", "one"))
		r := sendText(t, srv, page, pageID, psid, "RESPONSE", "", "two")
		wantError(t, r, 613, 0)
		if b := usageHeader(t, r.header, "X-Business-Use-Case-Usage")[pageID].([]any); b[len(b)-1].(map[string]any)["type"] != "messenger" {
			t.Errorf("BUC = %v", b)
		}
		srv.Advance(time.Second)
		wantOK(t, sendText(t, srv, page, pageID, psid, "RESPONSE", "", "three"))
	})
}

func TestInjectFault(t *testing.T) {
	srv := fixture(t)
	tok := userToken(t, srv, userID, metatest.LongLived)
	if err := srv.InjectFault(metatest.Fault{Method: http.MethodGet, Path: "/me/accounts", Count: 2, Code: 2}); err != nil {
		t.Fatal(err)
	}
	if err := srv.InjectFault(metatest.Fault{Path: "/*/feed", Count: 1, Status: 403, Code: 368, Subcode: 1390008, Message: "(#368) blocked"}); err != nil {
		t.Fatal(err)
	}
	r := get(t, srv, "/me/accounts", tok)
	if r.status != http.StatusInternalServerError {
		t.Errorf("code 2 status = %d, want 500", r.status)
	}
	wantError(t, r, 2, 0)
	wantError(t, get(t, srv, "/me/accounts", tok), 2, 0)
	if srv.PendingFaults() != 1 {
		t.Errorf("PendingFaults = %d, want 1", srv.PendingFaults())
	}
	wantOK(t, get(t, srv, "/me/accounts", tok))
	r = post(t, srv, "/"+pageID+"/feed", pageToken(t, srv, userID, pageID), "message", "x")
	wantError(t, r, 368, 1390008)
	if r.status != http.StatusForbidden || r.errMessage() != "(#368) blocked" {
		t.Errorf("custom fault = %d %s", r.status, r.raw)
	}
	if len(srv.Posts(pageID)) != 0 {
		t.Error("a failed request published a post")
	}
	for _, bad := range []metatest.Fault{
		{Path: "/me", Code: 1},
		{Path: "/me", Count: 1},
		{Path: "me", Count: 1, Code: 1},
		{Path: "/[", Count: 1, Code: 1},
		{Path: "/me", Count: 1, Code: 1, Status: 200},
	} {
		if err := srv.InjectFault(bad); !errors.Is(err, metatest.ErrInvalid) {
			t.Errorf("InjectFault(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRequestLog(t *testing.T) {
	srv := fixture(t)
	if got := srv.Requests(); len(got) != 0 {
		t.Fatalf("fresh server logged %d requests", len(got))
	}
	tok := userToken(t, srv, userID, metatest.LongLived)
	get(t, srv, "/me", tok, "fields", "id", "appsecret_proof", metatest.AppSecretProof(appSecret, tok, 0))
	get(t, srv, "/oauth/access_token", "", "client_id", appID, "client_secret", appSecret, "code", "AQsecretcode", "redirect_uri", redirect)
	page := pageToken(t, srv, userID, pageID)
	sendText(t, srv, page, pageID, psid, "RESPONSE", "", "hello")
	req, _ := http.NewRequest(http.MethodGet, srv.GraphURL()+"/"+srv.Version()+"/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	send(t, req)

	log := srv.Requests()
	if len(log) != 4 {
		t.Fatalf("logged %d requests, want 4", len(log))
	}
	me := log[0]
	if me.Method != "GET" || me.Path != "/me" || me.Version != srv.Version() || me.Query.Get("fields") != "id" ||
		me.Query.Get("access_token") != metatest.Redacted || me.Query.Get("appsecret_proof") != metatest.Redacted || !me.Time.Equal(t0) {
		t.Errorf("log[0] = %+v", me)
	}
	if ex := log[1]; ex.Query.Get("client_secret") != metatest.Redacted || ex.Query.Get("code") != metatest.Redacted || ex.Query.Get("client_id") != appID {
		t.Errorf("log[1] = %+v", ex)
	}
	if msg := log[2]; !strings.Contains(string(msg.Body), `"messaging_type":"RESPONSE"`) || msg.Form.Get("recipient") == "" {
		t.Errorf("log[2] = %+v", msg)
	}
	if h := log[3].Header.Get("Authorization"); h != "Bearer "+metatest.Redacted {
		t.Errorf("Authorization logged as %q", h)
	}
	dump, _ := json.Marshal(log)
	for _, secret := range []string{tok, page, appSecret, "AQsecretcode"} {
		if strings.Contains(string(dump), secret) {
			t.Errorf("request log contains a secret")
		}
	}
	srv.ClearRequests()
	if len(srv.Requests()) != 0 {
		t.Error("ClearRequests left entries")
	}
}

func TestVersions(t *testing.T) {
	srv := fixture(t, metatest.WithVersion("v25.0"))
	tok := userToken(t, srv, userID, metatest.LongLived)
	wantOK(t, get(t, srv, "/v25.0/me", tok))
	r := get(t, srv, "/v24.0/me", tok) // older: answered as v25.0
	wantOK(t, r)
	if r.header.Get("Facebook-Api-Version") != "v25.0" {
		t.Errorf("Facebook-Api-Version = %q", r.header.Get("Facebook-Api-Version"))
	}
	wantOK(t, get(t, srv, "//me", tok)) // unversioned
	r = get(t, srv, "/v26.0/me", tok)   // not released
	wantError(t, r, 2500, 0)
	if !strings.Contains(r.errMessage(), "Unknown path components: /v26.0/me") {
		t.Errorf("message = %q", r.errMessage())
	}

	strict := fixture(t, metatest.WithStrictVersion())
	stok := userToken(t, strict, userID, metatest.LongLived)
	wantOK(t, get(t, strict, "/me", stok))
	wantError(t, get(t, strict, "/v24.0/me", stok), 2500, 0)
	wantError(t, get(t, strict, "//me", stok), 2500, 0)
	if _, err := strict.Consent("http://x/v1.0/dialog/oauth?client_id=1001", metatest.Consent{UserID: userID}); !errors.Is(err, metatest.ErrInvalid) {
		t.Errorf("Consent under another version: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, opt := range map[string]metatest.Option{
		"version":         metatest.WithVersion("25"),
		"clock":           metatest.WithClock(nil),
		"lifetimes":       metatest.WithTokenLifetimes(time.Hour, time.Minute),
		"code lifetime":   metatest.WithCodeLifetime(0),
		"processing":      metatest.WithContainerProcessing(-time.Second, 0),
		"publish limit":   metatest.WithPublishingLimit(0),
		"rate scope":      metatest.WithRateLimit(metatest.RateScope(42), metatest.RateLimit{Calls: 1, Window: time.Second}),
		"rate budget":     metatest.WithRateLimit(metatest.RateApp, metatest.RateLimit{}),
		"permission":      metatest.WithPermissions("Bad Name"),
		"http client":     metatest.WithHTTPClient(nil),
		"app secret":      metatest.WithApp(metatest.App{ID: "1"}),
		"user perm":       metatest.WithUser(metatest.User{ID: "1", Granted: []string{"publish_actions"}}),
		"page task":       metatest.WithPage(metatest.Page{ID: "1", Tasks: map[string][]string{}}),
		"ig without page": metatest.WithInstagramAccount(metatest.InstagramAccount{ID: "1", PageID: "9"}),
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := metatest.New(opt)
			if name == "page task" {
				// An empty task map is fine; an unknown task is not.
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				srv.Close()
				opt = metatest.WithPage(metatest.Page{ID: "1", Tasks: map[string][]string{"x": {"ADMIN"}}})
				srv, err = metatest.New(opt)
			}
			if err == nil {
				srv.Close()
				t.Fatal("New accepted an invalid option")
			}
			if !errors.Is(err, metatest.ErrInvalid) && !errors.Is(err, metatest.ErrNotFound) {
				t.Fatalf("New returned %v", err)
			}
		})
	}
	srv := fixture(t)
	if err := srv.AddApp(metatest.App{ID: appID, Secret: "x"}); !errors.Is(err, metatest.ErrDuplicate) {
		t.Errorf("duplicate app: %v", err)
	}
	if err := srv.AddPage(metatest.Page{ID: "3100", Tasks: map[string][]string{"nobody": {metatest.TaskManage}}}); !errors.Is(err, metatest.ErrNotFound) {
		t.Errorf("page with unknown user: %v", err)
	}
	if _, err := srv.UserToken(appID, userID, metatest.Lifetime(9)); !errors.Is(err, metatest.ErrInvalid) {
		t.Errorf("UserToken with a bad lifetime: %v", err)
	}
	if _, err := srv.PageToken(appID, user2ID, page2ID, metatest.LongLived); !errors.Is(err, metatest.ErrInvalid) {
		t.Errorf("PageToken without a role: %v", err)
	}
}

func TestLoggerRedacts(t *testing.T) {
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := fixture(t, metatest.WithLogger(logger))
	tok := userToken(t, srv, userID, metatest.LongLived)
	wantOK(t, get(t, srv, "/me", tok, "fields", "name"))
	out := buf.String()
	if !strings.Contains(out, "path=/"+srv.Version()+"/me") || strings.Contains(out, tok) || !strings.Contains(out, metatest.Redacted) {
		t.Fatalf("log output = %q", out)
	}
}

// fatalTB records Fatal instead of stopping the test.
type fatalTB struct {
	testing.TB
	fatal    string
	cleanups []func()
}

func (f *fatalTB) Helper()           {}
func (f *fatalTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }
func (f *fatalTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func TestStartFailsTheTestOnBadOptions(t *testing.T) {
	tb := &fatalTB{TB: t}
	metatest.Start(tb, metatest.WithVersion("latest"))
	if !strings.Contains(tb.fatal, "WithVersion") {
		t.Fatalf("Start did not fail the test: %q", tb.fatal)
	}
	ok := &fatalTB{TB: t}
	srv := metatest.Start(ok)
	if ok.fatal != "" || len(ok.cleanups) != 1 {
		t.Fatalf("Start: fatal %q, %d cleanups", ok.fatal, len(ok.cleanups))
	}
	ok.cleanups[0]()
	if _, err := http.Get(srv.GraphURL()); err == nil {
		t.Error("the server still answers after its cleanup ran")
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := fixture(t, metatest.WithContainerProcessing(0, 0))
	user := userToken(t, srv, userID, metatest.LongLived)
	page := pageToken(t, srv, userID, pageID)
	base := srv.GraphURL() + "/" + srv.Version()
	// call runs in goroutines, so it reports errors instead of failing t.
	call := func(method, path string, v url.Values) (map[string]any, error) {
		var resp *http.Response
		var err error
		if method == http.MethodGet {
			resp, err = http.Get(base + path + "?" + v.Encode())
		} else {
			resp, err = http.PostForm(base+path, v)
		}
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s %s: status %d: %v", method, path, resp.StatusCode, out)
		}
		return out, nil
	}
	errs := make(chan error, 8*5*4)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				_, err := call(http.MethodGet, "/me/accounts", vals(user))
				errs <- err
				_, err = call(http.MethodPost, "/"+pageID+"/feed", vals(page, "message", fmt.Sprintf("post %d-%d", i, j)))
				errs <- err
				c, err := call(http.MethodPost, "/"+igID+"/media", vals(user, "image_url", "https://cdn.example/c.jpg"))
				errs <- err
				if err == nil {
					_, err = call(http.MethodPost, "/"+igID+"/media_publish", vals(user, "creation_id", c["id"].(string)))
				}
				errs <- err
				srv.Advance(time.Millisecond)
				_ = srv.Requests()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(srv.Posts(pageID)); got != 40 {
		t.Errorf("published %d posts, want 40", got)
	}
	if got := len(srv.Requests()); got != 8*5*4 {
		t.Errorf("logged %d requests, want %d", got, 8*5*4)
	}
}
