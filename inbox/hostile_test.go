package inbox_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestMalformedAndHostileDeliveries: signed deliveries whose bodies are
// malformed (an event that is not an object, messaging an object, nesting
// deeper than the decoder goes, 10 MB) answer a client error, never a
// 500; odd but well-formed ones (a number as an id, repeated keys — the
// last wins —, invalid UTF-8 in a text, a null event, a message without
// a sender) and events whose values no column holds (a timestamp of
// ±2^63-1 ms, a NUL in the message id: crm refuses them as a
// *ValidationError, and a 500 would make Meta retry the delivery, holding
// back its good events) are answered 200 with the delivery's good events
// stored; neither the answers nor the log name the planted text or PSID.
func TestMalformedAndHostileDeliveries(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		w.connectPage(w.ctx, messaging)
		const canaryText, canaryPSID = "hostile-text-canary-4471", "88004471"
		at := w.clk.Now().UnixMilli()
		// event writes its strings into the JSON as they are: a NUL is
		// written escaped (\u0000), invalid UTF-8 as its raw bytes.
		js := func(s string) string { return `"` + strings.ReplaceAll(s, "\x00", `\u0000`) + `"` }
		event := func(sender, mid, text, ts string) string {
			return `{"sender":{"id":` + js(sender) + `},"recipient":{"id":` + js(pageID) + `},"timestamp":` + ts +
				`,"message":{"mid":` + js(mid) + `,"text":` + js(text) + `}}`
		}
		body := func(events ...string) string {
			return fmt.Sprintf(`{"object":"page","entry":[{"id":%q,"time":%d,"messaging":[%s]}]}`, pageID, at, strings.Join(events, ","))
		}
		good := func(mid string) string { return event(psid, mid, "good "+mid, fmt.Sprint(at)) }
		deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
		cases := []struct {
			name string
			body string
			// stored says the good event is stored (2xx); else a 4xx.
			stored bool
		}{
			{"timestamp beyond any column", body(good("g1"), event(canaryPSID, "m-far", canaryText, "9223372036854775807")), true},
			{"negative timestamp beyond any column", body(good("g2"), event(canaryPSID, "m-past", canaryText, "-9223372036854775808")), true},
			{"NUL in the message id", body(good("g3"), event(canaryPSID, "m\x00id", canaryText, fmt.Sprint(at))), true},
			{"huge number as the sender", body(good("g4"), `{"sender":{"id":1e400},"recipient":{"id":"`+pageID+`"},"timestamp":`+fmt.Sprint(at)+`,"message":{"mid":"m-num","text":"`+canaryText+`"}}`), true},
			{"duplicate keys", body(good("g5"), `{"sender":{"id":"`+canaryPSID+`"},"sender":{"id":"`+psid+`"},"recipient":{"id":"`+pageID+`"},"timestamp":`+fmt.Sprint(at)+`,"message":{"mid":"m-dup","text":"`+canaryText+`"},"message":{"mid":"m-dup2","text":"second"}}`), true},
			{"invalid UTF-8 in the text", body(good("g6"), event(canaryPSID, "m-utf", "bad \xff\xfe "+canaryText, fmt.Sprint(at))), true},
			{"messaging element null", body(good("g11"), "null"), true},
			{"message without a sender", body(good("g12"), `{"recipient":{"id":"`+pageID+`"},"timestamp":`+fmt.Sprint(at)+`,"message":{"mid":"m-nos","text":"`+canaryText+`"}}`), true},
			{"messaging element a number", body(good("g7"), "1"), false},
			{"messaging element a string", body(good("g8"), `"`+canaryText+`"`), false},
			{"messaging an object", fmt.Sprintf(`{"object":"page","entry":[{"id":%q,"messaging":{"a":1}}]}`, pageID), false},
			{"deep nesting", body(good("g9"), deep), false},
			{"10 MB body", body(good("g10"), event(canaryPSID, "m-big", strings.Repeat("x", 10<<20), fmt.Sprint(at))), false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				b := []byte(c.body)
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.hook, bytes.NewReader(b))
				require.NoError(t, err)
				req.Header.Set(meta.SignatureHeader, metatest.SignPayload(appSecret, b))
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.NotContains(t, string(answer), canaryText)
				require.NotContains(t, string(answer), canaryPSID)
				if c.stored {
					require.Equal(t, http.StatusOK, resp.StatusCode, "answer %q", answer)
				} else {
					require.GreaterOrEqual(t, resp.StatusCode, 400, "answer %q", answer)
					require.Less(t, resp.StatusCode, 500, "answer %q", answer)
				}
			})
		}
		// The good events of the deliveries that were taken are stored.
		var texts []string
		for _, m := range w.messages(w.ctx, inbox.Key(pageID, psid)) {
			texts = append(texts, m.Text)
		}
		for _, mid := range []string{"g1", "g2", "g3", "g4", "g5", "g6", "g11", "g12"} {
			require.Contains(t, texts, "good "+mid)
		}
		logs := w.logText()
		require.NotContains(t, logs, canaryText)
		require.NotContains(t, logs, canaryPSID)
	})
}
