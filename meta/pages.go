package meta

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/socialcrm/socialcrm/tenancy"
)

// ErrNotPageConnection is returned, before any request, by a method that
// needs the Page's own token (publishing, insights) when the client acts
// for another connection: use the Page connection (Provider.ConnectPages).
var ErrNotPageConnection = errors.New("meta: the method needs the Page's connection")

// PagesService reads and publishes to Facebook Pages.
type PagesService struct{ c *Client }

// Page is a Facebook Page.
type Page struct {
	ID             string        `json:"id"`
	Name           string        `json:"name"`
	Category       string        `json:"category,omitempty"`
	Tasks          []string      `json:"tasks,omitempty"`
	FollowersCount int64         `json:"followers_count,omitempty"`
	FanCount       int64         `json:"fan_count,omitempty"`
	Link           string        `json:"link,omitempty"`
	Instagram      *IGAccountRef `json:"instagram_business_account,omitempty"`
}

// IGAccountRef is the Instagram professional account linked to a Page.
type IGAccountRef struct {
	ID       string `json:"id"`
	Username string `json:"username,omitempty"`
}

type wirePage struct {
	ID             ID       `json:"id"`
	Name           string   `json:"name"`
	Category       string   `json:"category"`
	Tasks          []string `json:"tasks"`
	FollowersCount Int      `json:"followers_count"`
	FanCount       Int      `json:"fan_count"`
	Link           string   `json:"link"`
	Instagram      *struct {
		ID       ID     `json:"id"`
		Username string `json:"username"`
	} `json:"instagram_business_account"`
}

func (w wirePage) page() Page {
	p := Page{ID: string(w.ID), Name: w.Name, Category: w.Category, Tasks: w.Tasks,
		FollowersCount: int64(w.FollowersCount), FanCount: int64(w.FanCount), Link: w.Link}
	if w.Instagram != nil && w.Instagram.ID != "" {
		p.Instagram = &IGAccountRef{ID: string(w.Instagram.ID), Username: w.Instagram.Username}
	}
	return p
}

// ListOptions pages through a list.
type ListOptions struct {
	// Limit is the page size (zero: Meta's default).
	Limit int
	// Cursor is the cursor of the page to read (zero: the first).
	Cursor string
}

func (o ListOptions) query(q url.Values) url.Values {
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("after", o.Cursor)
	}
	return q
}

// pages iterates over a cursor-paged list from the cursor after: fetch
// returns one page and the cursor of the next ("" at the end).
func pages[T any](after string, fetch func(after string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			items, next, err := fetch(after)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			after = next
		}
	}
}

// PageList is one page of Pages and the cursor of the next (empty at the
// end).
type PageList struct {
	Pages []Page
	Next  string
}

const pageListFields = "id,name,category,tasks"

// List returns one page of the Pages the connected user has a role on
// (/me/accounts; the Page tokens are not read). It needs pages_show_list.
func (s *PagesService) List(ctx context.Context, opts ListOptions) (*PageList, *Response, error) {
	var l list[wirePage]
	q := opts.query(url.Values{"fields": {pageListFields}})
	resp, err := s.c.get(ctx, "/me/accounts", q, &l, PermPagesShowList)
	if err != nil {
		return nil, resp, err
	}
	out := &PageList{}
	for _, w := range l.Data {
		out.Pages = append(out.Pages, w.page())
	}
	if l.Paging.Next != "" {
		out.Next = l.Paging.Cursors.After
	}
	return out, resp, nil
}

// All iterates over the Pages List returns from opts.Cursor on, fetching
// pages of opts.Limit as needed. Iteration stops at the first error, which
// is yielded.
func (s *PagesService) All(ctx context.Context, opts ListOptions) iter.Seq2[Page, error] {
	return pages(opts.Cursor, func(after string) ([]Page, string, error) {
		l, _, err := s.List(ctx, ListOptions{Limit: opts.Limit, Cursor: after})
		if err != nil {
			return nil, "", err
		}
		return l.Pages, l.Next, nil
	})
}

// Get reads a Page with its follower counts and linked Instagram
// account. It needs pages_show_list.
func (s *PagesService) Get(ctx context.Context, pageID string) (*Page, *Response, error) {
	if err := checkID(pageID); err != nil {
		return nil, nil, err
	}
	var w wirePage
	q := url.Values{"fields": {"id,name,category,followers_count,fan_count,link,instagram_business_account{id,username}"}}
	resp, err := s.c.get(ctx, "/"+pageID, q, &w, PermPagesShowList)
	if err != nil {
		return nil, resp, err
	}
	p := w.page()
	return &p, resp, nil
}

// PostKind is what a Page post carries.
type PostKind string

// Post kinds.
const (
	PostText  PostKind = "text"
	PostLink  PostKind = "link"
	PostPhoto PostKind = "photo"
	PostVideo PostKind = "video"
)

// PostRequest is a Page post to publish. The kind follows from the
// fields: VideoURL makes a video (/videos), PhotoURL a photo (/photos),
// Link a link post and Message alone a text post (/feed).
type PostRequest struct {
	// Message is the text (the photo's caption, the video's description).
	Message string
	// Link is the URL of a link post.
	Link string
	// PhotoURL is the public URL of a photo Meta fetches.
	PhotoURL string
	// VideoURL is the public URL of a video Meta fetches; needs
	// publish_video.
	VideoURL string
	// Title is a video's title.
	Title string
	// Unpublished creates the post unpublished (photos and videos).
	Unpublished bool
}

func (r PostRequest) kind() (PostKind, error) {
	n := 0
	for _, s := range []string{r.Link, r.PhotoURL, r.VideoURL} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return "", fmt.Errorf("%w: PostRequest: at most one of Link, PhotoURL and VideoURL", ErrConfig)
	case r.VideoURL != "":
		return PostVideo, checkURL(r.VideoURL)
	case r.PhotoURL != "":
		return PostPhoto, checkURL(r.PhotoURL)
	case r.Link != "":
		return PostLink, checkURL(r.Link)
	case strings.TrimSpace(r.Message) == "":
		return "", fmt.Errorf("%w: PostRequest: empty post", ErrConfig)
	}
	return PostText, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%w: %q is not an absolute http(s) URL", ErrConfig, raw)
	}
	return nil
}

// checkID refuses an empty id or one that would change the path.
func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, "/?#&% ") {
		return fmt.Errorf("%w: invalid object id %q", ErrConfig, id)
	}
	return nil
}

// Post is a published (or created) Page post.
type Post struct {
	// ID is the Page post id ("{page-id}_{post-id}"); for a video, the
	// video id (Meta returns no post id for it).
	ID string `json:"id"`
	// ObjectID is the photo or video id, empty for feed posts.
	ObjectID string   `json:"object_id,omitempty"`
	Kind     PostKind `json:"kind,omitempty"`
	PageID   string   `json:"page_id,omitempty"`

	Message      string    `json:"message,omitempty"`
	Link         string    `json:"link,omitempty"`
	PermalinkURL string    `json:"permalink_url,omitempty"`
	CreatedTime  Timestamp `json:"created_time"`
	Published    bool      `json:"is_published"`
}

// requirePage fails unless the client acts for pageID's own connection.
func (c *Client) requirePage(pageID string) error {
	if err := checkID(pageID); err != nil {
		return err
	}
	if c.session.Connection().AccountID != pageID {
		return fmt.Errorf("%w: page %s", ErrNotPageConnection, pageID)
	}
	return nil
}

// Publish publishes req on the Page, at the user's instruction: every
// publish is written to the tenant's audit log (action meta.page.publish).
// It needs pages_manage_posts and pages_read_engagement, and publish_video
// for a video; the client must act for the Page's connection.
func (s *PagesService) Publish(ctx context.Context, pageID string, req PostRequest) (*Post, *Response, error) {
	kind, err := req.kind()
	if err != nil {
		return nil, nil, err
	}
	need := []string{PermPagesManagePosts, PermPagesReadEngagement}
	if kind == PostVideo {
		need = append(need, PermPublishVideo)
	}
	if err := s.c.require(need...); err != nil {
		return nil, nil, err
	}
	if err := s.c.requirePage(pageID); err != nil {
		return nil, nil, err
	}
	f := url.Values{}
	edge := "feed"
	switch kind {
	case PostText:
		f.Set("message", req.Message)
	case PostLink:
		f.Set("message", req.Message)
		f.Set("link", req.Link)
	case PostPhoto:
		edge = "photos"
		f.Set("url", req.PhotoURL)
		if req.Message != "" {
			f.Set("message", req.Message)
		}
	case PostVideo:
		edge = "videos"
		f.Set("file_url", req.VideoURL)
		if req.Message != "" {
			f.Set("description", req.Message)
		}
		if req.Title != "" {
			f.Set("title", req.Title)
		}
	}
	if req.Unpublished && (kind == PostPhoto || kind == PostVideo) {
		f.Set("published", "false")
	}
	var ans struct {
		ID     ID `json:"id"`
		PostID ID `json:"post_id"`
	}
	attempt := tenancy.NewID()
	resp, err := s.c.do(ctx, request{method: http.MethodPost, path: "/" + pageID + "/" + edge, form: f, need: need,
		intent: "meta.page.publish_sending", attempt: attempt}, &ans)
	if err != nil {
		return nil, resp, err
	}
	p := &Post{Kind: kind, PageID: pageID, Message: req.Message, Link: req.Link, Published: !req.Unpublished}
	switch kind {
	case PostPhoto, PostVideo:
		p.ObjectID, p.ID = string(ans.ID), string(ans.PostID)
		if p.ID == "" {
			p.ID = p.ObjectID
		}
	default:
		p.ID = string(ans.ID)
	}
	if err := s.c.session.Audit(ctx, "meta.page.publish", map[string]string{
		"page_id": pageID, "post_id": p.ID, "kind": string(kind), "attempt": attempt,
	}); err != nil {
		return p, resp, fmt.Errorf("meta: audit publish: %w", err)
	}
	return p, resp, nil
}

type wirePost struct {
	ID           ID        `json:"id"`
	Message      string    `json:"message"`
	Link         string    `json:"link"`
	PermalinkURL string    `json:"permalink_url"`
	CreatedTime  Timestamp `json:"created_time"`
	IsPublished  *Bool     `json:"is_published"`
	From         *struct {
		ID ID `json:"id"`
	} `json:"from"`
}

func (w wirePost) post() Post {
	p := Post{ID: string(w.ID), Message: w.Message, Link: w.Link, PermalinkURL: w.PermalinkURL,
		CreatedTime: w.CreatedTime, Published: w.IsPublished == nil || bool(*w.IsPublished)}
	if w.From != nil {
		p.PageID = string(w.From.ID)
	}
	switch {
	case w.Link != "":
		p.Kind = PostLink
	case w.Message != "":
		p.Kind = PostText
	}
	return p
}

const postFields = "id,message,link,permalink_url,created_time,is_published,from"

// GetPost reads a Page post. It needs pages_read_engagement.
func (s *PagesService) GetPost(ctx context.Context, postID string) (*Post, *Response, error) {
	if err := checkID(postID); err != nil {
		return nil, nil, err
	}
	var w wirePost
	resp, err := s.c.get(ctx, "/"+postID, url.Values{"fields": {postFields}}, &w, PermPagesReadEngagement)
	if err != nil {
		return nil, resp, err
	}
	p := w.post()
	return &p, resp, nil
}

// Insights reads the Page's insights: the configured Page metrics
// (Config.Metrics.Page) unless opts names others, period day by default.
// It needs read_insights and pages_read_engagement; the client must act
// for the Page's connection. A metric Meta retired fails with a
// *DeprecatedMetricError before any request unless a fallback is current.
func (s *PagesService) Insights(ctx context.Context, pageID string, opts InsightsOptions) (*Insights, *Response, error) {
	if err := s.c.require(PermReadInsights, PermPagesReadEngagement); err != nil {
		return nil, nil, err
	}
	if err := s.c.requirePage(pageID); err != nil {
		return nil, nil, err
	}
	metrics := opts.Metrics
	if metrics == nil {
		metrics = s.c.cfg.Metrics.withDefaults().Page
	}
	if opts.Period == "" {
		opts.Period = "day"
	}
	return s.c.insights(ctx, pageID, metrics, opts, PermReadInsights, PermPagesReadEngagement)
}

// PostInsights reads a Page post's lifetime insights (Config.Metrics.Post
// unless opts names others). Same needs as Insights; postID is
// "{page-id}_{post-id}".
func (s *PagesService) PostInsights(ctx context.Context, postID string, opts InsightsOptions) (*Insights, *Response, error) {
	if err := s.c.require(PermReadInsights, PermPagesReadEngagement); err != nil {
		return nil, nil, err
	}
	pageID, _, _ := strings.Cut(postID, "_")
	if err := s.c.requirePage(pageID); err != nil {
		return nil, nil, err
	}
	if err := checkID(postID); err != nil {
		return nil, nil, err
	}
	metrics := opts.Metrics
	if metrics == nil {
		metrics = s.c.cfg.Metrics.withDefaults().Post
	}
	return s.c.insights(ctx, postID, metrics, opts, PermReadInsights, PermPagesReadEngagement)
}

// MessengerFields are the Page webhook fields the Messenger inbox needs:
// messages, postbacks, opt-ins, deliveries, reads and echoes.
func MessengerFields() []string {
	return []string{"messages", "messaging_postbacks", "messaging_optins", "message_deliveries", "message_reads", "message_echoes"}
}

// SubscribedApp is an app subscribed to a Page's webhooks, with the fields
// it receives.
type SubscribedApp struct {
	ID               ID       `json:"id"`
	Name             string   `json:"name"`
	Category         string   `json:"category"`
	Link             string   `json:"link"`
	SubscribedFields []string `json:"subscribed_fields"`
}

// Subscribe subscribes the app to the Page's webhooks for fields
// (MessengerFields() for the inbox): without it a real Page sends the app no
// webhook event, whatever the app's own subscription. Meta delivers only
// the fields subscribed at both the Page and the app level. It needs
// pages_manage_metadata (and pages_messaging for Messenger fields) and a
// client acting for the Page's connection; subscribing again replaces the
// fields, so the call is safe to repeat.
func (s *PagesService) Subscribe(ctx context.Context, pageID string, fields []string) (*Response, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: Subscribe: no field", ErrConfig)
	}
	need := []string{PermPagesManageMetadata}
	for _, f := range fields {
		if strings.HasPrefix(f, "messag") {
			need = append(need, PermPagesMessaging)
			break
		}
	}
	if err := s.c.requirePage(pageID); err != nil {
		return nil, err
	}
	var ans struct {
		Success Bool `json:"success"`
	}
	resp, err := s.c.do(ctx, request{method: http.MethodPost, path: "/" + pageID + "/subscribed_apps",
		form: url.Values{"subscribed_fields": {strings.Join(fields, ",")}}, need: need, idempotent: true}, &ans)
	if err != nil {
		return resp, err
	}
	if !ans.Success {
		return resp, fmt.Errorf("meta: subscribe page %s: Meta did not confirm", pageID)
	}
	return resp, nil
}

// SubscribedApps lists the apps subscribed to the Page's webhooks and
// their fields. It needs pages_manage_metadata and pages_show_list.
func (s *PagesService) SubscribedApps(ctx context.Context, pageID string) ([]SubscribedApp, *Response, error) {
	if err := s.c.requirePage(pageID); err != nil {
		return nil, nil, err
	}
	var l list[SubscribedApp]
	resp, err := s.c.get(ctx, "/"+pageID+"/subscribed_apps", nil, &l, PermPagesManageMetadata, PermPagesShowList)
	if err != nil {
		return nil, resp, err
	}
	return l.Data, resp, nil
}

// Unsubscribe removes the app's subscription to the Page's webhooks. It
// needs pages_manage_metadata.
func (s *PagesService) Unsubscribe(ctx context.Context, pageID string) (*Response, error) {
	if err := s.c.requirePage(pageID); err != nil {
		return nil, err
	}
	var ans struct {
		Success Bool `json:"success"`
	}
	return s.c.do(ctx, request{method: http.MethodDelete, path: "/" + pageID + "/subscribed_apps",
		need: []string{PermPagesManageMetadata}, idempotent: true}, &ans)
}
