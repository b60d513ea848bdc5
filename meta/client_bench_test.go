package meta_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// BenchmarkMetaClientGet reads a Page through the client: permission
// check, token from the session, time-stamped appsecret_proof, request
// against the emulator, envelope and usage headers decoded. Paired with
// BenchmarkMetaRawGet, the same request with net/http and encoding/json.
func BenchmarkMetaClientGet(b *testing.B) {
	db := dbtest.SQLite(b, setupDB)
	e := newEnv(b, db)
	_, _, c := e.pageClient(allFeatures)
	b.ResetTimer()
	for b.Loop() {
		e.clk.Advance(benchStep) // keeps the emulator's call log short
		if _, _, err := c.Pages.Get(e.ctx, pageID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMetaRawGet is the baseline: one GET of the same fields with a
// proof computed once, decoded into a map.
func BenchmarkMetaRawGet(b *testing.B) {
	db := dbtest.SQLite(b, setupDB)
	e := newEnv(b, db)
	tok, err := e.srv.PageToken(appID, userID, pageID, metatest.LongLived)
	if err != nil {
		b.Fatal(err)
	}
	base := e.srv.GraphURL() + "/" + e.srv.Version() + "/" + pageID +
		"?fields=id,name,category,followers_count,fan_count,link,instagram_business_account{id,username}"
	secret := secretOf(appSecret)
	hc := e.srv.Client()
	b.ResetTimer()
	for b.Loop() {
		e.clk.Advance(benchStep)
		now := e.clk.Now().Unix()
		u := base + "&appsecret_proof=" + meta.AppSecretProof(secret, tok, now) + "&appsecret_time=" + strconv.FormatInt(now, 10)
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil || resp.StatusCode != 200 {
			b.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
}

// benchStep moves the clock past the emulator's 24-hour call log on each
// iteration, so that its rate-limit bookkeeping stays constant.
const benchStep = 25 * time.Hour
