package meta

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"net/url"
	"strings"

	"github.com/socialcrm/socialcrm/social"
)

// MaxSyncPosts is how many of the latest posts (Page posts, Instagram
// media) a sync stores with their insights: one insights request each.
const MaxSyncPosts = 50

// PostList is one page of a Page's published posts and the cursor of the
// next (empty at the end).
type PostList struct {
	Posts []Post
	Next  string
}

// Posts returns one page of the Page's published posts, newest first
// (/{page-id}/published_posts). It needs pages_read_engagement.
func (s *PagesService) Posts(ctx context.Context, pageID string, opts ListOptions) (*PostList, *Response, error) {
	if err := checkID(pageID); err != nil {
		return nil, nil, err
	}
	var l list[wirePost]
	resp, err := s.c.get(ctx, "/"+pageID+"/published_posts", opts.query(url.Values{"fields": {postFields}}), &l, PermPagesReadEngagement)
	if err != nil {
		return nil, resp, err
	}
	out := &PostList{}
	for _, w := range l.Data {
		out.Posts = append(out.Posts, w.post())
	}
	if l.Paging.Next != "" {
		out.Next = l.Paging.Cursors.After
	}
	return out, resp, nil
}

// AllPosts iterates over the posts Posts returns from opts.Cursor on,
// fetching pages of opts.Limit as needed. Iteration stops at the first
// error, which is yielded.
func (s *PagesService) AllPosts(ctx context.Context, pageID string, opts ListOptions) iter.Seq2[Post, error] {
	return pages(opts.Cursor, func(after string) ([]Post, string, error) {
		l, _, err := s.Posts(ctx, pageID, ListOptions{Limit: opts.Limit, Cursor: after})
		if err != nil {
			return nil, "", err
		}
		return l.Posts, l.Next, nil
	})
}

// Sync stores what the client's connection holds, as the TikTok client's
// Sync does, and returns it:
//
//   - a Page connection: Pages.Snapshot;
//   - an Instagram connection (an Instagram Login connection, or one
//     derived from a Page, display name "@username"): Instagram.Snapshot,
//     with the audience demographics as Snapshot.Breakdowns when the
//     insights permission was granted and Meta has them;
//   - the Facebook user connection made by the flow: the user's profile
//     only (the display name; no metrics, no posts: a Facebook user's
//     timeline and counts are not available to the application).
func (c *Client) Sync(ctx context.Context) (*social.SyncResult, *Response, error) {
	conn := c.session.Connection()
	switch {
	case c.Flavour() == InstagramLogin:
		return c.Instagram.sync(ctx, conn.AccountID)
	case conn.ParentID == "":
		return c.syncUser(ctx)
	case strings.HasPrefix(conn.DisplayName, "@"):
		return c.Instagram.sync(ctx, conn.AccountID)
	default:
		return c.Pages.sync(ctx, conn.AccountID)
	}
}

// syncUser stores the connected user's name.
func (c *Client) syncUser(ctx context.Context) (*social.SyncResult, *Response, error) {
	var me struct {
		ID   ID     `json:"id"`
		Name string `json:"name"`
	}
	resp, err := c.get(ctx, "/me", url.Values{"fields": {"id,name"}}, &me)
	if err != nil {
		return nil, resp, err
	}
	r := &social.SyncResult{DisplayName: me.Name}
	if err := c.session.SaveSync(ctx, r); err != nil {
		return nil, resp, err
	}
	return r, resp, nil
}

// Snapshot syncs the Page: it reads its follower count and insights, its
// latest published posts (up to MaxSyncPosts) and each post's lifetime
// insights, and stores one social.Snapshot of the Page's connection
// (recording the API version and the metric names that produced it,
// Snapshot.Source) and the posts as social.Media (message as Title,
// permalink as ShareURL, both sealed; Views from post_media_view, Likes
// the sum of post_reactions_by_type_total, each unknown when the insights
// answer lacks it; comments and shares are not read and stay unknown). Followers is followers_count; Views the latest value of the first
// Page metric; counts the Page does not report are unknown. With
// WithRawResponses the insights answers are kept as social.RawResponse
// rows (their own 90-day retention category). It needs pages_show_list,
// read_insights and pages_read_engagement; the client must act for the
// Page's connection.
func (s *PagesService) Snapshot(ctx context.Context, pageID string) (*social.Snapshot, *Response, error) {
	r, resp, err := s.sync(ctx, pageID)
	if err != nil {
		return nil, resp, err
	}
	return r.Snapshot, resp, nil
}

func (s *PagesService) sync(ctx context.Context, pageID string) (*social.SyncResult, *Response, error) {
	if err := s.c.require(PermPagesShowList, PermReadInsights, PermPagesReadEngagement); err != nil {
		return nil, nil, err
	}
	if err := s.c.requirePage(pageID); err != nil {
		return nil, nil, err
	}
	p, _, err := s.Get(ctx, pageID)
	if err != nil {
		return nil, nil, err
	}
	in, resp, err := s.Insights(ctx, pageID, InsightsOptions{})
	if err != nil {
		return nil, resp, err
	}
	sn := &social.Snapshot{Followers: social.KnownCount(p.FollowersCount), Source: in.Source()}
	if len(in.Metrics) > 0 {
		if v, ok := in.Latest(in.Metrics[0]); ok {
			sn.Views = social.KnownCount(int64(v))
		}
	}
	r := &social.SyncResult{DisplayName: p.Name, Snapshot: sn}
	if s.c.opts.keepRaw {
		r.Raw = in.rawResponses()
	}
	l, resp, err := s.Posts(ctx, pageID, ListOptions{Limit: MaxSyncPosts})
	if err != nil {
		return nil, resp, err
	}
	for _, post := range l.Posts {
		m := social.Media{ExternalID: post.ID, Kind: "post", Title: post.Message, ShareURL: post.PermalinkURL,
			PublishedAt: post.CreatedTime.Time}
		pin, presp, err := s.PostInsights(ctx, post.ID, InsightsOptions{})
		if err != nil {
			return nil, presp, err
		}
		if v, ok := pin.Latest("post_media_view"); ok {
			m.Views = social.KnownCount(int64(v))
		}
		if n, ok := pin.sum("post_reactions_by_type_total"); ok {
			m.Likes = social.KnownCount(n)
		}
		if s.c.opts.keepRaw {
			r.Raw = append(r.Raw, pin.rawResponses()...)
		}
		r.Media = append(r.Media, m)
	}
	sn.EngagementRate = social.EngagementRate(r.Media)
	if err := s.c.session.SaveSync(ctx, r); err != nil {
		return nil, resp, err
	}
	return r, resp, nil
}

// sum returns the total of a breakdown metric's latest value (an object
// of counts, such as reactions by type), or of its number; false when the
// answer has no such value.
func (in *Insights) sum(name string) (int64, bool) {
	for i := len(in.Data) - 1; i >= 0; i-- {
		d := in.Data[i]
		if d.Name != name || len(d.Values) == 0 {
			continue
		}
		v := d.Values[len(d.Values)-1]
		if f, ok := v.Number(); ok {
			return int64(f), true
		}
		var parts map[string]float64
		if json.Unmarshal(v.Value, &parts) != nil {
			return 0, false
		}
		var n float64
		for _, p := range parts {
			n += p
		}
		return int64(n), true
	}
	return 0, false
}

// Snapshot syncs the Instagram account: it reads its profile counts and
// its latest media (up to MaxSyncPosts) with their insights when
// instagram_manage_insights was granted, and stores one social.Snapshot of
// the client's connection (the account's own, see
// PageConnection.Instagram), with the API version and the fields that
// produced it (Snapshot.Source), and the media as social.Media (caption as
// Title, permalink as ShareURL, both sealed; likes and comments from the
// media, views and shares from its insights). With the insights
// permission it also reads the audience demographics into
// Snapshot.Breakdowns (counts per key, no person; left out when Meta has
// none, below 100 followers). A media metric the answer does not carry
// (likes hidden by the owner, insights not granted or not given for that
// media) is unknown. Views is the sum over the media when every item's
// views were read, unknown otherwise. It needs instagram_basic.
func (s *InstagramService) Snapshot(ctx context.Context, igID string) (*social.Snapshot, *Response, error) {
	r, resp, err := s.sync(ctx, igID)
	if err != nil {
		return nil, resp, err
	}
	return r.Snapshot, resp, nil
}

func (s *InstagramService) sync(ctx context.Context, igID string) (*social.SyncResult, *Response, error) {
	p, resp, err := s.Profile(ctx, igID)
	if err != nil {
		return nil, resp, err
	}
	v := s.c.Version()
	if resp != nil && resp.Version != "" {
		v = "v" + strings.TrimPrefix(resp.Version, "v")
	}
	sn := &social.Snapshot{Followers: social.KnownCount(p.FollowersCount), Following: social.KnownCount(p.FollowsCount),
		MediaCount: social.KnownCount(p.MediaCount), Source: "graph " + v + "; followers_count,follows_count,media_count"}
	r := &social.SyncResult{DisplayName: s.c.session.Connection().DisplayName, Snapshot: sn}
	l, lresp, err := s.ListMedia(ctx, igID, ListOptions{Limit: MaxSyncPosts})
	if err != nil {
		return nil, lresp, err
	}
	insights := s.c.require(PermInstagramBasic, PermInstagramManageInsights, PermPagesReadEngagement) == nil
	if insights {
		d, dresp, err := s.Demographics(ctx, igID, DemographicsOptions{})
		switch {
		case err == nil:
			sn.Breakdowns = make(map[string]map[string]int64, len(d.By))
			for b, vals := range d.By {
				m := make(map[string]int64, len(vals))
				for _, v := range vals {
					m[v.Key] = v.Value
				}
				sn.Breakdowns[string(b)] = m
			}
			sn.Source += " | " + d.Source()
		case !errors.Is(err, ErrNoDemographics):
			return nil, dresp, err
		}
	}
	// The account's views are the sum over its media, unknown when a
	// media item's views are.
	views := social.KnownCount(0)
	for _, md := range l.Media {
		m := social.Media{ExternalID: md.ID, Kind: strings.ToLower(md.MediaType), Title: md.Caption, ShareURL: md.Permalink,
			PublishedAt: md.Timestamp.Time}
		if md.likesKnown {
			m.Likes = social.KnownCount(md.LikeCount)
		}
		if md.commentsKnown {
			m.Comments = social.KnownCount(md.CommentsCount)
		}
		if m.Kind == "" {
			m.Kind = "image"
		}
		if insights {
			in, iresp, err := s.MediaInsights(ctx, md.ID, InsightsOptions{})
			if err != nil {
				return nil, iresp, err
			}
			if n, ok := in.Latest("views"); ok {
				m.Views = social.KnownCount(int64(n))
			}
			if n, ok := in.Latest("shares"); ok {
				m.Shares = social.KnownCount(int64(n))
			}
			if s.c.opts.keepRaw {
				r.Raw = append(r.Raw, in.rawResponses()...)
			}
		}
		if !m.Views.Known {
			views = social.Count{}
		}
		views.N += m.Views.N
		r.Media = append(r.Media, m)
	}
	if insights && views.Known {
		sn.Views = views
	}
	sn.EngagementRate = social.EngagementRate(r.Media)
	if err := s.c.session.SaveSync(ctx, r); err != nil {
		return nil, resp, err
	}
	return r, resp, nil
}
