package meta_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

type cutTransport struct {
	next http.RoundTripper
	cut  func(*http.Request) bool
}

// RoundTrip lets Meta act and answer, then cuts the answer's body after
// its first bytes, as a connection that drops mid-answer does.
func (c cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err != nil || !c.cut(r) {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:len(body)/2]), errReader{io.ErrUnexpectedEOF}))
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestS15PublishAnswerCutShort: Meta published and began its 200 answer,
// and the connection dropped mid-body. The post exists once; the caller
// must learn that the outcome is unknown (not a plain error it may retry
// by sending again) and the log must hold the publish in doubt — for a
// Page post and for an Instagram media_publish.
func TestS15PublishAnswerCutShort(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		user, _, _ := e.pageClient(allFeatures)
		conns := e.connectPages(user)
		hc := &http.Client{Transport: cutTransport{next: e.srv.Client().Transport, cut: func(r *http.Request) bool {
			return r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/feed") || strings.HasSuffix(r.URL.Path, "/media_publish"))
		}}}
		client := func(conn social.Connection) *meta.Client {
			c, err := meta.New(e.cfg, append(e.clientOpts(), meta.WithSession(e.session(conn)), meta.WithHTTPClient(hc))...)
			require.NoError(t, err)
			return c
		}

		feed := "/" + pageID + "/feed"
		_, _, err := client(conns[pageID]).Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "once only"})
		require.Error(t, err)
		require.Len(t, e.srv.Posts(pageID), 1, "Meta made the post")
		require.Equal(t, 1, feedPosts(e.srv.Requests(), feed), "sent once")
		var ou *meta.OutcomeUnknownError
		require.True(t, errors.As(err, &ou), "a cut answer to a publish is an unknown outcome: %v", err)
		require.ErrorIs(t, err, social.ErrOutcomeUnknown)
		require.Equal(t, http.StatusOK, ou.StatusCode)
		actions := e.auditActions()
		require.Equal(t, "meta.write_outcome_unknown", actions[len(actions)-1])
		p, err := client(conns[pageID]).Pages.Lookup(e.ctx, pageID, ou, meta.PostRequest{Message: "once only"})
		require.NoError(t, err)
		require.NotNil(t, p, "the post in doubt is found")

		_, _, err = client(conns[igID]).Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/bread.jpg",
			Caption: "Bread", PollInterval: 5 * time.Second})
		require.True(t, errors.As(err, &ou), "a cut answer to media_publish is an unknown outcome: %v", err)
		require.NotEmpty(t, ou.ContainerID)
		actions = e.auditActions()
		require.Equal(t, "meta.write_outcome_unknown", actions[len(actions)-1])
	})
}

// TestS15WriteRecordsPairUp: every *_sending entry of a write is closed by
// an entry naming the same attempt — the write's own entry once Meta
// accepted it, meta.write_outcome_unknown, or meta.write_refused when Meta
// refused it — so that only a process that died mid-call leaves a publish
// in doubt, and a refused publish is never mistaken for one.
func TestS15WriteRecordsPairUp(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		user, _, c := e.pageClient(allFeatures)
		ig := e.client(e.connectPages(user)[igID])
		feed := "/" + pageID + "/feed"

		_, _, err := c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "accepted"})
		require.NoError(t, err)
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: feed, Code: 100, Count: 1}))
		_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "refused"})
		require.ErrorIs(t, err, meta.ErrInvalidParameter)
		require.NoError(t, e.srv.DropAnswer("POST", "/*/feed", 1))
		_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "lost"})
		require.ErrorIs(t, err, social.ErrOutcomeUnknown)
		_, _, err = ig.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/bread.jpg", Caption: "Bread", PollInterval: 5 * time.Second})
		require.NoError(t, err)

		log, err := e.vault.AuditLog(e.ctx, e.db.DB)
		require.NoError(t, err)
		es, err := log.List(e.ctx, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		open := map[string]string{}
		var closing []string
		for _, en := range es {
			if !strings.HasPrefix(en.Action, "meta.") {
				continue
			}
			a := en.Metadata["attempt"]
			require.NotEmpty(t, a, "%s names its attempt", en.Action)
			if strings.HasSuffix(en.Action, "_sending") {
				open[a] = en.Action
				continue
			}
			require.Contains(t, open, a, "%s closes a sending entry", en.Action)
			delete(open, a)
			closing = append(closing, en.Action)
		}
		require.Empty(t, open, "no process died: nothing is in doubt")
		require.Equal(t, []string{"meta.page.publish", "meta.write_refused", "meta.write_outcome_unknown", "meta.instagram.publish"}, closing)
	})
}
