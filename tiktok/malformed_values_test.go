package tiktok_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/tiktok"
)

// TestWebhookMalformedValuesNotQuoted: a webhook body or content refused
// as malformed names the field and the JSON kind, never the value
// (encoding/json's own text quotes a number it cannot store).
func TestWebhookMalformedValuesNotQuoted(t *testing.T) {
	const canary = "88005512"
	_, err := tiktok.ParseEvent([]byte(`{"event":"authorization.removed","create_time":88005512.5,"user_openid":"u"}`))
	require.EqualError(t, err, "tiktok: webhook body: integer: not an integer")
	_, err = tiktok.ParseEvent([]byte(`{"event":"authorization.removed","create_time":1,"user_openid":88005512}`))
	require.Error(t, err)
	require.NotContains(t, err.Error(), canary)
	ev, err := tiktok.ParseEvent([]byte(`{"event":"authorization.removed","create_time":1,"user_openid":"u","content":"{\"reason\":88005512.5}"}`))
	require.NoError(t, err)
	var ar tiktok.AuthorizationRemoved
	err = ev.Decode(&ar)
	require.EqualError(t, err, "tiktok: webhook content: tiktok: reason: integer: not an integer")
	require.NotContains(t, err.Error(), canary)
}
