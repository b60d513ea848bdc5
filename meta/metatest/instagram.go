package metatest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Container status codes, as /{container-id}?fields=status_code reports.
const (
	StatusInProgress = "IN_PROGRESS"
	StatusFinished   = "FINISHED"
	StatusError      = "ERROR"
	StatusExpired    = "EXPIRED"
	StatusPublished  = "PUBLISHED"
)

// containerTTL is how long an unpublished container lives.
const containerTTL = 24 * time.Hour

type media struct {
	Media
	albumChild bool
	children   []string
}

type container struct {
	id, igID     string
	mediaType    string // IMAGE, VIDEO, REELS, STORIES, CAROUSEL
	imageURL     string
	videoURL     string
	caption      string
	carouselItem bool
	children     []string
	created      time.Time
	readyAt      time.Time
	errSubcode   int
	published    bool
	mediaID      string
}

func (s *Server) containerStatus(ct *container) string {
	now := s.nowLocked()
	switch {
	case ct.published:
		return StatusPublished
	case ct.errSubcode != 0:
		return StatusError
	case !now.Before(ct.created.Add(containerTTL)):
		return StatusExpired
	}
	for _, id := range ct.children {
		switch s.containerStatus(s.containers[id]) {
		case StatusError, StatusExpired:
			return StatusError
		case StatusInProgress:
			return StatusInProgress
		}
	}
	if now.Before(ct.readyAt) {
		return StatusInProgress
	}
	return StatusFinished
}

func (s *Server) containerStatusText(ct *container, code string) string {
	switch code {
	case StatusFinished:
		return "Finished: Media has been uploaded and it is ready to be published."
	case StatusInProgress:
		return "In Progress: Media is still being processed."
	case StatusExpired:
		return "Expired: The container was not published within 24 hours."
	case StatusPublished:
		return "Published: The container has been published."
	}
	sub := ct.errSubcode
	for _, id := range ct.children {
		if child := s.containers[id]; sub == 0 && child.errSubcode != 0 {
			sub = child.errSubcode
		}
	}
	if sub == 0 {
		sub = 2207020 // a child expired
	}
	return fmt.Sprintf("Error: Media processing failed (%d)", sub)
}

// FailMediaURL makes container creation fail for mediaURL the way Meta does
// when it cannot download the file: code 9004, subcode 2207052.
func (s *Server) FailMediaURL(mediaURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failingURLs[mediaURL] = true
}

// FinishContainer makes a container (and its children) ready at once.
func (s *Server) FinishContainer(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct := s.containers[id]
	if ct == nil {
		return fmt.Errorf("metatest: FinishContainer: container %q: %w", id, ErrNotFound)
	}
	now := s.nowLocked()
	ct.readyAt = now
	for _, c := range ct.children {
		s.containers[c].readyAt = now
	}
	return nil
}

// FailContainer puts a container in status ERROR with the given error
// subcode, as when Meta cannot process the media (2207026 for an
// unsupported video format, for example).
func (s *Server) FailContainer(id string, subcode int) error {
	if subcode <= 0 {
		return invalid("FailContainer: subcode %d", subcode)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ct := s.containers[id]
	if ct == nil {
		return fmt.Errorf("metatest: FailContainer: container %q: %w", id, ErrNotFound)
	}
	ct.errSubcode = subcode
	return nil
}

// canUseIG checks that the caller acts for the account's Page and holds the
// permissions.
func (s *Server) canUseIG(c *call, igID string, perms ...string) *graphError {
	acct := s.igAccounts[igID]
	switch c.tok.kind {
	case kindInstagram:
		if c.tok.userID != igID {
			return errNoObject(strings.ToLower(c.method), igID)
		}
	case kindUser:
		if acct.PageID == "" || len(s.pages[acct.PageID].Tasks[c.tok.userID]) == 0 {
			return errNoObject(strings.ToLower(c.method), igID)
		}
	case kindPage:
		if c.tok.pageID != acct.PageID {
			return errNoObject(strings.ToLower(c.method), igID)
		}
	default:
		return errNoObject(strings.ToLower(c.method), igID)
	}
	if !c.grant.has(perms...) {
		return errPermission(10, "(#10) Application does not have permission for this action")
	}
	return nil
}

func (s *Server) igMediaCount(igID string) int {
	n := s.igAccounts[igID].MediaCount
	for _, m := range s.media {
		if m.OwnerID == igID && !m.albumChild {
			n++
		}
	}
	return n
}

func (s *Server) igNode(a *InstagramAccount) map[string]any {
	node := map[string]any{
		"id":              a.ID,
		"username":        a.Username,
		"followers_count": a.FollowersCount,
		"follows_count":   a.FollowsCount,
		"media_count":     s.igMediaCount(a.ID),
	}
	for k, v := range map[string]string{
		"name": a.Name, "biography": a.Biography, "website": a.Website, "profile_picture_url": a.ProfilePictureURL,
	} {
		if v != "" {
			node[k] = v
		}
	}
	return node
}

var igUserFields = []string{
	"id", "username", "name", "biography", "website", "profile_picture_url",
	"followers_count", "follows_count", "media_count",
}

func (s *Server) routeIGUser(c *call, id, edge, sub string) result {
	if sub != "" {
		return fail(errUnknownPath(c.path))
	}
	switch {
	case edge == "" && c.method == http.MethodGet:
		if gerr := s.canUseIG(c, id, "instagram_basic"); gerr != nil {
			return fail(gerr)
		}
		return s.fields(c, s.igNode(s.igAccounts[id]), "IGUser", []string{"id"}, igUserFields)
	case edge == "media" && c.method == http.MethodGet:
		if gerr := s.canUseIG(c, id, "instagram_basic"); gerr != nil {
			return fail(gerr)
		}
		var items []map[string]any
		for i := len(s.mediaOrder) - 1; i >= 0; i-- {
			m := s.media[s.mediaOrder[i]]
			if m != nil && m.OwnerID == id && !m.albumChild {
				items = append(items, s.mediaNode(m))
			}
		}
		items, gerr := filterItems(items, c.param("fields"), "IGMedia", []string{"id"}, mediaFields)
		if gerr != nil {
			return fail(gerr)
		}
		return ok(s.paginate(c, items))
	case edge == "media" && c.method == http.MethodPost:
		return s.createContainer(c, id)
	case edge == "media_publish" && c.method == http.MethodPost:
		return s.publishContainer(c, id)
	case edge == "insights" && c.method == http.MethodGet:
		return s.accountInsights(c, id)
	case edge == "content_publishing_limit" && c.method == http.MethodGet:
		if gerr := s.canUseIG(c, id, "instagram_basic", "instagram_content_publish"); gerr != nil {
			return fail(gerr)
		}
		used, _ := s.publishedWithin(id)
		entry := map[string]any{
			"quota_usage": used,
			"config":      map[string]any{"quota_total": s.cfg.publishQuota, "quota_duration": int(containerTTL.Seconds())},
		}
		out, gerr := selectFields(entry, c.param("fields"), "ContentPublishingLimit", []string{"quota_usage"}, nil)
		if gerr != nil {
			return fail(gerr)
		}
		return ok(map[string]any{"data": []map[string]any{out}})
	case edge == "":
		return fail(errNoObject(strings.ToLower(c.method), id))
	case slices.Contains([]string{"media", "media_publish", "content_publishing_limit", "insights"}, edge):
		return fail(errNoObject(strings.ToLower(c.method), id))
	}
	return fail(errNoField(edge, "IGUser"))
}

// publishedWithin counts the account's API publishes in the last 24 hours
// and returns when the oldest of them leaves the window.
func (s *Server) publishedWithin(igID string) (int, time.Time) {
	now := s.nowLocked()
	var keep []time.Time
	for _, t := range s.publishes[igID] {
		if t.After(now.Add(-containerTTL)) {
			keep = append(keep, t)
		}
	}
	s.publishes[igID] = keep
	if len(keep) == 0 {
		return 0, time.Time{}
	}
	return len(keep), keep[0].Add(containerTTL)
}

func mediaDownloadFailed() *graphError {
	e := newErr(typeOAuth, 9004, 2207052, "Media download has failed. The media URI doesn't meet our requirements.")
	e.UserTitle = "Media download has failed"
	e.UserMsg = "The media could not be fetched from this URI. Please check that it is public and meets the requirements."
	return e
}

func (s *Server) createContainer(c *call, igID string) result {
	if gerr := s.canUseIG(c, igID, "instagram_basic", "instagram_content_publish", "pages_read_engagement"); gerr != nil {
		return fail(gerr)
	}
	now := s.nowLocked()
	ct := &container{
		igID: igID, created: now, caption: c.param("caption"),
		imageURL: c.param("image_url"), videoURL: c.param("video_url"),
		carouselItem: c.param("is_carousel_item") == "true",
		mediaType:    strings.ToUpper(c.param("media_type")),
	}
	if c.param("upload_type") == "resumable" {
		return s.createResumable(c, ct)
	}
	processing := s.cfg.imageProcessing
	switch ct.mediaType {
	case "", "IMAGE":
		if ct.imageURL == "" {
			if ct.videoURL != "" {
				return fail(errParam("(#100) The parameter media_type is required for videos: use REELS, STORIES, or VIDEO for carousel items"))
			}
			return fail(errParam("(#100) The parameter image_url is required."))
		}
		ct.mediaType = "IMAGE"
	case "VIDEO":
		if !ct.carouselItem {
			return fail(errParam("(#100) The VIDEO media type is only supported for carousel items; use REELS to publish a single video."))
		}
		if ct.videoURL == "" {
			return fail(errParam("(#100) The parameter video_url is required."))
		}
		processing = s.cfg.videoProcessing
	case "REELS":
		if ct.videoURL == "" {
			return fail(errParam("(#100) The parameter video_url is required."))
		}
		processing = s.cfg.videoProcessing
	case "STORIES":
		switch {
		case ct.videoURL != "":
			processing = s.cfg.videoProcessing
		case ct.imageURL == "":
			return fail(errParam("(#100) The parameter image_url or video_url is required."))
		}
	case "CAROUSEL":
		if ct.carouselItem {
			return fail(errParam("(#100) A carousel cannot be a carousel item."))
		}
		for _, ch := range strings.Split(c.param("children"), ",") {
			if ch = strings.TrimSpace(ch); ch != "" {
				ct.children = append(ct.children, ch)
			}
		}
		if len(ct.children) < 2 || len(ct.children) > 10 {
			return fail(errParam("(#100) The parameter children must list between 2 and 10 carousel item containers."))
		}
		for _, ch := range ct.children {
			child := s.containers[ch]
			if child == nil || child.igID != igID || !child.carouselItem || child.published {
				return fail(errParam(fmt.Sprintf("(#100) The carousel item %s is not a container of this account created with is_carousel_item=true.", ch)))
			}
		}
		processing = 0
	default:
		return fail(errParam("(#100) The parameter media_type must be one of IMAGE, VIDEO, REELS, STORIES, CAROUSEL."))
	}
	for _, u := range []string{ct.imageURL, ct.videoURL} {
		if u != "" && s.failingURLs[u] {
			return fail(mediaDownloadFailed())
		}
	}
	ct.readyAt = now.Add(processing)
	ct.id = s.nextID(17900000000000000)
	s.containers[ct.id] = ct
	return ok(map[string]any{"id": ct.id})
}

func (s *Server) publishContainer(c *call, igID string) result {
	if gerr := s.canUseIG(c, igID, "instagram_basic", "instagram_content_publish", "pages_read_engagement"); gerr != nil {
		return fail(gerr)
	}
	id := c.param("creation_id")
	if id == "" {
		return fail(errParam("(#100) The parameter creation_id is required."))
	}
	ct := s.containers[id]
	if ct == nil || ct.igID != igID {
		return fail(newErr(typeOAuth, 24, 2207008, "The media builder with creation id = "+id+" does not exist or has expired."))
	}
	if ct.carouselItem {
		return fail(errParam("(#100) A carousel item container cannot be published on its own; publish the CAROUSEL container."))
	}
	switch s.containerStatus(ct) {
	case StatusPublished:
		return fail(errParam("(#100) The media container " + id + " has already been published."))
	case StatusExpired:
		return fail(newErr(typeOAuth, -2, 2207020, "The media you are trying to access has expired. Please try to upload again."))
	case StatusError:
		return fail(newErr(typeOAuth, -1, 2207032, "Create media fail, please try to re-create media"))
	case StatusInProgress:
		e := newErr(typeOAuth, 9007, 2207027, "Media ID is not available")
		e.UserTitle = "Media not ready"
		e.UserMsg = "The media is not ready to be published. Please wait a moment."
		return fail(e)
	}
	used, _ := s.publishedWithin(igID)
	if used >= s.cfg.publishQuota {
		e := newErr(typeOAuth, 9, 2207042, "Application request limit reached")
		e.UserTitle = "Max posts reached"
		e.UserMsg = "You reached maximum number of posts that is allowed to be published by Content Publishing API."
		return fail(e)
	}
	now := s.nowLocked()
	s.publishes[igID] = append(s.publishes[igID], now)
	m := &media{Media: Media{
		OwnerID: igID, Caption: ct.caption, Timestamp: now,
		MediaURL: ct.imageURL + ct.videoURL, MediaType: "IMAGE", MediaProductType: "FEED",
	}}
	switch ct.mediaType {
	case "REELS":
		m.MediaType, m.MediaProductType = "VIDEO", "REELS"
	case "STORIES":
		m.MediaProductType = "STORY"
		if ct.videoURL != "" {
			m.MediaType = "VIDEO"
		}
	case "CAROUSEL":
		m.MediaType = "CAROUSEL_ALBUM"
		for _, chID := range ct.children {
			child := s.containers[chID]
			child.published = true
			cm := &media{Media: Media{
				OwnerID: igID, Timestamp: now, MediaURL: child.imageURL + child.videoURL,
				MediaType: "IMAGE", MediaProductType: "FEED",
			}, albumChild: true}
			if child.mediaType == "VIDEO" {
				cm.MediaType = "VIDEO"
			}
			cm.ID = s.nextID(17950000000000000)
			cm.Permalink = "https://www.instagram.com/p/" + cm.ID + "/"
			child.mediaID = cm.ID
			s.media[cm.ID] = cm
			s.mediaOrder = append(s.mediaOrder, cm.ID)
			m.children = append(m.children, cm.ID)
		}
	}
	m.ID = s.nextID(17950000000000000)
	m.Permalink = "https://www.instagram.com/p/" + m.ID + "/"
	ct.published, ct.mediaID = true, m.ID
	s.media[m.ID] = m
	s.mediaOrder = append(s.mediaOrder, m.ID)
	return ok(map[string]any{"id": m.ID})
}

func (s *Server) routeContainer(c *call, id, edge string) result {
	ct := s.containers[id]
	if edge != "" || c.method != http.MethodGet {
		return fail(errNoObject(strings.ToLower(c.method), id))
	}
	if gerr := s.canUseIG(c, ct.igID, "instagram_basic"); gerr != nil {
		return fail(gerr)
	}
	code := s.containerStatus(ct)
	node := map[string]any{"id": id, "status_code": code, "status": s.containerStatusText(ct, code)}
	return s.fields(c, node, "IGContainer", []string{"id"}, nil)
}

var mediaFields = []string{
	"id", "caption", "media_type", "media_product_type", "media_url", "permalink", "timestamp",
	"username", "like_count", "comments_count", "owner", "is_comment_enabled", "shortcode",
}

func (s *Server) mediaNode(m *media) map[string]any {
	node := map[string]any{
		"id":                 m.ID,
		"media_type":         m.MediaType,
		"media_product_type": m.MediaProductType,
		"permalink":          m.Permalink,
		"timestamp":          formatTime(m.Timestamp),
		"username":           s.igAccounts[m.OwnerID].Username,
		"like_count":         m.LikeCount,
		"comments_count":     m.CommentsCount,
		"owner":              map[string]any{"id": m.OwnerID},
		"is_comment_enabled": true,
		"shortcode":          m.ID,
	}
	if m.LikesHidden {
		delete(node, "like_count")
	}
	if m.Caption != "" {
		node["caption"] = m.Caption
	}
	if m.MediaURL != "" {
		node["media_url"] = m.MediaURL
	}
	return node
}

func (s *Server) routeMedia(c *call, id, edge, sub string) result {
	m := s.media[id]
	if sub != "" {
		return fail(errUnknownPath(c.path))
	}
	switch {
	case edge == "" && c.method == http.MethodGet:
		if gerr := s.canUseIG(c, m.OwnerID, "instagram_basic"); gerr != nil {
			return fail(gerr)
		}
		return s.fields(c, s.mediaNode(m), "IGMedia", []string{"id"}, mediaFields)
	case edge == "children" && c.method == http.MethodGet:
		if gerr := s.canUseIG(c, m.OwnerID, "instagram_basic"); gerr != nil {
			return fail(gerr)
		}
		var items []map[string]any
		for _, ch := range m.children {
			items = append(items, s.mediaNode(s.media[ch]))
		}
		items, gerr := filterItems(items, c.param("fields"), "IGMedia", []string{"id"}, mediaFields)
		if gerr != nil {
			return fail(gerr)
		}
		return ok(s.paginate(c, items))
	case edge == "insights" && c.method == http.MethodGet:
		return s.insights(c, id, "ig", "")
	case edge == "comments" && c.method == http.MethodGet:
		return s.listComments(c, id, "", true)
	case edge == "" || edge == "children" || edge == "insights" || edge == "comments":
		return fail(errNoObject(strings.ToLower(c.method), id))
	}
	return fail(errNoField(edge, "IGMedia"))
}
