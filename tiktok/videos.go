package tiktok

import (
	"context"
	"fmt"
	"iter"
	"time"
)

// VideoService lists and queries the account's public videos (scope
// video.list).
type VideoService struct{ c *Client }

// Video is TikTok's Video object. IDs are strings (they exceed 2^53);
// CoverImageURL expires after about six hours.
type Video struct {
	ID               string `json:"id"`
	CreateTime       int64  `json:"create_time"` // Unix seconds
	CoverImageURL    string `json:"cover_image_url"`
	ShareURL         string `json:"share_url"`
	VideoDescription string `json:"video_description"`
	Duration         int32  `json:"duration"`
	Height           int32  `json:"height"`
	Width            int32  `json:"width"`
	Title            string `json:"title"`
	EmbedHTML        string `json:"embed_html"`
	EmbedLink        string `json:"embed_link"`
	LikeCount        int32  `json:"like_count"`
	CommentCount     int32  `json:"comment_count"`
	ShareCount       int32  `json:"share_count"`
	ViewCount        int64  `json:"view_count"`
}

// Created returns CreateTime as a time.
func (v Video) Created() time.Time { return time.Unix(v.CreateTime, 0).UTC() }

// VideoFields lists every field of the Video object.
func VideoFields() []string {
	return []string{
		"id", "create_time", "cover_image_url", "share_url", "video_description",
		"duration", "height", "width", "title", "embed_html", "embed_link",
		"like_count", "comment_count", "share_count", "view_count",
	}
}

// VideoListOptions pages List.
type VideoListOptions struct {
	// Cursor is the cursor of the previous page, in Unix milliseconds (zero:
	// the newest videos).
	Cursor int64
	// MaxCount is the page size, 1 to 20 (zero: 20).
	MaxCount int
	// Fields to return (empty: VideoFields()).
	Fields []string
}

// VideoList is one page of List.
type VideoList struct {
	Videos  []Video `json:"videos"`
	Cursor  int64   `json:"cursor"`
	HasMore bool    `json:"has_more"`
}

// MaxPageSize is the largest max_count TikTok accepts.
const MaxPageSize = 20

func fieldsOr(f []string) []string {
	if len(f) == 0 {
		return VideoFields()
	}
	return f
}

// List returns one page of the account's public videos, newest first
// (POST /v2/video/list/).
func (s *VideoService) List(ctx context.Context, opts VideoListOptions) (*VideoList, *Response, error) {
	n := opts.MaxCount
	if n == 0 {
		n = MaxPageSize
	}
	if n < 1 || n > MaxPageSize {
		return nil, nil, fmt.Errorf("tiktok: VideoListOptions.MaxCount must be 1 to %d, got %d", MaxPageSize, n)
	}
	body := map[string]any{"max_count": n}
	if opts.Cursor > 0 {
		body["cursor"] = opts.Cursor
	}
	var page VideoList
	resp, err := s.c.call(ctx, "POST", "/v2/video/list/", fieldsOr(opts.Fields), body, &page, ScopeVideoList)
	if err != nil {
		return nil, resp, err
	}
	return &page, resp, nil
}

// All iterates over every public video from opts.Cursor on, fetching pages
// as needed. It yields a non-nil error at most once, as its last element.
func (s *VideoService) All(ctx context.Context, opts VideoListOptions) iter.Seq2[Video, error] {
	return func(yield func(Video, error) bool) {
		for {
			page, _, err := s.List(ctx, opts)
			if err != nil {
				yield(Video{}, err)
				return
			}
			for _, v := range page.Videos {
				if !yield(v, nil) {
					return
				}
			}
			if !page.HasMore || len(page.Videos) == 0 || page.Cursor == opts.Cursor {
				return
			}
			opts.Cursor = page.Cursor
		}
	}
}

// VideoQueryOptions selects the fields of Query.
type VideoQueryOptions struct {
	// Fields to return (empty: VideoFields()).
	Fields []string
}

// MaxQueryIDs is the most ids one Query takes.
const MaxQueryIDs = 20

// Query returns the account's public videos among ids, which must number
// 1 to 20 (POST /v2/video/query/). It also renews cover URLs.
func (s *VideoService) Query(ctx context.Context, ids []string, opts VideoQueryOptions) ([]Video, *Response, error) {
	if len(ids) == 0 || len(ids) > MaxQueryIDs {
		return nil, nil, fmt.Errorf("tiktok: Query takes 1 to %d ids, got %d", MaxQueryIDs, len(ids))
	}
	body := map[string]any{"filters": map[string]any{"video_ids": ids}}
	var data struct {
		Videos []Video `json:"videos"`
	}
	resp, err := s.c.call(ctx, "POST", "/v2/video/query/", fieldsOr(opts.Fields), body, &data, ScopeVideoList)
	if err != nil {
		return nil, resp, err
	}
	return data.Videos, resp, nil
}
