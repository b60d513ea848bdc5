package meta_test

import (
	"errors"
	"strings"
	"testing"
	"time"

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

// TestLookupLostPagePost: a Page post whose answer was lost is sent once;
// Pages.Lookup finds it on the Page without posting again, and finds
// nothing for a post Meta never made.
func TestLookupLostPagePost(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, _, c := e.pageClient(allFeatures)
		feed := "/" + pageID + "/feed"
		req := meta.PostRequest{Message: "doors open at nine"}
		require.NoError(t, e.srv.DropAnswer("POST", "/*/feed", 1))
		_, _, err := c.Pages.Publish(e.ctx, pageID, req)
		var ou *meta.OutcomeUnknownError
		require.ErrorAs(t, err, &ou)
		require.Equal(t, 1, feedPosts(e.srv.Requests(), feed), "exactly one publish request")
		e.clk.Advance(time.Minute)
		p, err := c.Pages.Lookup(e.ctx, pageID, ou, req)
		require.NoError(t, err)
		require.NotNil(t, p, "the post Meta made is found")
		require.Equal(t, req.Message, p.Message)
		require.Len(t, e.srv.Posts(pageID), 1)
		require.Equal(t, 1, feedPosts(e.srv.Requests(), feed), "Lookup publishes nothing")

		// Refused before acting (a 503 without the post): nothing found.
		later := meta.PostRequest{Message: "doors open at ten"}
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: feed, Code: 2, Status: 503, Count: 1}))
		_, _, err = c.Pages.Publish(e.ctx, pageID, later)
		require.ErrorAs(t, err, &ou)
		p, err = c.Pages.Lookup(e.ctx, pageID, ou, later)
		require.NoError(t, err)
		require.Nil(t, p)
		// The first post is older than the call: it does not match either.
		p, err = c.Pages.Lookup(e.ctx, pageID, ou, req)
		require.NoError(t, err)
		require.Nil(t, p)
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
