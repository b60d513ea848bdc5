package meta

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// scanSeeds are bodies of the kinds scanWebhook takes and of the kinds it
// leaves to encoding/json.
var scanSeeds = []string{
	`{"object":"page","entry":[{"id":"3001","time":1764000000000,"messaging":[{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":1764000000000,"message":{"mid":"m_1","text":"Hallo, ist das Roggenbrot da? äöå"}}]}]}`,
	` { "object" : "page" , "entry" : [ { "id" : 3001 , "time" : "1" , "messaging" : [ { "sender" : { "id" : "3001" } , "recipient" : { "id" : 9001 } , "message" : { "mid" : "m" , "is_echo" : "true" , "app_id" : 1 } } , { "delivery" : { "mids" : [ "m" , 7 ] , "watermark" : "2" } } , { "read" : { "watermark" : 3 } } ] } ] } ` + "\n",
	`{"object":"page","entry":[{"messaging":[{"timestamp":"1500"},{"timestamp":-0},{"timestamp":0},{"sender":{"user_ref":"r"}},{"delivery":{"mids":[]}},{"message":{"is_echo":false,"text":""}}]},{"messaging":[]},{}]}`,
	`{"object":"instagram","entry":[]}`,
	`{"object":"page"}`,
	`{}`,
	`{"object":"page","entry":[{"id":"1","time":2,"messaging":[{"timestamp":3,"message":{"mid":"b"}},{"timestamp":2,"message":{"mid":"a"}},{"timestamp":3,"read":{"watermark":1}}]}]}`,
	`{"object":"pag\u0065","entry":[{"id":"3\u0030","messaging":[{"sender":{"id":"9\/1"},"message":{"mid":"m\"1","text":"\u00e4\/ \ud83d\ude00 \ud800 \n\"\\ caf` + "\xc3\xa9" + `"}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"message":{"text":"a` + "\xff" + `"}}]}]}`,
	// Left to encoding/json.
	`{"object":"page","entry":[{"id":"3001","time":1764000000000,"messaging":[{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":1764000000000,"message":{"mid":"m_1","text":"\u00e4\/","attachments":[{"type":"image","payload":{"url":"https:\/\/x"}}]}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"postback":{"title":"t","payload":"p"}},{"reaction":{}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"message":{"mid":"a"},"message":{"text":"b"}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"Message":{"mid":"a"}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"message":null}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"timestamp":01}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"message":{"text":"a` + "\t" + `"}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"message":{"text":"\q"}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"timestamp":"1\u0030"}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"m\u0069d":"1"}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"message":{"mid":true}}]}]}`,
	`{"object":"page","entry":[{"messaging":[{"timestamp":"soon"}]}]}`,
	`{"object":"page","entry":[]} {}`,
	`{"object":"page","entry":[],}`,
	`{"object":"page","standby":[]}`,
	`null`,
	`[]`,
	``,
}

// FuzzWebhookScan: for any body, the hand-written scanner either gives up
// or returns exactly what encoding/json decodes (ParseWebhook before the
// scanner), Raw bytes included.
func FuzzWebhookScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScan(t, body)
	})
}

func checkScan(t *testing.T, body []byte) bool {
	t.Helper()
	got, ok := scanWebhook(slices.Clone(body))
	if !ok {
		return false
	}
	want, err := decodeWebhook(slices.Clone(body))
	if err != nil {
		t.Fatalf("scanWebhook took %q, which encoding/json refuses: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("scanWebhook(%q) =\n%#v\nencoding/json:\n%#v", body, got, want)
	}
	return true
}

// TestWebhookScan: the scanner takes the common deliveries (messages,
// echoes, watermarks, text with escapes or without) and gives what
// encoding/json gives; it leaves the rest to encoding/json, through which
// ParseWebhook still decodes them.
func TestWebhookScan(t *testing.T) {
	for i, s := range scanSeeds {
		took := checkScan(t, []byte(s))
		if want := i < 9; took != want {
			t.Errorf("seed %d: scanned %v, want %v: %s", i, took, want, s)
		}
	}
	// A delivery as the benchmark sends them.
	var sb strings.Builder
	sb.WriteString(`{"object":"page","entry":[{"id":"3001","time":1764000000000,"messaging":[`)
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC).UnixMilli()
	for i := range 100 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"recipient":{"id":"3001"},"sender":{"id":"9%05d"},"timestamp":%d,`, i%37, at+int64(i%13))
		switch i % 10 {
		case 8:
			fmt.Fprintf(&sb, `"delivery":{"watermark":%d}}`, at+int64(i))
		case 9:
			fmt.Fprintf(&sb, `"read":{"watermark":%d}}`, at+int64(i))
		default:
			fmt.Fprintf(&sb, `"message":{"mid":"m_%d","text":"Hallo \u003c äöå %d"}}`, i, i)
		}
	}
	sb.WriteString(`]}]}`)
	// As Meta sends it, every non-ASCII character escaped, and as
	// json.Marshal writes it: both scanned.
	for _, body := range []string{sb.String(), strings.ReplaceAll(sb.String(), `äöå`, `\u00e4\u00f6\u00e5`)} {
		p, err := ParseWebhook([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Entries) != 1 || len(p.Entries[0].Events) != 100 || p.Entries[0].Events[0].Object != "page" {
			t.Fatalf("ParseWebhook: %+v", p)
		}
		if !checkScan(t, []byte(body)) {
			t.Fatalf("a delivery of messages and watermarks was left to encoding/json: %s", body)
		}
	}
}

// TestReadBody: readBody reads the whole body whatever the size it is
// told (right, too small, too large, unknown, beyond its hint).
func TestReadBody(t *testing.T) {
	for _, n := range []int{0, 1, 511, 14_000, bodyHint + 3} {
		body := strings.Repeat("x", n)
		for _, size := range []int64{int64(n), int64(n) / 2, int64(n) + 100, -1, bodyHint * 4} {
			got, err := readBody(iotest.HalfReader(strings.NewReader(body)), size)
			if err != nil || string(got) != body {
				t.Fatalf("readBody of %d bytes told %d: %d bytes, %v", n, size, len(got), err)
			}
		}
	}
	if _, err := readBody(iotest.ErrReader(errors.New("cut")), 10); err == nil {
		t.Fatal("readBody hid a read error")
	}
}
