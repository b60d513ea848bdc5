package inbox_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestMalformedDeliveryLogsNoValue: a signed delivery refused as
// malformed because a field holds a value of the wrong type is logged
// without that value: a PSID sent as an object, a text sent where the
// timestamp goes. FAILS at session 13's start: the WARN line
// "meta: webhook malformed" quotes up to 40 bytes of the value
// (meta.ID's and meta.Timestamp's UnmarshalJSON errors, truncate(b)).
func TestMalformedDeliveryLogsNoValue(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		w.connectPage(w.ctx, messaging)
		const canaryText, canaryPSID = "leak-text-canary-5512", "88005512"
		at := w.clk.Now().UnixMilli()
		for _, ev := range []string{
			fmt.Sprintf(`{"sender":{"id":{"psid":%q}},"recipient":{"id":%q},"timestamp":%d,"message":{"mid":"m1","text":"hi"}}`, canaryPSID, pageID, at),
			fmt.Sprintf(`{"sender":{"id":%q},"recipient":{"id":%q},"timestamp":%q,"message":{"mid":"m2","text":"hi"}}`, psid, pageID, canaryText),
		} {
			b := fmt.Appendf(nil, `{"object":"page","entry":[{"id":%q,"time":%d,"messaging":[%s]}]}`, pageID, at, ev)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.hook, bytes.NewReader(b))
			require.NoError(t, err)
			req.Header.Set(meta.SignatureHeader, metatest.SignPayload(appSecret, b))
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		}
		logs := w.logText()
		require.Contains(t, logs, "webhook malformed", "the refusals are logged")
		require.NotContains(t, logs, canaryPSID)
		require.NotContains(t, logs, canaryText)
	})
}
