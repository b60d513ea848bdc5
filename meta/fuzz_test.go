package meta

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/vault"
)

// FuzzParseWebhook: the webhook parser never panics; what it accepts has
// typed events that agree with their kind, are ordered by timestamp, and
// keep as Raw the JSON of one value each.
func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(`{"object":"page","entry":[{"id":"3001","time":1764000000000,"messaging":[{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":1764000000000,"message":{"mid":"m_1","text":"\u00e4\/","attachments":[{"type":"image","payload":{"url":"https:\/\/x"}}]}}]}]}`))
	f.Add([]byte(`{"object":"page","entry":[{"id":3001,"time":"1","messaging":[{"sender":{"id":"3001"},"recipient":{"id":9001},"message":{"mid":"m","is_echo":"true","app_id":1}},{"delivery":{"mids":["m"],"watermark":"2"}},{"read":{"watermark":3}},{"postback":{"title":"t","payload":"p"}},{"reaction":{}}]}]}`))
	f.Add([]byte(`{"object":"instagram","entry":[]}`))
	f.Add([]byte(`{"object":"page","entry":[{"messaging":[{"timestamp":-1}]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseWebhook(body)
		if err != nil {
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("ParseWebhook error %v does not match ErrPayload", err)
			}
			return
		}
		for _, en := range p.Entries {
			for i, ev := range en.Events {
				if i > 0 && ev.Time.Before(en.Events[i-1].Time) {
					t.Fatalf("events out of timestamp order")
				}
				switch ev.Kind {
				case EventMessage, EventEcho:
					if ev.Message == nil {
						t.Fatalf("%s without Message", ev.Kind)
					}
				case EventDelivery:
					if ev.Delivery == nil {
						t.Fatalf("delivery without Delivery")
					}
				case EventRead:
					if ev.Read == nil {
						t.Fatalf("read without Read")
					}
				case EventPostback:
					if ev.Postback == nil {
						t.Fatalf("postback without Postback")
					}
				case EventOther:
				default:
					t.Fatalf("unknown kind %q", ev.Kind)
				}
				if !json.Valid(ev.Raw) {
					t.Fatalf("event Raw %q is not the JSON of one value", ev.Raw)
				}
				_ = ev.DedupeKey()
			}
		}
		_ = VerifySignature("sha256="+strings.Repeat("0", 64), body, vault.NewSecret([]byte("s")))
	})
}

// FuzzParseSignedRequest: the signed_request parser never panics, and
// what it accepts carries a valid HMAC over its payload string, the
// HMAC-SHA256 algorithm, a user and a fresh issued_at.
func FuzzParseSignedRequest(f *testing.F) {
	const secret = "s3cret"
	sign := func(payload string) string {
		p := base64.RawURLEncoding.EncodeToString([]byte(payload))
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(p))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "." + p
	}
	f.Add(sign(`{"algorithm":"HMAC-SHA256","issued_at":1790000000,"user_id":"42"}`))
	f.Add(sign(`{"algorithm":"HMAC-SHA256","issued_at":"1790000000","expires":1790003600,"user_id":42}`))
	f.Add(sign(`{"algorithm":"hmac-sha1","issued_at":1790000000,"user_id":"42"}`))
	f.Add(sign(`[]`))
	f.Add("a.b")
	f.Add("")
	now := time.Unix(1_790_000_100, 0)
	f.Fuzz(func(t *testing.T, signed string) {
		sr, err := ParseSignedRequest(signed, vault.NewSecret([]byte(secret)), now, time.Hour)
		if err != nil {
			if !errors.Is(err, ErrSignedRequest) {
				t.Fatalf("error %v does not match ErrSignedRequest", err)
			}
			return
		}
		sig, payload, _ := strings.Cut(strings.TrimSpace(signed), ".")
		got, derr := base64.RawURLEncoding.DecodeString(strings.TrimRight(sig, "="))
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(payload))
		if derr != nil || !hmac.Equal(got, m.Sum(nil)) {
			t.Fatalf("accepted %q without a valid signature", signed)
		}
		if !strings.EqualFold(sr.Algorithm, "HMAC-SHA256") || sr.UserID == "" || sr.IssuedAt.IsZero() || now.Sub(sr.IssuedAt) > time.Hour {
			t.Fatalf("accepted %+v", sr)
		}
	})
}

// FuzzDecodeError: the Graph error decoder never panics; an answer of
// status 400 or more always yields an error, and an error's
// classification (errors.Is with every family) never panics either.
func FuzzDecodeError(f *testing.F) {
	f.Add(400, []byte(`{"error":{"message":"(#100) bad","type":"OAuthException","code":100,"error_subcode":2018278,"fbtrace_id":"A"}}`))
	f.Add(400, []byte(`{"error":{"message":"m","type":"OAuthException","code":"190","error_subcode":"458","is_transient":"true"}}`))
	f.Add(403, []byte(`{"error":{"code":10}}`))
	f.Add(500, []byte(`<html>`))
	f.Add(200, []byte(`{"id":"1"}`))
	f.Add(200, []byte(`{"error":null}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := DecodeError(status, body)
		if e == nil {
			if status >= 400 {
				t.Fatalf("DecodeError(%d, %q) = nil", status, body)
			}
			return
		}
		_ = e.Error()
		for _, target := range []error{ErrRateLimited, ErrPermission, ErrInvalidParameter, ErrAppRemoved, ErrNoPageRole, ErrTransient, ErrMalformed} {
			_ = errors.Is(e, target)
		}
	})
}
