package inbox_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestDeliveryValuesNoColumnHolds: a signed delivery with an
// event whose values no column can hold (a timestamp of ±2^63-1 ms, a NUL
// in the message id) should be stored without that event (crm refusing it
// as a *ValidationError), not answered 500 — which Meta retries, holding
// back the delivery's good events each time. FAILS on both databases at
// session 13's start: 500 "handling failed".
func TestDeliveryValuesNoColumnHolds(t *testing.T) {
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
		cases := []struct {
			name string
			body string
			// stored says the good event is stored (2xx); else a 4xx.
			stored bool
		}{
			{"timestamp beyond any column", body(good("g1"), event(canaryPSID, "m-far", canaryText, "9223372036854775807")), true},
			{"negative timestamp beyond any column", body(good("g2"), event(canaryPSID, "m-past", canaryText, "-9223372036854775808")), true},
			{"NUL in the message id", body(good("g3"), event(canaryPSID, "m\x00id", canaryText, fmt.Sprint(at))), true},
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
					assert.Equal(t, http.StatusOK, resp.StatusCode, "answer %q", answer)
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
		for _, mid := range []string{"g1", "g2", "g3"} {
			assert.Contains(t, texts, "good "+mid)
		}
		logs := w.logText()
		require.NotContains(t, logs, canaryText)
		require.NotContains(t, logs, canaryPSID)
	})
}
