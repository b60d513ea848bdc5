package meta_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// TestPublishOutcomeUnknown: a publish answered with a server error is
// not sent again; the caller gets an outcome-unknown error naming the call
// and when it was sent, so that the post can be looked up.
func TestPublishOutcomeUnknown(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, _, c := e.pageClient(allFeatures)
		feed := "/" + pageID + "/feed"
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: feed, Code: 2, Status: 503, Count: 1}))
		before := feedPosts(e.srv.Requests(), feed)
		_, _, err := c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "once"})
		require.ErrorIs(t, err, social.ErrOutcomeUnknown)
		require.ErrorIs(t, err, meta.ErrTransient)
		var ou *meta.OutcomeUnknownError
		require.True(t, errors.As(err, &ou))
		require.Equal(t, "POST", ou.Method)
		require.True(t, strings.HasSuffix(ou.Path, feed), ou.Path)
		require.Equal(t, 503, ou.StatusCode)
		require.Equal(t, e.clk.Now(), ou.SentAt)
		require.Equal(t, before+1, feedPosts(e.srv.Requests(), feed), "exactly one request")

		// A refusal (4xx) is no unknown outcome.
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: feed, Code: 100, Count: 1}))
		_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "refused"})
		require.ErrorIs(t, err, meta.ErrInvalidParameter)
		require.NotErrorIs(t, err, social.ErrOutcomeUnknown)
	})
}

func feedPosts(reqs []metatest.Request, feed string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == "POST" && strings.HasSuffix(r.Path, feed) {
			n++
		}
	}
	return n
}
