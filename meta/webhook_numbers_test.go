package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/internal/jsonint"
)

// TestWebhookIntegralNumbers: a timestamp is any JSON number whose value
// is an integer (1e3, 1E3, 1000.0 and -0 are integers); a fraction or an
// integer beyond int64 is refused with ErrPayload, through the scanner
// and through encoding/json alike, and the refusal names no value.
func TestWebhookIntegralNumbers(t *testing.T) {
	const ms = 1764000000000
	at := time.UnixMilli(ms).UTC()
	entry := time.UnixMilli(ms + 5).UTC()
	for _, c := range []struct {
		ts   string
		want time.Time
	}{
		{"1764000000000", at},
		{"1.764e12", at},
		{"1.764E12", at},
		{"1.764e+12", at},
		{"1764000000000.0", at},
		{"17640000000000000e-4", at},
		{"1e3", time.Unix(1000, 0).UTC()},
		{"1E3", time.Unix(1000, 0).UTC()},
		{"1000.0", time.Unix(1000, 0).UTC()},
		{`"1e3"`, time.Unix(1000, 0).UTC()},
		// No time: the event takes its entry's.
		{"-0", entry},
		{"0", entry},
		{"0.0e5", entry},
	} {
		for _, body := range numberBodies(c.ts) {
			p, err := ParseWebhook([]byte(body))
			if err != nil {
				t.Fatalf("ParseWebhook of timestamp %s: %v", c.ts, err)
			}
			ev := p.Entries[0].Events[0]
			if !ev.Time.Equal(c.want) || ev.Message == nil || ev.Message.MID != "m_1" {
				t.Fatalf("ParseWebhook of timestamp %s: %v, %+v; want %v", c.ts, ev.Time, ev.Message, c.want)
			}
			checkScan(t, []byte(body))
		}
	}
	for _, ts := range []string{"1.5", "1764000000000.5", "1e-3", "1e400", "9223372036854775808", "-9.3e18", `"1.5"`} {
		for _, body := range numberBodies(ts) {
			_, err := ParseWebhook([]byte(body))
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("ParseWebhook of timestamp %s = %v, want ErrPayload", ts, err)
			}
			if _, err := decodeWebhook([]byte(body)); err == nil {
				t.Fatalf("encoding/json took timestamp %s", ts)
			}
			checkScan(t, []byte(body))
		}
	}
	// Refusals name the number's kind, never its digits.
	_, err := ParseWebhook([]byte(numberBodies("8800551.2")[0]))
	if err == nil || strings.Contains(err.Error(), "8800551") {
		t.Fatalf("ParseWebhook of a fractional timestamp: %v", err)
	}
}

// numberBodies are two deliveries with ts as the event's timestamp,
// the entry's time and the read watermark: one the scanner takes and
// one (an attachment) it leaves to encoding/json.
func numberBodies(ts string) []string {
	const entry = `"id":"3001","time":1764000000005`
	return []string{
		fmt.Sprintf(`{"object":"page","entry":[{%s,"messaging":[{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":%s,"message":{"mid":"m_1","text":"hi"}}]}]}`, entry, ts),
		fmt.Sprintf(`{"object":"page","entry":[{%s,"messaging":[{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":%s,"message":{"mid":"m_1","attachments":[{"type":"image","payload":{"url":"https://x"}}]}}]}]}`, entry, ts),
	}
}

// TestLenientIntegers: ID, Int and Timestamp read a number by its value,
// however it is spelled, and refuse a fraction or an integer out of range
// (jsonint's errors).
func TestLenientIntegers(t *testing.T) {
	for _, c := range []struct {
		js   string
		id   string
		n    int64
		secs int64 // Timestamp's Unix seconds; 0: the zero time
		err  error // for all three; nil: all accept
	}{
		{"1e3", "1000", 1000, 1000, nil},
		{"1E3", "1000", 1000, 1000, nil},
		{"1000.0", "1000", 1000, 1000, nil},
		{"-0", "0", 0, 0, nil},
		{"0e7", "0", 0, 0, nil},
		{"1.764e12", "1764000000000", 1764000000000, 1764000000, nil},
		{"9223372036854775807", "9223372036854775807", 9223372036854775807, 9223372036854775, nil},
		{"1.5", "", 0, 0, jsonint.ErrFraction},
		{"1e-3", "", 0, 0, jsonint.ErrFraction},
		{"1e400", "", 0, 0, jsonint.ErrRange},
		{"1e300", "", 0, 0, jsonint.ErrRange},
		{"123456789012345678901", "", 0, 0, jsonint.ErrRange},
	} {
		var id ID
		var n Int
		var ts Timestamp
		errID, errN, errTS := json.Unmarshal([]byte(c.js), &id), json.Unmarshal([]byte(c.js), &n), json.Unmarshal([]byte(c.js), &ts)
		if c.err != nil {
			for _, err := range []error{errN, errTS} {
				if !errors.Is(err, c.err) {
					t.Errorf("%s: %v, want %v", c.js, err, c.err)
				}
			}
			// An id is text: a number that is no integer within 64
			// bits is kept as written.
			if errID != nil || string(id) != c.js {
				t.Errorf("ID of %s = %q, %v; want it as written", c.js, id, errID)
			}
			continue
		}
		if errID != nil || string(id) != c.id {
			t.Errorf("ID of %s = %q, %v; want %q", c.js, id, errID, c.id)
		}
		if errN != nil || int64(n) != c.n {
			t.Errorf("Int of %s = %d, %v; want %d", c.js, n, errN, c.n)
		}
		want := time.Time{}
		if c.secs != 0 {
			want = unixAuto(c.secs)
			if c.n > 1e11 {
				want = time.UnixMilli(c.n).UTC()
			}
		}
		if errTS != nil || !ts.Equal(want) {
			t.Errorf("Timestamp of %s = %v, %v; want %v", c.js, ts.Time, errTS, want)
		}
	}
	// An id beyond int64 but within uint64 is written in decimal; beyond,
	// kept as written; what is not a number is refused.
	var id ID
	for js, want := range map[string]string{"1.8446744073709551615e19": "18446744073709551615",
		"18446744073709551616": "18446744073709551616", "1.8446744073709551616e19": "1.8446744073709551616e19",
		"-9.223372036854775808e18": "-9223372036854775808", "-9223372036854775809": "-9223372036854775809"} {
		if err := json.Unmarshal([]byte(js), &id); err != nil || string(id) != want {
			t.Errorf("ID of %s = %q, %v; want %q", js, id, err, want)
		}
	}
	if err := id.UnmarshalJSON([]byte("1e")); err == nil {
		t.Errorf("ID of 1e = %q, want an error", id)
	}
	// A numeric string as Int: the same rule.
	var n Int
	if err := json.Unmarshal([]byte(`"2.5"`), &n); !errors.Is(err, jsonint.ErrFraction) {
		t.Errorf(`Int of "2.5": %v, want ErrFraction`, err)
	}
}
