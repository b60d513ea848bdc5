package meta

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzUsageHeaders feeds arbitrary rate-limit headers to the lenient
// parser: it must never panic, and what it keeps must be sane.
func FuzzUsageHeaders(f *testing.F) {
	f.Add(`{"call_count":28,"total_time":25,"total_cputime":25}`,
		`{"1001":[{"type":"pages","call_count":100,"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":7}],"1001":[{"type":"messenger"}]}`)
	f.Add(`{"call_count":"9"}`, `{"x":[]}`)
	f.Add(`[]`, `{"a":{}}`)
	f.Add(``, `{"a":[{"call_count":1e400}]}`)
	f.Fuzz(func(t *testing.T, app, buc string) {
		h := http.Header{}
		h.Set("X-App-Usage", app)
		h.Set("X-Page-Usage", app)
		h.Set("X-Business-Use-Case-Usage", buc)
		u := parseUsage(h)
		_ = u.Max()
		if d := u.RegainAccess(); d < 0 {
			t.Fatalf("RegainAccess() = %v, want >= 0", d)
		}
		c := u.clone()
		if len(c.Business) != len(u.Business) {
			t.Fatalf("clone lost entries: %v vs %v", c, u)
		}
	})
}

// FuzzLenientJSON feeds arbitrary JSON values to the lenient ID, Int,
// Bool and Timestamp decoders and to DecodeError: errors are fine,
// panics are not.
func FuzzLenientJSON(f *testing.F) {
	for _, s := range []string{`"123"`, `4567890123456789`, `"2020-03-10T07:00:00+0000"`, `1700000000123`,
		`"true"`, `null`, `{}`, `"x"`, `1e999`, `-1`, `"a\"b"`, `"\u00e9t\u00e9"`, `"\u0041"`, `"été"`, `""`,
		`{"error":{"message":"m","code":"190","error_subcode":463,"is_transient":"true"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var id ID
		var str string
		if json.Unmarshal(b, &str) == nil {
			// A string decodes to the same value, escapes or none.
			if err := json.Unmarshal(b, &id); err != nil || string(id) != str {
				t.Fatalf("ID of %q = %q, %v; want %q", b, id, err, str)
			}
		} else {
			_ = json.Unmarshal(b, &id)
		}
		var n Int
		_ = json.Unmarshal(b, &n)
		var v Bool
		_ = json.Unmarshal(b, &v)
		var ts Timestamp
		if json.Unmarshal(b, &ts) == nil && !ts.IsZero() && ts.Location().String() != "UTC" {
			t.Fatalf("Timestamp %v not in UTC", ts)
		}
		if e := DecodeError(400, b); e == nil {
			t.Fatal("DecodeError(400, …) = nil")
		} else {
			_ = e.Error()
		}
	})
}
