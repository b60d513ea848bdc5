package social_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

// TestOAuth2ProviderTelemetry: with a TracerProvider the token requests
// are client spans that show neither the code, the verifier, the client
// secret nor the tokens; without one nothing is recorded.
func TestOAuth2ProviderTelemetry(t *testing.T) {
	const code, verifier, secret = "CODE-canary-42", "VERIFIER-canary-0123456789012345678901234567890123", "SECRET-canary"
	const access, refresh = "ACCESS-canary-token", "REFRESH-canary-token"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("code") != code {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": 3600})
	}))
	defer srv.Close()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	cfg := social.OAuth2Config{Platform: "acme", ClientID: "client-1", ClientSecret: vault.NewSecret([]byte(secret)),
		AuthURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token?tenant=12345", RedirectURL: "https://crm.example/cb",
		Features: []social.Feature{{Name: "profile", Scopes: social.Scopes{"profile"}}}, HTTPClient: srv.Client()}
	for _, traced := range []bool{false, true} {
		c := cfg
		if traced {
			c.TracerProvider = tp
		}
		p, err := social.NewOAuth2Provider(c)
		if err != nil {
			t.Fatal(err)
		}
		g, err := p.Exchange(context.Background(), social.ExchangeRequest{Code: code, Verifier: verifier, RedirectURL: "https://crm.example/cb"})
		if err != nil {
			t.Fatalf("Exchange returned %v", err)
		}
		if string(g.AccessToken.Reveal()) != access {
			t.Fatalf("Exchange returned access token %q, want %q", g.AccessToken.Reveal(), access)
		}
		if n := len(spans.Ended()); !traced && n != 0 {
			t.Fatalf("%d spans without a TracerProvider, want 0", n)
		}
	}
	ended := spans.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans, want 1", len(ended))
	}
	s := ended[0]
	if !strings.HasSuffix(s.Name(), "/token") {
		t.Errorf("span name %q, want POST <host>/token", s.Name())
	}
	for _, kv := range s.Attributes() {
		v := kv.Value.Emit()
		for _, canary := range []string{code, verifier, secret, access, refresh, "12345"} {
			if strings.Contains(v, canary) {
				t.Errorf("attribute %s=%s holds %q", kv.Key, v, canary)
			}
		}
	}
}
