package meta_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/tenancy"
)

// outcomeUnknownEntries returns the metadata of the tenant's
// meta.write_outcome_unknown audit entries.
func (e *env) outcomeUnknownEntries() []map[string]string {
	e.t.Helper()
	log, err := e.vault.AuditLog(e.ctx, e.db.DB)
	require.NoError(e.t, err)
	es, err := log.List(e.ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(e.t, err)
	var out []map[string]string
	for _, en := range es {
		if en.Action == "meta.write_outcome_unknown" {
			out = append(out, en.Metadata)
		}
	}
	return out
}

// TestLostWritesAreAudited: a Page post and an Instagram media_publish
// whose answers were lost after Meta acted were in no audit entry, while
// TikTok's were: the post existed at Meta and the log did not say it may.
// Every write whose outcome is unknown is now recorded, with what a
// lookup needs, even when the caller has gone away meanwhile; the publish
// is still sent exactly once. Each publish is also recorded before it is
// sent, so that a process killed before it read the answer leaves the
// publish in doubt in the log as well.
func TestLostWritesAreAudited(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		_, _, c := e.pageClient(allFeatures)

		require.NoError(t, e.srv.DropAnswer("POST", "/*/feed", 1))
		ctx, cancel := context.WithCancel(e.ctx)
		_, _, err := c.Pages.Publish(ctx, pageID, meta.PostRequest{Message: "doors open at nine"})
		cancel()
		var ou *meta.OutcomeUnknownError
		require.ErrorAs(t, err, &ou)
		require.Len(t, e.srv.Posts(pageID), 1, "Meta made the post")
		require.Equal(t, 1, feedPosts(e.srv.Requests(), "/"+pageID+"/feed"), "sent once")
		got := e.outcomeUnknownEntries()
		require.Len(t, got, 1)
		require.Equal(t, "POST", got[0]["method"])
		require.Equal(t, "/"+pageID+"/feed", got[0]["path"])
		require.Equal(t, ou.SentAt.UTC().Format(time.RFC3339Nano), got[0]["sent_at"])

		require.NoError(t, e.srv.DropAnswer("POST", "/*/media_publish", 1))
		_, _, err = c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/a.jpg",
			PollInterval: time.Second, Timeout: time.Minute})
		require.True(t, errors.As(err, &ou))
		require.Equal(t, 1, countPath(e.srv, "POST", "/"+igID+"/media_publish"))
		got = e.outcomeUnknownEntries()
		require.Len(t, got, 2)
		var ig map[string]string
		for _, m := range got {
			if m["path"] == "/"+igID+"/media_publish" {
				ig = m
			}
		}
		require.NotNil(t, ig)
		require.Equal(t, ou.ContainerID, ig["container_id"])
		actions := e.auditActions()
		require.NotContains(t, actions, "meta.instagram.publish", "nothing is audited as published")
		// Each publish was recorded before it was sent, so that a process
		// killed before reading the answer leaves it in the log too.
		require.Contains(t, actions, "meta.page.publish_sending")
		require.Contains(t, actions, "meta.instagram.publish_sending")
	})
}
