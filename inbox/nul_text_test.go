package inbox_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestTextWithNUL: a Messenger text holding \u0000 (valid JSON, valid
// text) is stored through the webhook — it is not dropped as invalid —,
// read back equal, and exported with its NUL (\u0000 in the JSON file),
// on both databases.
func TestTextWithNUL(t *testing.T) {
	const text = "nul-canary\x00after"
	eachWorld(t, func(t *testing.T, w *world) {
		w.connectPage(w.ctx, messaging)
		w.deliver(metatest.TextMessage(pageID, psid, text))
		ms := w.messages(w.ctx, inbox.Key(pageID, psid))
		require.Len(t, ms, 1, "the message is stored: %s", w.logText())
		require.Equal(t, text, ms[0].Text)
		require.NotContains(t, w.logText(), "dropped an invalid event")

		archive, _ := export(t, w, w.ctx, map[string]string{crm.SubjectThread: psid})
		require.Contains(t, archive, `nul-canary\u0000after`, "the JSON export keeps the NUL")
	})
}
