package tiktok

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseEvent: the webhook parser never panics, and what it accepts has
// an event name and JSON content.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"client_key":"ck","event":"authorization.removed","create_time":1615338610,"user_openid":"u","content":"{\"reason\":1}"}`))
	f.Add([]byte(`{"event":"post.publish.no_longer_publicaly_available","content":"{\"post_id\":7300000000000000001}"}`))
	f.Add([]byte(`{"event":"x","content":"{"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseEvent(body)
		if err != nil {
			return
		}
		if ev.Event == "" {
			t.Fatalf("ParseEvent(%q) accepted an event without a name", body)
		}
		var v any
		if len(ev.Content) > 0 {
			if err := ev.Decode(&v); err != nil {
				t.Fatalf("accepted content does not decode: %v", err)
			}
		}
		_ = VerifySignature("t=1,s=00", body, "secret", time.Unix(1, 0), time.Minute)
	})
}

// FuzzParseEnvelope: the data-API decoder never panics and never reports
// success without code "ok".
func FuzzParseEnvelope(f *testing.F) {
	f.Add(200, []byte(`{"data":{"user":{"open_id":"u"}},"error":{"code":"ok","message":"","log_id":"L"}}`))
	f.Add(401, []byte(`{"data":{},"error":{"code":"access_token_invalid","message":"m","log_id":"L"}}`))
	f.Add(200, []byte(`{"error":{"code":"spam_risk_too_many_posts"}}`))
	f.Add(500, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		var data map[string]any
		_, err := parseEnvelope(status, body, &data)
		if err == nil {
			var env envelope
			if jerr := json.Unmarshal(body, &env); jerr != nil || env.Error.Code != CodeOK {
				t.Fatalf("parseEnvelope(%q) succeeded without code ok", body)
			}
		}
	})
}
