package meta

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// maxLookupPages bounds how many pages of posts Pages.Lookup reads.
const maxLookupPages = 5

// Lookup finds out, without publishing again, whether a Page publish whose
// answer was lost (ou, from Publish) took place: it looks through the
// Page's newest published posts for one created at or after ou.SentAt
// with req's message and link (req is the request that was sent). It
// returns the post, or nil when none is listed — which is no proof that
// nothing happened: an unpublished photo or video is not listed. It needs
// pages_read_engagement.
func (s *PagesService) Lookup(ctx context.Context, pageID string, ou *OutcomeUnknownError, req PostRequest) (*Post, error) {
	if ou == nil {
		return nil, errors.New("meta: Lookup: no outcome to look up")
	}
	since := ou.SentAt.Truncate(time.Second) // created_time has whole seconds
	opts := ListOptions{}
	for range maxLookupPages {
		l, _, err := s.Posts(ctx, pageID, opts)
		if err != nil {
			return nil, fmt.Errorf("meta: look up publish: %w", err)
		}
		for _, p := range l.Posts {
			if p.CreatedTime.Before(since) {
				return nil, nil // newest first: the rest is older
			}
			if p.Message == req.Message && (req.Link == "" || p.Link == req.Link) {
				return &p, nil
			}
		}
		if l.Next == "" {
			break
		}
		opts.Cursor = l.Next
	}
	return nil, nil
}

// Lookup finds out, without publishing again, whether an Instagram
// media_publish whose answer was lost (ou, from Publish or PublishVideo,
// naming the container) took place: it reads the container's status,
// which is StatusPublished once Meta published it. Publish the container
// again only when it is still StatusFinished. It needs instagram_basic.
func (s *InstagramService) Lookup(ctx context.Context, ou *OutcomeUnknownError) (*ContainerStatus, error) {
	if ou == nil || ou.ContainerID == "" {
		return nil, errors.New("meta: Lookup: the outcome names no container")
	}
	st, _, err := s.Container(ctx, ou.ContainerID)
	if err != nil {
		return nil, fmt.Errorf("meta: look up publish: %w", err)
	}
	return st, nil
}
