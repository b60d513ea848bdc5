package meta

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/tenancy"
)

// InstagramService reads and publishes to the Instagram professional
// account linked to a Page (Instagram Graph API with Facebook Login). Use
// it from the Page's client: the Page token reaches the account.
type InstagramService struct{ c *Client }

// IGAccount is an Instagram professional account's profile.
type IGAccount struct {
	ID                string `json:"id"`
	Username          string `json:"username,omitempty"`
	Name              string `json:"name,omitempty"`
	Biography         string `json:"biography,omitempty"`
	Website           string `json:"website,omitempty"`
	ProfilePictureURL string `json:"profile_picture_url,omitempty"`
	FollowersCount    int64  `json:"followers_count"`
	FollowsCount      int64  `json:"follows_count"`
	MediaCount        int64  `json:"media_count"`
}

type wireIGAccount struct {
	ID                ID     `json:"id"`
	Username          string `json:"username"`
	Name              string `json:"name"`
	Biography         string `json:"biography"`
	Website           string `json:"website"`
	ProfilePictureURL string `json:"profile_picture_url"`
	FollowersCount    Int    `json:"followers_count"`
	FollowsCount      Int    `json:"follows_count"`
	MediaCount        Int    `json:"media_count"`
}

// ErrNoInstagramAccount is returned when a Page has no linked Instagram
// professional account.
var ErrNoInstagramAccount = errors.New("meta: no Instagram account is linked to the Page")

// Account returns the Instagram account linked to the Page. It needs
// pages_show_list and instagram_basic.
func (s *InstagramService) Account(ctx context.Context, pageID string) (*IGAccountRef, *Response, error) {
	if err := checkID(pageID); err != nil {
		return nil, nil, err
	}
	var w wirePage
	q := url.Values{"fields": {"id,instagram_business_account{id,username}"}}
	resp, err := s.c.get(ctx, "/"+pageID, q, &w, PermPagesShowList, PermInstagramBasic)
	if err != nil {
		return nil, resp, err
	}
	p := w.page()
	if p.Instagram == nil {
		return nil, resp, fmt.Errorf("%w: page %s", ErrNoInstagramAccount, pageID)
	}
	return p.Instagram, resp, nil
}

const igProfileFields = "id,username,name,biography,website,profile_picture_url,followers_count,follows_count,media_count"

// Profile reads the account's profile fields. It needs instagram_basic.
func (s *InstagramService) Profile(ctx context.Context, igID string) (*IGAccount, *Response, error) {
	if err := checkID(igID); err != nil {
		return nil, nil, err
	}
	var w wireIGAccount
	resp, err := s.c.get(ctx, "/"+igID, url.Values{"fields": {igProfileFields}}, &w, PermInstagramBasic)
	if err != nil {
		return nil, resp, err
	}
	return &IGAccount{ID: string(w.ID), Username: w.Username, Name: w.Name, Biography: w.Biography, Website: w.Website,
		ProfilePictureURL: w.ProfilePictureURL, FollowersCount: int64(w.FollowersCount),
		FollowsCount: int64(w.FollowsCount), MediaCount: int64(w.MediaCount)}, resp, nil
}

// PublishingLimit is the account's Content Publishing quota over a moving
// window, read at run time: Meta's documents disagree on the cap.
type PublishingLimit struct {
	// Usage is how many posts were published through the API in the window.
	Usage int
	// Total is the cap; Window the moving period.
	Total  int
	Window time.Duration
}

// PublishingLimit reads content_publishing_limit. It needs
// instagram_basic and instagram_content_publish.
func (s *InstagramService) PublishingLimit(ctx context.Context, igID string) (*PublishingLimit, *Response, error) {
	if err := checkID(igID); err != nil {
		return nil, nil, err
	}
	var l list[struct {
		QuotaUsage Int `json:"quota_usage"`
		Config     struct {
			QuotaTotal    Int `json:"quota_total"`
			QuotaDuration Int `json:"quota_duration"`
		} `json:"config"`
	}]
	resp, err := s.c.get(ctx, "/"+igID+"/content_publishing_limit", url.Values{"fields": {"quota_usage,config"}},
		&l, PermInstagramBasic, PermInstagramContentPublish)
	if err != nil {
		return nil, resp, err
	}
	if len(l.Data) == 0 {
		return nil, resp, fmt.Errorf("meta: content_publishing_limit answered no data")
	}
	d := l.Data[0]
	return &PublishingLimit{Usage: int(d.QuotaUsage), Total: int(d.Config.QuotaTotal),
		Window: time.Duration(d.Config.QuotaDuration) * time.Second}, resp, nil
}

// ErrPublishLimit matches *PublishLimitError.
var ErrPublishLimit = errors.New("meta: Instagram publishing limit reached")

// PublishLimitError is returned, before any container is created, when
// the account used its publishing quota.
type PublishLimitError struct {
	Limit PublishingLimit
}

func (e *PublishLimitError) Error() string {
	return fmt.Sprintf("meta: Instagram publishing limit reached: %d of %d posts in %s", e.Limit.Usage, e.Limit.Total, e.Limit.Window)
}

// Is makes errors.Is(err, ErrPublishLimit) hold.
func (e *PublishLimitError) Is(target error) bool { return target == ErrPublishLimit }

// MediaKind is what an Instagram publish creates.
type MediaKind string

// Media kinds.
const (
	MediaImage    MediaKind = "IMAGE"
	MediaReel     MediaKind = "REELS"
	MediaStory    MediaKind = "STORIES"
	MediaCarousel MediaKind = "CAROUSEL"
)

// MediaRequest is an Instagram post to publish. Set ImageURL for an
// image, VideoURL for a reel (Kind MediaReel is implied), Items for a
// carousel (2 to 10); Kind MediaStory makes a story of either URL.
type MediaRequest struct {
	Kind     MediaKind
	ImageURL string
	VideoURL string
	Caption  string
	// Items are a carousel's images and videos.
	Items []MediaItem
	// PollInterval is how often the container status is read (zero: one
	// minute, as Meta advises); Timeout bounds the wait (zero: 10 minutes).
	// Both run on the client's clock.
	PollInterval, Timeout time.Duration
}

// MediaItem is one image or video of a carousel.
type MediaItem struct {
	ImageURL, VideoURL string
}

func (r *MediaRequest) normalize() error {
	switch {
	case len(r.Items) > 0:
		if r.Kind != "" && r.Kind != MediaCarousel {
			return fmt.Errorf("%w: MediaRequest: Items need Kind CAROUSEL", ErrConfig)
		}
		if r.ImageURL != "" || r.VideoURL != "" {
			return fmt.Errorf("%w: MediaRequest: a carousel has Items, not its own URL", ErrConfig)
		}
		if len(r.Items) < 2 || len(r.Items) > 10 {
			return fmt.Errorf("%w: MediaRequest: a carousel has 2 to 10 items", ErrConfig)
		}
		for _, it := range r.Items {
			if (it.ImageURL == "") == (it.VideoURL == "") {
				return fmt.Errorf("%w: MediaRequest: a carousel item has exactly one of ImageURL and VideoURL", ErrConfig)
			}
			if err := checkURL(it.ImageURL + it.VideoURL); err != nil {
				return err
			}
		}
		r.Kind = MediaCarousel
	case r.ImageURL != "" && r.VideoURL != "":
		return fmt.Errorf("%w: MediaRequest: one of ImageURL and VideoURL", ErrConfig)
	case r.VideoURL != "":
		if r.Kind == "" {
			r.Kind = MediaReel
		}
		if r.Kind != MediaReel && r.Kind != MediaStory {
			return fmt.Errorf("%w: MediaRequest: a video is a REELS or STORIES", ErrConfig)
		}
		if err := checkURL(r.VideoURL); err != nil {
			return err
		}
	case r.ImageURL != "":
		if r.Kind == "" {
			r.Kind = MediaImage
		}
		if r.Kind != MediaImage && r.Kind != MediaStory {
			return fmt.Errorf("%w: MediaRequest: an image is an IMAGE or STORIES", ErrConfig)
		}
		if err := checkURL(r.ImageURL); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: MediaRequest: nothing to publish", ErrConfig)
	}
	if r.PollInterval < 0 || r.Timeout < 0 {
		return fmt.Errorf("%w: MediaRequest: negative PollInterval or Timeout", ErrConfig)
	}
	if r.PollInterval == 0 {
		r.PollInterval = time.Minute
	}
	if r.Timeout == 0 {
		r.Timeout = 10 * time.Minute
	}
	return nil
}

// Container status codes (status_code of a media container).
const (
	StatusInProgress = "IN_PROGRESS"
	StatusFinished   = "FINISHED"
	StatusError      = "ERROR"
	StatusExpired    = "EXPIRED"
	StatusPublished  = "PUBLISHED"
)

// ContainerStatus is a media container's state.
type ContainerStatus struct {
	ID string
	// Code is IN_PROGRESS, FINISHED, ERROR, EXPIRED or PUBLISHED.
	Code string
	// Status is Meta's explanation (with the error subcode for ERROR).
	Status string
}

// ErrContainer matches *ContainerError.
var ErrContainer = errors.New("meta: Instagram media container not publishable")

// ContainerError is returned when a container ends in ERROR or EXPIRED,
// or is still IN_PROGRESS when the publish's Timeout passes. Nothing was
// published.
type ContainerError struct {
	ContainerStatus
}

func (e *ContainerError) Error() string {
	return fmt.Sprintf("meta: Instagram container %s is %s: %s", e.ID, e.Code, e.Status)
}

// Is makes errors.Is(err, ErrContainer) hold.
func (e *ContainerError) Is(target error) bool { return target == ErrContainer }

// Container reads a media container's status. It needs instagram_basic.
func (s *InstagramService) Container(ctx context.Context, containerID string) (*ContainerStatus, *Response, error) {
	if err := checkID(containerID); err != nil {
		return nil, nil, err
	}
	var w struct {
		ID         ID     `json:"id"`
		StatusCode string `json:"status_code"`
		Status     string `json:"status"`
	}
	resp, err := s.c.get(ctx, "/"+containerID, url.Values{"fields": {"id,status_code,status"}}, &w, PermInstagramBasic)
	if err != nil {
		return nil, resp, err
	}
	return &ContainerStatus{ID: string(w.ID), Code: w.StatusCode, Status: w.Status}, resp, nil
}

var igPublishPerms = []string{PermInstagramBasic, PermInstagramContentPublish, PermPagesReadEngagement}

// Publish publishes req on the account at the user's instruction: it
// checks content_publishing_limit (a spent quota fails with a
// *PublishLimitError before anything is created), creates the media
// container (and a carousel's item containers), polls its status_code on
// the client's clock until FINISHED — ERROR, EXPIRED or the timeout fail
// with a *ContainerError — then publishes it, once (a lost answer fails
// with *OutcomeUnknownError), and writes an audit entry
// (action meta.instagram.publish). It needs instagram_basic,
// instagram_content_publish and pages_read_engagement.
func (s *InstagramService) Publish(ctx context.Context, igID string, req MediaRequest) (*Media, *Response, error) {
	if err := req.normalize(); err != nil {
		return nil, nil, err
	}
	resp, err := s.beforePublish(ctx, igID)
	if err != nil {
		return nil, resp, err
	}
	var containerID string
	if req.Kind == MediaCarousel {
		var children []string
		for _, it := range req.Items {
			f := url.Values{"is_carousel_item": {"true"}}
			if it.VideoURL != "" {
				f.Set("media_type", "VIDEO")
				f.Set("video_url", it.VideoURL)
			} else {
				f.Set("image_url", it.ImageURL)
			}
			id, r, err := s.create(ctx, igID, f)
			if err != nil {
				return nil, r, err
			}
			children = append(children, id)
		}
		containerID, resp, err = s.create(ctx, igID, url.Values{"media_type": {"CAROUSEL"},
			"children": {strings.Join(children, ",")}, "caption": {req.Caption}})
	} else {
		f := url.Values{}
		if req.Caption != "" && req.Kind != MediaStory {
			f.Set("caption", req.Caption)
		}
		if req.Kind != MediaImage {
			f.Set("media_type", string(req.Kind))
		}
		if req.VideoURL != "" {
			f.Set("video_url", req.VideoURL)
		} else {
			f.Set("image_url", req.ImageURL)
		}
		containerID, resp, err = s.create(ctx, igID, f)
	}
	if err != nil {
		return nil, resp, err
	}
	return s.finishPublish(ctx, igID, containerID, req.Caption, req.PollInterval, req.Timeout,
		map[string]string{"kind": string(req.Kind)})
}

// beforePublish checks what every publication needs before anything is
// created: the permissions, the account id and a publishing quota not
// spent (a *PublishLimitError otherwise).
func (s *InstagramService) beforePublish(ctx context.Context, igID string) (*Response, error) {
	if err := s.c.require(igPublishPerms...); err != nil {
		return nil, err
	}
	if err := checkID(igID); err != nil {
		return nil, err
	}
	lim, resp, err := s.PublishingLimit(ctx, igID)
	if err != nil {
		return resp, err
	}
	if lim.Total > 0 && lim.Usage >= lim.Total {
		return resp, &PublishLimitError{Limit: *lim}
	}
	return resp, nil
}

// finishPublish polls the container until FINISHED, publishes it once and
// writes the audit entry meta.instagram.publish with attrs.
func (s *InstagramService) finishPublish(ctx context.Context, igID, containerID, caption string, every, timeout time.Duration, attrs map[string]string) (*Media, *Response, error) {
	if resp, err := s.await(ctx, containerID, every, timeout); err != nil {
		return nil, resp, err
	}
	attempt := tenancy.NewID()
	mediaID, resp, err := s.publishContainer(ctx, igID, containerID, attempt)
	if err != nil {
		return nil, resp, err
	}
	m := &Media{ID: mediaID, Caption: caption, OwnerID: igID}
	attrs["ig_user_id"], attrs["media_id"], attrs["container_id"], attrs["attempt"] = igID, m.ID, containerID, attempt
	if err := s.c.session.Audit(ctx, "meta.instagram.publish", attrs); err != nil {
		return m, resp, fmt.Errorf("meta: audit publish: %w", err)
	}
	return m, resp, nil
}

func (s *InstagramService) create(ctx context.Context, igID string, f url.Values) (string, *Response, error) {
	var ans struct {
		ID ID `json:"id"`
	}
	resp, err := s.c.post(ctx, "/"+igID+"/media", f, &ans, igPublishPerms...)
	if err != nil {
		return "", resp, err
	}
	if ans.ID == "" {
		return "", resp, fmt.Errorf("meta: container creation answered no id")
	}
	return string(ans.ID), resp, nil
}

// await polls the container until FINISHED, on the client's clock.
func (s *InstagramService) await(ctx context.Context, id string, every, timeout time.Duration) (*Response, error) {
	deadline := s.c.opts.now().Add(timeout)
	for {
		st, resp, err := s.Container(ctx, id)
		if err != nil {
			return resp, err
		}
		switch st.Code {
		case StatusFinished:
			return resp, nil
		case StatusInProgress, "":
		default:
			return resp, &ContainerError{ContainerStatus: *st}
		}
		if !s.c.opts.now().Add(every).Before(deadline.Add(time.Nanosecond)) {
			return resp, &ContainerError{ContainerStatus: *st}
		}
		if err := s.c.opts.sleep(ctx, every); err != nil {
			return resp, err
		}
	}
}

// Media is an Instagram media object.
type Media struct {
	ID               string    `json:"id"`
	OwnerID          string    `json:"owner_id,omitempty"`
	Caption          string    `json:"caption,omitempty"`
	MediaType        string    `json:"media_type,omitempty"`
	MediaProductType string    `json:"media_product_type,omitempty"`
	MediaURL         string    `json:"media_url,omitempty"`
	Permalink        string    `json:"permalink,omitempty"`
	Timestamp        Timestamp `json:"timestamp"`
	LikeCount        int64     `json:"like_count"`
	CommentsCount    int64     `json:"comments_count"`

	// likesKnown and commentsKnown say the answer carried like_count and
	// comments_count (Meta leaves like_count out when the owner hides
	// likes).
	likesKnown, commentsKnown bool
}

type wireMedia struct {
	ID               ID        `json:"id"`
	Caption          string    `json:"caption"`
	MediaType        string    `json:"media_type"`
	MediaProductType string    `json:"media_product_type"`
	MediaURL         string    `json:"media_url"`
	Permalink        string    `json:"permalink"`
	Timestamp        Timestamp `json:"timestamp"`
	LikeCount        *Int      `json:"like_count"`
	CommentsCount    *Int      `json:"comments_count"`
	Owner            *struct {
		ID ID `json:"id"`
	} `json:"owner"`
}

func (w wireMedia) media() Media {
	m := Media{ID: string(w.ID), Caption: w.Caption, MediaType: w.MediaType, MediaProductType: w.MediaProductType,
		MediaURL: w.MediaURL, Permalink: w.Permalink, Timestamp: w.Timestamp}
	if w.LikeCount != nil {
		m.LikeCount, m.likesKnown = int64(*w.LikeCount), true
	}
	if w.CommentsCount != nil {
		m.CommentsCount, m.commentsKnown = int64(*w.CommentsCount), true
	}
	if w.Owner != nil {
		m.OwnerID = string(w.Owner.ID)
	}
	return m
}

const igMediaFields = "id,caption,media_type,media_product_type,media_url,permalink,timestamp,like_count,comments_count,owner"

// MediaList is one page of media and the cursor of the next (empty at
// the end).
type MediaList struct {
	Media []Media
	Next  string
}

// ListMedia returns one page of the account's media, newest first. It
// needs instagram_basic.
func (s *InstagramService) ListMedia(ctx context.Context, igID string, opts ListOptions) (*MediaList, *Response, error) {
	if err := checkID(igID); err != nil {
		return nil, nil, err
	}
	var l list[wireMedia]
	resp, err := s.c.get(ctx, "/"+igID+"/media", opts.query(url.Values{"fields": {igMediaFields}}), &l, PermInstagramBasic)
	if err != nil {
		return nil, resp, err
	}
	out := &MediaList{}
	for _, w := range l.Data {
		out.Media = append(out.Media, w.media())
	}
	if l.Paging.Next != "" {
		out.Next = l.Paging.Cursors.After
	}
	return out, resp, nil
}

// AllMedia iterates over the media ListMedia returns from opts.Cursor
// on, fetching pages of opts.Limit as needed. Iteration stops at the
// first error, which is yielded.
func (s *InstagramService) AllMedia(ctx context.Context, igID string, opts ListOptions) iter.Seq2[Media, error] {
	return pages(opts.Cursor, func(after string) ([]Media, string, error) {
		l, _, err := s.ListMedia(ctx, igID, ListOptions{Limit: opts.Limit, Cursor: after})
		if err != nil {
			return nil, "", err
		}
		return l.Media, l.Next, nil
	})
}

// MediaInsights reads a media object's insights (Config.Metrics.Media
// unless opts names others). Meta leaves out metrics it has no data for.
// It needs instagram_basic, instagram_manage_insights and
// pages_read_engagement.
func (s *InstagramService) MediaInsights(ctx context.Context, mediaID string, opts InsightsOptions) (*Insights, *Response, error) {
	if err := checkID(mediaID); err != nil {
		return nil, nil, err
	}
	metrics := opts.Metrics
	if metrics == nil {
		metrics = s.c.cfg.Metrics.withDefaults().Media
	}
	return s.c.insights(ctx, mediaID, metrics, opts, PermInstagramBasic, PermInstagramManageInsights, PermPagesReadEngagement)
}
