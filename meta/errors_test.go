package meta

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/social"
)

func TestDecodeErrorFamilies(t *testing.T) {
	cases := []struct {
		body string
		is   []error
		not  []error
	}{
		{`{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"Abc"}}`,
			[]error{social.ErrInvalidToken}, []error{ErrAppRemoved, ErrRateLimited, ErrPermission}},
		{`{"error":{"message":"The user has not authorized application 1","type":"OAuthException","code":190,"error_subcode":458}}`,
			[]error{social.ErrInvalidToken, ErrAppRemoved}, []error{ErrNoPageRole}},
		{`{"error":{"message":"x","type":"OAuthException","code":"190","error_subcode":"460"}}`,
			[]error{social.ErrInvalidToken}, nil},
		{`{"error":{"message":"no role","type":"OAuthException","code":190,"error_subcode":492}}`,
			[]error{ErrNoPageRole}, []error{social.ErrInvalidToken}},
		{`{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4,"is_transient":true}}`,
			[]error{ErrRateLimited, ErrTransient}, []error{ErrPermission}},
		{`{"error":{"message":"m","code":17}}`, []error{ErrRateLimited}, nil},
		{`{"error":{"message":"m","code":32}}`, []error{ErrRateLimited}, nil},
		{`{"error":{"message":"m","code":613,"is_transient":"true"}}`, []error{ErrRateLimited, ErrTransient}, nil},
		{`{"error":{"message":"m","code":80001}}`, []error{ErrRateLimited}, nil},
		{`{"error":{"message":"m","code":80002}}`, []error{ErrRateLimited}, nil},
		{`{"error":{"message":"(#10) Application does not have permission","code":10}}`, []error{ErrPermission}, []error{ErrRateLimited}},
		{`{"error":{"message":"(#200) Permissions error","code":200}}`, []error{ErrPermission}, nil},
		{`{"error":{"message":"(#299) x","code":299}}`, []error{ErrPermission}, nil},
		{`{"error":{"message":"(#100) The value must be a valid insights metric","code":100}}`, []error{ErrInvalidParameter}, []error{ErrPermission}},
		{`{"error":{"message":"unknown","code":1}}`, []error{ErrTransient}, nil},
		{`<html>bad gateway</html>`, []error{ErrMalformed}, []error{ErrTransient}},
	}
	for _, tc := range cases {
		e := DecodeError(http.StatusBadRequest, []byte(tc.body))
		if e == nil {
			t.Fatalf("DecodeError(%s) = nil, want an error", tc.body)
		}
		for _, want := range tc.is {
			if !errors.Is(e, want) {
				t.Errorf("DecodeError(%s) = %v, want errors.Is %v", tc.body, e, want)
			}
		}
		for _, no := range tc.not {
			if errors.Is(e, no) {
				t.Errorf("DecodeError(%s) = %v, must not match %v", tc.body, e, no)
			}
		}
	}
	if e := DecodeError(http.StatusOK, []byte(`{"id":"1"}`)); e != nil {
		t.Errorf("DecodeError(success) = %v, want nil", e)
	}
}

func TestDecodeErrorKeepsFields(t *testing.T) {
	e := DecodeError(400, []byte(`{"error":{"message":"m","type":"OAuthException","code":190,"error_subcode":463,"error_user_title":"T","error_user_msg":"U","is_transient":false,"fbtrace_id":"AbCdEf"}}`))
	want := APIError{Message: "m", Type: "OAuthException", Code: 190, Subcode: 463, UserTitle: "T", UserMessage: "U", TraceID: "AbCdEf", StatusCode: 400}
	if !reflect.DeepEqual(*e, want) {
		t.Errorf("DecodeError returned %+v, want %+v", *e, want)
	}
}

func TestPermissionErrorAsScopeError(t *testing.T) {
	e := DecodeError(403, []byte(`{"error":{"message":"(#200) x","code":200}}`))
	e.need = social.NewScopes("pages_manage_posts", "pages_read_engagement")
	var se *social.ScopeError
	if !errors.As(error(e), &se) {
		t.Fatalf("errors.As(%v, *social.ScopeError) = false, want true", e)
	}
	if se.Missing.Join(",") != "pages_manage_posts,pages_read_engagement" {
		t.Errorf("ScopeError.Missing = %v", se.Missing)
	}
	if !errors.Is(e, social.ErrScope) {
		// the typed error is reachable through As only: Is names ErrPermission
		if !errors.Is(e, ErrPermission) {
			t.Errorf("errors.Is(%v, ErrPermission) = false", e)
		}
	}
	rl := &RateLimitError{APIError: DecodeError(400, []byte(`{"error":{"code":4,"message":"m"}}`))}
	var ae *APIError
	if !errors.As(error(rl), &ae) || ae.Code != 4 || !errors.Is(rl, ErrRateLimited) {
		t.Errorf("RateLimitError does not unwrap to its APIError: %v", rl)
	}
}

func TestParseUsage(t *testing.T) {
	h := http.Header{}
	h.Set("X-App-Usage", `{"call_count":28,"total_time":25,"total_cputime":"25"}`)
	h.Set("X-Page-Usage", `{"call_count":5,"total_time":1,"total_cputime":2}`)
	// Meta's own sample repeats a key: both entries are kept.
	h.Set("X-Business-Use-Case-Usage", `{"1001":[{"type":"pages","call_count":100,"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":7}],"1001":[{"type":"messenger","call_count":2,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}],"2002":[{"type":"instagram","call_count":"9","total_cputime":1,"total_time":1}]}`)
	u := parseUsage(h)
	if u.App == nil || *u.App != (UsageFigures{CallCount: 28, TotalTime: 25, TotalCPUTime: 25}) {
		t.Errorf("App usage = %+v", u.App)
	}
	if u.Page == nil || u.Page.CallCount != 5 {
		t.Errorf("Page usage = %+v", u.Page)
	}
	if len(u.Business["1001"]) != 2 || u.Business["2002"][0].CallCount != 9 {
		t.Errorf("Business usage = %+v", u.Business)
	}
	if got := u.RegainAccess(); got != 7*time.Minute {
		t.Errorf("RegainAccess() = %v, want 7m", got)
	}
	if got := u.Max(); got != 100 {
		t.Errorf("Max() = %d, want 100", got)
	}
	h.Set("X-App-Usage", `not json`)
	h.Del("X-Business-Use-Case-Usage")
	if u := parseUsage(h); u.App != nil || u.Business != nil {
		t.Errorf("parseUsage(garbage) = %+v, want the header left out", u)
	}
}

func TestLenientDecoding(t *testing.T) {
	var v struct {
		A, B ID
		S, M Timestamp
		R, P Timestamp
		Z    Timestamp
		T, F Bool
		I, J Int
	}
	in := `{"A":"123","B":4567890123456789,"S":1700000000,"M":"1700000000123","R":"2020-03-10T07:00:00+0000","P":"2026-11-23T09:00:00Z","Z":null,"T":"true","F":false,"I":"42","J":7}`
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != "123" || v.B != "4567890123456789" {
		t.Errorf("ids = %q %q", v.A, v.B)
	}
	if !v.S.Equal(time.Unix(1700000000, 0)) || !v.M.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("unix times = %v %v", v.S, v.M)
	}
	if !v.R.Equal(time.Date(2020, 3, 10, 7, 0, 0, 0, time.UTC)) || !v.P.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("string times = %v %v", v.R, v.P)
	}
	if !v.Z.IsZero() || !bool(v.T) || bool(v.F) || v.I != 42 || v.J != 7 {
		t.Errorf("decoded %+v", v)
	}
	for _, bad := range []string{`{"A":{}}`, `{"S":"yesterday"}`, `{"T":"maybe"}`, `{"I":"x"}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want an error", bad)
		}
	}
}

func TestAppSecretProof(t *testing.T) {
	// Computed independently with Python's hmac module.
	if got, want := AppSecretProof(secret("s3cret"), "tok", 1700000000), "10a8f3882b2485f2ddc85a671caa65c9d8397817fc05ec981223bee72c0d0939"; got != want {
		t.Errorf("AppSecretProof(time-stamped) = %q, want %q", got, want)
	}
	if got, want := AppSecretProof(secret("s3cret"), "tok", 0), "2ff2659e371a012c6ab9b88a4af2122efc22dd1c5dda6dfd9e2ec9e6f7415791"; got != want {
		t.Errorf("AppSecretProof(legacy) = %q, want %q", got, want)
	}
}

func secret(s string) vaultSecret { return newSecret(s) }

func TestFailFastIsNotMalformed(t *testing.T) {
	rl := &RateLimitError{APIError: &APIError{Message: "rate limit spent, not calling"}, RetryAfter: time.Minute}
	if errors.Is(rl, ErrMalformed) || !errors.Is(rl, ErrRateLimited) {
		t.Errorf("fail-fast RateLimitError matches ErrMalformed or not ErrRateLimited: %v", rl)
	}
}
