package tiktok

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PublishLookup is what Posting.Lookup found of a publish whose answer was
// lost.
type PublishLookup struct {
	// PublishID is the task TikTok created, when the lost answer named it;
	// Status is then its state.
	PublishID string
	Status    *PublishStatus
	// Video is the creator's public post created at or after the call was
	// sent with the title that was posted, when one is listed.
	Video *Video
}

// Found reports whether TikTok carried the publish out: it created a task
// (PublishID) or the post is listed (Video). Not found is no proof that
// nothing happened: a post still in processing or moderation, a private
// post or a file upload still waiting for its bytes is not listed yet. An
// inbox upload or a file upload whose init answer was lost left at most a
// task that expires unused.
func (l *PublishLookup) Found() bool { return l.PublishID != "" || l.Video != nil }

// maxLookupPages bounds how many pages of videos Lookup reads.
const maxLookupPages = 5

// Lookup finds out what became of a publish init whose answer was lost
// (ou, from InitVideo, InitInboxVideo or InitPhoto), without publishing
// again: with ou.PublishID it fetches the task's status (scope
// video.publish or video.upload); otherwise it looks through the
// creator's newest public videos (scope video.list) for one created at or
// after ou.SentAt whose title is title (the PostInfo.Title sent; empty
// matches any).
func (s *PostingService) Lookup(ctx context.Context, ou *OutcomeUnknownError, title string) (*PublishLookup, error) {
	if ou == nil {
		return nil, errors.New("tiktok: Lookup: no outcome to look up")
	}
	if ou.PublishID != "" {
		st, _, err := s.Status(ctx, ou.PublishID)
		if err != nil {
			return nil, fmt.Errorf("tiktok: look up publish: %w", err)
		}
		return &PublishLookup{PublishID: ou.PublishID, Status: st}, nil
	}
	since := ou.SentAt.Truncate(time.Second) // create_time has whole seconds
	opts := VideoListOptions{Fields: []string{"id", "create_time", "title", "share_url"}}
	for range maxLookupPages {
		page, _, err := s.c.Videos.List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("tiktok: look up publish: %w", err)
		}
		for _, v := range page.Videos {
			if v.Created().Before(since) {
				return &PublishLookup{}, nil // newest first: the rest is older
			}
			if title == "" || v.Title == title {
				return &PublishLookup{Video: &v}, nil
			}
		}
		if !page.HasMore || len(page.Videos) == 0 || page.Cursor == opts.Cursor {
			break
		}
		opts.Cursor = page.Cursor
	}
	return &PublishLookup{}, nil
}
