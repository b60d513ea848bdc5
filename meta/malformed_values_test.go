package meta_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/meta"
)

// TestMalformedValuesNotQuoted: a body refused as malformed names the
// field's kind, never its value (the refusal is logged): an id sent as an
// object, a time, integer or boolean sent as text, an entry or an object
// kind that is a string, a number where a list goes.
func TestMalformedValuesNotQuoted(t *testing.T) {
	const canary = "88005512"
	for _, body := range []string{
		`{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":{"psid":"88005512"}},"recipient":{"id":"1"},"timestamp":1}]}]}`,
		`{"object":"page","entry":[{"id":"1","time":"88005512 o'clock","messaging":[]}]}`,
		`{"object":"page","entry":[{"id":{"x":"88005512"}}]}`,
		`{"object":"page","entry":["88005512"]}`,
		`{"object":"page","entry":[{"id":"1","messaging":[88005512]}]}`,
		`{"object":"page","entry":88005512}`,
		`{"object":"88005512","entry":[]}`,
	} {
		_, err := meta.ParseWebhook([]byte(body))
		require.ErrorIs(t, err, meta.ErrPayload, body)
		require.NotContains(t, err.Error(), canary, body)
	}
	var id meta.ID
	var at meta.Timestamp
	var n meta.Int
	var b meta.Bool
	for _, c := range []struct {
		into any
		js   string
		want string
	}{
		{&id, `{"psid":"88005512"}`, "meta: id: a JSON object is neither a string nor a number"},
		{&id, `["88005512"]`, "meta: id: a JSON array is neither a string nor a number"},
		{&at, `"88005512 o'clock"`, "meta: time: a JSON string is not a time"},
		{&at, `{"t":88005512}`, "meta: time: a JSON object is not a time"},
		{&n, `"88005512x"`, "meta: integer: a JSON string is not an integer"},
		{&b, `"88005512"`, "meta: boolean: a JSON string is not a boolean"},
	} {
		err := json.Unmarshal([]byte(c.js), c.into)
		require.EqualError(t, err, c.want)
		require.False(t, errors.Is(err, meta.ErrPayload))
	}
}
