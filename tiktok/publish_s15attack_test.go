package tiktok_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// publishRecords returns the tenant's tiktok.publish_* audit entries, oldest
// first.
func (e *env) publishRecords() []tenancy.AuditEntry {
	e.t.Helper()
	log, err := tenancy.NewAuditLog(e.db.DB)
	require.NoError(e.t, err)
	es, err := log.List(e.ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(e.t, err)
	var out []tenancy.AuditEntry
	for _, en := range es {
		if strings.HasPrefix(en.Action, "tiktok.publish_") {
			out = append(out, en)
		}
	}
	return out
}

// inDoubt applies the documented rule to the log: a publish_sending entry
// that no later entry of the same attempt closes is a publish in doubt.
func inDoubt(es []tenancy.AuditEntry) []string {
	open := map[string]bool{}
	var order []string
	for _, en := range es {
		a := en.Metadata["attempt"]
		if en.Action == "tiktok.publish_sending" {
			open[a] = true
			order = append(order, a)
		} else {
			delete(open, a)
		}
	}
	var out []string
	for _, a := range order {
		if open[a] {
			out = append(out, a)
		}
	}
	return out
}

// TestS15PublishRecordsPairUp: every publish_sending entry is closed by an
// entry of the same attempt — publish_started, publish_outcome_unknown, or
// publish_refused when TikTok refused it or it was never sent (a posting
// cap, bad parameters, a connection that needs reauth) — so that only a
// process that died mid-call leaves a publish in doubt, and a refused
// publish is never mistaken for one.
func TestS15PublishRecordsPairUp(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithRotation(tiktoktest.RotateSingleUse))
		conn := e.connect([]string{"profile", "publish"})
		c := e.client(conn)
		src, err := tiktok.PlanChunks(1<<20, 0)
		require.NoError(t, err)
		req := tiktok.VideoInitRequest{PostInfo: tiktok.PostInfo{PrivacyLevel: tiktok.PrivacySelfOnly}, SourceInfo: src}

		_, _, err = c.Posting.InitVideo(e.ctx, req) // started
		require.NoError(t, err)
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoInitPath, Status: http.StatusForbidden, Code: "spam_risk_too_many_posts"})
		_, _, err = c.Posting.InitVideo(e.ctx, req)
		require.True(t, tiktok.IsPostingLimit(err), "%v", err)
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoInitPath, Processed: true, Drop: true})
		_, _, err = c.Posting.InitVideo(e.ctx, req)
		require.ErrorIs(t, err, social.ErrOutcomeUnknown)
		// The refresh token is refused: nothing is sent.
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath, Status: http.StatusBadRequest, Code: "invalid_grant"})
		_, _, err = c.Posting.InitVideo(e.ctx, req)
		require.ErrorIs(t, err, social.ErrNeedsReauth)

		es := e.publishRecords()
		var actions []string
		for _, en := range es {
			actions = append(actions, en.Action)
			require.NotEmpty(t, en.Metadata["attempt"], "%s names its attempt", en.Action)
		}
		require.Equal(t, []string{
			"tiktok.publish_sending", "tiktok.publish_started",
			"tiktok.publish_sending", "tiktok.publish_refused",
			"tiktok.publish_sending", "tiktok.publish_outcome_unknown",
			"tiktok.publish_sending", "tiktok.publish_refused",
		}, actions)
		require.Equal(t, "spam_risk_too_many_posts", es[3].Metadata["reason"])
		require.Equal(t, "needs_reauth", es[7].Metadata["reason"])
		require.Empty(t, inDoubt(es), "no process died: nothing is in doubt")
		require.Len(t, e.srv.Publishes(), 2, "the started one and the one whose answer was lost")
	})
}
