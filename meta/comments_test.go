package meta_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

const pageMedia = "17950000000000099" // a media object of the Page's Instagram account

func TestInstagramComments(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db, metatest.WithMedia(metatest.Media{ID: pageMedia, OwnerID: igID, Caption: "Sourdough"}))
		for _, cm := range []metatest.Comment{
			{ID: "c1", ObjectID: creatorMedia, Text: "Love this!", FromID: "ig-fan-1", Username: "fan.one"},
			{ID: "c2", ObjectID: creatorMedia, Text: "Where is this?", FromID: "ig-fan-2", Username: "fan.two"},
			{ID: "c3", ObjectID: creatorMedia, ParentID: "c2", Text: "Berlin I think", FromID: "ig-fan-3", Username: "fan.three"},
			{ID: "p1", ObjectID: pageMedia, Text: "Yum", FromID: "ig-fan-1", Username: "fan.one"},
		} {
			require.NoError(t, e.srv.AddComment(cm))
		}
		ig := e.igClient(e.connectInstagram(creatorID, igFeatures))
		_, _, fb := e.pageClient(append(allFeatures, meta.FeatureInstagramComments))

		// Instagram Login: list, read replies, reply, hide, delete.
		l, _, err := ig.InstagramComments.List(e.ctx, creatorMedia, meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, l.Comments, 2)
		require.Equal(t, meta.Comment{ID: "c1", ObjectID: creatorMedia, Text: "Love this!", FromID: "ig-fan-1", Username: "fan.one",
			Timestamp: l.Comments[0].Timestamp}, l.Comments[0])
		rs, _, err := ig.InstagramComments.Replies(e.ctx, "c2", meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, rs.Comments, 1)
		require.Equal(t, "c2", rs.Comments[0].ParentID)
		// A reply to a reply goes to the top-level comment.
		r, _, err := ig.InstagramComments.Reply(e.ctx, "c3", "Yes, Kreuzberg!")
		require.NoError(t, err)
		require.NotEmpty(t, r.ID)
		rs, _, err = ig.InstagramComments.Replies(e.ctx, "c2", meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, rs.Comments, 2)
		require.Equal(t, "ada.creates", rs.Comments[1].Username)

		_, err = ig.InstagramComments.Hide(e.ctx, "c1")
		require.NoError(t, err)
		l, _, err = ig.InstagramComments.List(e.ctx, creatorMedia, meta.ListOptions{})
		require.NoError(t, err)
		require.True(t, l.Comments[0].Hidden)
		_, _, err = ig.InstagramComments.Reply(e.ctx, "c1", "hello")
		require.ErrorIs(t, err, meta.ErrInvalidParameter, "hidden comments take no reply")
		_, err = ig.InstagramComments.Unhide(e.ctx, "c1")
		require.NoError(t, err)
		_, err = ig.InstagramComments.Delete(e.ctx, "c2")
		require.NoError(t, err)
		var all []meta.Comment
		for c, err := range ig.InstagramComments.All(e.ctx, creatorMedia, meta.ListOptions{Limit: 1}) {
			require.NoError(t, err)
			all = append(all, c)
		}
		require.Len(t, all, 1)
		require.Equal(t, "c1", all[0].ID)
		require.False(t, all[0].Hidden)
		require.Len(t, e.srv.Comments(creatorMedia), 1, "the replies went with their comment")

		// Facebook Login, through the Page's connection.
		l, _, err = fb.InstagramComments.List(e.ctx, pageMedia, meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, l.Comments, 1)
		_, err = fb.InstagramComments.Hide(e.ctx, "p1")
		require.NoError(t, err)
		// Another account's media is out of reach.
		_, _, err = fb.InstagramComments.List(e.ctx, creatorMedia, meta.ListOptions{})
		require.ErrorIs(t, err, meta.ErrInvalidParameter)

		actions := e.auditActions()
		for _, a := range []string{"meta.comment.reply", "meta.comment.hide", "meta.comment.unhide", "meta.comment.delete"} {
			require.Contains(t, actions, a)
		}
		// Comments are not stored; their text is not in the logs.
		require.NotContains(t, e.logText(), "Love this!")
		require.NotContains(t, e.logText(), "Kreuzberg")

		// Without the comments feature: a scope error before any request.
		basic := e.igClient(e.connectInstagram(creatorID, []string{meta.FeatureInstagram}))
		e.srv.ClearRequests()
		_, err = basic.InstagramComments.Delete(e.ctx, "c1")
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Zero(t, e.graphCalls())
	})
}

func TestPageComments(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		_, _, c := e.pageClient(append(allFeatures, meta.FeaturePagesComments))
		post, _, err := c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "Fresh bread today"})
		require.NoError(t, err)
		require.NoError(t, e.srv.AddComment(metatest.Comment{ID: post.ID + "_9", ObjectID: post.ID, Text: "Gluten free?", FromID: "psid-7", Username: "Carla"}))

		l, _, err := c.PageComments.List(e.ctx, post.ID, meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, l.Comments, 1)
		got := l.Comments[0]
		require.Equal(t, "Gluten free?", got.Text)
		require.Equal(t, "Carla", got.Username)
		require.Equal(t, "psid-7", got.FromID)
		require.Equal(t, post.ID, got.ObjectID)

		r, _, err := c.PageComments.Reply(e.ctx, got.ID, "Yes, on Fridays")
		require.NoError(t, err)
		rs, _, err := c.PageComments.Replies(e.ctx, got.ID, meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, rs.Comments, 1)
		require.Equal(t, r.ID, rs.Comments[0].ID)
		require.Equal(t, "Ada's Bakery", rs.Comments[0].Username)

		_, err = c.PageComments.Hide(e.ctx, got.ID)
		require.NoError(t, err)
		require.True(t, e.srv.Comments(post.ID)[0].Hidden)
		_, err = c.PageComments.Delete(e.ctx, r.ID)
		require.NoError(t, err)
		require.Len(t, e.srv.Comments(post.ID), 1)

		// Without pages.comments the Page client may not read them.
		_, _, plain := e.pageClient(allFeatures)
		e.srv.ClearRequests()
		_, _, err = plain.PageComments.List(e.ctx, post.ID, meta.ListOptions{})
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Zero(t, e.graphCalls())
	})
}
