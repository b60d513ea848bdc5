package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
)

// TestS15AuditPublishesFollowTheCreator: the server's record of a TikTok
// publish names the creator's connection and her publish id. A request
// by her open_id exports it and an erasure removes it; another creator's
// publish stays. (The publishes category declared no subject, so the
// rows outlived the erasure of the connection by up to 90 days.)
func TestS15AuditPublishesFollowTheCreator(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		f := newPublishFixture(t, a)
		resp, out := f.post("key-1", "Launch day")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", out)
		publishID := str(out, "publish_id")
		st := f.c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		other := f.c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": f.c.consent(str(st, "authorize_url"), "sandbox-brand")}, 201)
		f.conn = str(other, "connection", "id")
		resp, out = f.post("key-2", "Brand day")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", out)
		otherPublish := str(out, "publish_id")

		exp := f.c.privacyRequest("access", map[string]string{"open_id": sandboxCreator})
		resp2, zipped := f.c.do("GET", "/v1/privacy/requests/"+exp+"/export", "", nil)
		require.Equal(t, http.StatusOK, resp2.StatusCode, "%s", zipped)
		text, names := unzipText(t, zipped)
		require.Contains(t, text, publishID, "her publish is in her export: %v", names)
		require.NotContains(t, text, otherPublish)

		er := f.c.privacyRequest("erasure", map[string]string{"open_id": sandboxCreator})
		rc := f.c.call("POST", "/v1/privacy/requests/"+er+"/erase", nil, 200)
		require.Equal(t, "data_found", str(rc, "receipt", "outcome"))
		var left []string
		f.record(func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT publish_id FROM ? WHERE tenant_id = ? ORDER BY publish_id", bun.Ident(tablePublishes), f.tenant).Scan(ctx, &left)
		})
		require.Equal(t, []string{otherPublish}, left, "her publish record is erased, the other creator's stays")
	})
}
