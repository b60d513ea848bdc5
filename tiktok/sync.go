package tiktok

import (
	"context"
	"fmt"

	"github.com/socialcrm/socialcrm/social"
)

// SyncStats counts what Sync did.
type SyncStats struct {
	Requests int
	Videos   int
}

// Sync pulls the account's profile and stats (the fields its scopes
// allow) and every public video (when video.list was granted), then stores
// one metric snapshot with the engagement rate (counts the scopes do not
// reach, such as followers without user.info.stats, are stored as
// unknown, not 0), upserts the videos as
// social.Media (without their expiring cover URLs) and, with
// WithRawResponses, the raw answers, all tagged with the connection's
// purposes. Read it back with social.Store.Snapshots and Media.
func (c *Client) Sync(ctx context.Context) (*social.SyncResult, SyncStats, error) {
	var st SyncStats
	var res social.SyncResult
	var fields []string
	granted := c.session.Scopes()
	for _, f := range UserFields() {
		if sc, _ := FieldScope(f); granted.Has(sc) {
			fields = append(fields, f)
		}
	}
	var data struct {
		User User `json:"user"`
	}
	var raw []byte
	keep := func() *[]byte {
		if c.keepRaw {
			raw = nil
			return &raw
		}
		return nil
	}
	st.Requests++
	if _, err := c.callKeep(ctx, "GET", "/v2/user/info/", fields, nil, &data, keep(), ScopeUserInfoBasic); err != nil {
		return nil, st, fmt.Errorf("tiktok: sync: %w", err)
	}
	if c.keepRaw {
		res.Raw = append(res.Raw, social.RawResponse{Endpoint: "/v2/user/info/", Body: string(raw)})
	}
	u := data.User
	res.DisplayName = u.DisplayName
	sn := &social.Snapshot{}
	res.Snapshot = sn
	if granted.Has(ScopeUserInfoStats) {
		// Without user.info.stats TikTok gives no counts: they stay
		// unknown rather than 0.
		sn.Followers, sn.Following = social.KnownCount(u.FollowerCount), social.KnownCount(u.FollowingCount)
		sn.Likes, sn.MediaCount = social.KnownCount(u.LikesCount), social.KnownCount(u.VideoCount)
	}
	if granted.Has(ScopeVideoList) {
		opts := VideoListOptions{MaxCount: MaxPageSize}
		for {
			var page syncVideoList
			body := map[string]any{"max_count": MaxPageSize}
			if opts.Cursor > 0 {
				body["cursor"] = opts.Cursor
			}
			st.Requests++
			if _, err := c.callKeep(ctx, "POST", "/v2/video/list/", VideoFields(), body, &page, keep(), ScopeVideoList); err != nil {
				return nil, st, fmt.Errorf("tiktok: sync: %w", err)
			}
			if c.keepRaw {
				res.Raw = append(res.Raw, social.RawResponse{Endpoint: "/v2/video/list/", Body: string(raw)})
			}
			for _, v := range page.Videos {
				res.Media = append(res.Media, social.Media{
					ExternalID: v.ID, Kind: "video", Title: v.Title, Description: v.VideoDescription,
					ShareURL: v.ShareURL, PublishedAt: v.Created(), DurationSec: int64(v.Duration),
					Views: count(v.ViewCount), Likes: count(v.LikeCount), Comments: count(v.CommentCount), Shares: count(v.ShareCount),
				})
			}
			if !page.HasMore || len(page.Videos) == 0 || page.Cursor == opts.Cursor {
				break
			}
			opts.Cursor = page.Cursor
		}
		// The account's views are the sum over its videos, unknown when
		// a video's views are.
		views := social.KnownCount(0)
		for _, m := range res.Media {
			if !m.Views.Known {
				views = social.Count{}
				break
			}
			views.N += m.Views.N
		}
		sn.Views = views
		sn.EngagementRate = social.EngagementRate(res.Media)
	}
	st.Videos = len(res.Media)
	if err := c.session.SaveSync(ctx, &res); err != nil {
		return nil, st, err
	}
	return &res, st, nil
}

// syncVideoList is a page of the video list as the sync reads it: the
// metrics are pointers, so that one TikTok left out (or sent as null) is
// told apart from 0.
type syncVideoList struct {
	Videos []struct {
		Video
		LikeCount    *int64 `json:"like_count"`
		CommentCount *int64 `json:"comment_count"`
		ShareCount   *int64 `json:"share_count"`
		ViewCount    *int64 `json:"view_count"`
	} `json:"videos"`
	Cursor  int64 `json:"cursor"`
	HasMore bool  `json:"has_more"`
}

// count is the metric n, unknown when the answer did not carry it.
func count(n *int64) social.Count {
	if n == nil {
		return social.Count{}
	}
	return social.KnownCount(*n)
}
