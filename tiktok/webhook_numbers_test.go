package tiktok_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/socialcrm/socialcrm/internal/jsonint"
	"github.com/socialcrm/socialcrm/tiktok"
)

// TestWebhookIntegralNumbers: create_time, reason and post_id are any
// JSON number whose value is an integer (1.7e9, 1E9, 1000.0, -0); a
// fraction or an integer out of range is refused, naming no digits.
func TestWebhookIntegralNumbers(t *testing.T) {
	for _, c := range []struct {
		js   string
		want int64
		err  error
	}{
		{"1700000000", 1700000000, nil},
		{"1.7e9", 1700000000, nil},
		{"1.7E9", 1700000000, nil},
		{"1700000000.0", 1700000000, nil},
		{"-0", 0, nil},
		{"null", 0, nil},
		{"1.5", 0, jsonint.ErrFraction},
		{"1e400", 0, jsonint.ErrRange},
		{"9223372036854775808", 0, jsonint.ErrRange},
		{`"1700000000"`, 0, jsonint.ErrSyntax},
	} {
		ev, err := tiktok.ParseEvent([]byte(fmt.Sprintf(`{"event":"authorization.removed","create_time":%s,"user_openid":"u"}`, c.js)))
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("ParseEvent with create_time %s: %v, want %v", c.js, err, c.err)
			}
			continue
		}
		if err != nil || ev.CreateTime != c.want {
			t.Errorf("ParseEvent with create_time %s: %+v, %v; want %d", c.js, ev, err, c.want)
		}
	}
	_, err := tiktok.ParseEvent([]byte(`{"event":"x","create_time":8800551.2}`))
	if err == nil || strings.Contains(err.Error(), "8800551") {
		t.Errorf("ParseEvent of a fractional create_time: %v", err)
	}

	for _, c := range []struct {
		js   string
		want int
		err  error
	}{
		{"1", 1, nil},
		{"1e0", 1, nil},
		{"2.0", 2, nil},
		{"-0", 0, nil},
		{"1.5", 0, jsonint.ErrFraction},
		{"1e400", 0, jsonint.ErrRange},
	} {
		ev, err := tiktok.ParseEvent([]byte(fmt.Sprintf(`{"event":"authorization.removed","content":"{\"reason\":%s}"}`, c.js)))
		if err != nil {
			t.Fatal(err)
		}
		var ar tiktok.AuthorizationRemoved
		err = ev.Decode(&ar)
		if !errors.Is(err, c.err) || ar.Reason != c.want {
			t.Errorf("reason %s: %d, %v; want %d, %v", c.js, ar.Reason, err, c.want, c.err)
		}
	}

	// An id is text: a number that is no integer of at most 20 digits
	// is kept as written.
	for _, c := range []struct{ js, want string }{
		{"7300000000000000001", "7300000000000000001"},
		{`\"7300000000000000001\"`, "7300000000000000001"},
		{"7.3e18", "7300000000000000000"},
		{"73000000000000000010e-1", "7300000000000000001"},
		{"null", ""},
		{"-0", "0"},
		{"7.5", "7.5"},
		{"1e400", "1e400"},
	} {
		ev, err := tiktok.ParseEvent([]byte(fmt.Sprintf(`{"event":"post.publish.complete","content":"{\"publish_id\":\"p\",\"post_id\":%s}"}`, c.js)))
		if err != nil {
			t.Fatal(err)
		}
		var pe tiktok.PostEvent
		err = ev.Decode(&pe)
		if err != nil || string(pe.PostID) != c.want || pe.PublishID != "p" {
			t.Errorf("post_id %s: %+v, %v; want %q", c.js, pe, err, c.want)
		}
	}
}
