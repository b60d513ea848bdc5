package metatest

import (
	"hash/fnv"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Post is something published on a Page through the emulator.
type Post struct {
	ID          string // the Page post id, "{page-id}_{n}"
	PageID      string
	Type        string // "status", "link", "photo" or "video"
	Message     string
	Link        string
	MediaURL    string // url / file_url of a photo or video; "" for uploads
	ObjectID    string // the photo or video id
	Published   bool
	CreatedTime time.Time
}

type post struct {
	Post
	isObject bool // a photo or video node rather than the Page post
}

// Posts returns what the Page published through the emulator, newest first.
func (s *Server) Posts(pageID string) []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Post
	for i := len(s.postOrder) - 1; i >= 0; i-- {
		p := s.posts[s.postOrder[i]]
		if p != nil && !p.isObject && p.PageID == pageID {
			out = append(out, p.Post)
		}
	}
	return out
}

const timeLayout = "2006-01-02T15:04:05-0700"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func categoryID(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return strconv.FormatUint(uint64(h.Sum32()%9000+1000), 10)
}

// pageNode is every field of a Page the caller may read.
func (s *Server) pageNode(c *call, p *page) map[string]any {
	node := map[string]any{
		"id":              p.ID,
		"name":            p.Name,
		"category":        p.Category,
		"category_list":   []map[string]string{{"id": categoryID(p.Category), "name": p.Category}},
		"followers_count": p.FollowersCount,
		"fan_count":       p.FanCount,
		"link":            "https://www.facebook.com/" + p.ID,
	}
	hasRole := (c.tok.kind == kindPage && c.tok.pageID == p.ID) ||
		(c.tok.kind == kindUser && len(p.Tasks[c.tok.userID]) > 0)
	if igID, linked := s.igByPage[p.ID]; linked && hasRole {
		node["instagram_business_account"] = s.igNode(s.igAccounts[igID])
	}
	if c.tok.kind == kindUser && len(p.Tasks[c.tok.userID]) > 0 && c.grant.has("pages_show_list") {
		node["access_token"] = s.issuePageToken(c.tok, p.ID).value
		node["tasks"] = p.Tasks[c.tok.userID]
	}
	return node
}

var pageFields = []string{
	"id", "name", "category", "category_list", "followers_count", "fan_count", "link",
	"instagram_business_account", "access_token", "tasks",
}

// handleAccounts serves /{user}/accounts: the Pages the person has a role
// on, each with a Page access token. Without pages_show_list the list is
// empty.
func (s *Server) handleAccounts(c *call, userID string) result {
	if c.tok.kind != kindUser || c.tok.userID != userID {
		return fail(errNoObject("get", userID))
	}
	var items []map[string]any
	if c.grant.has("pages_show_list") {
		var ids []string
		for id, p := range s.pages {
			if len(p.Tasks[userID]) > 0 {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			items = append(items, s.pageNode(c, s.pages[id]))
		}
	}
	items, gerr := filterItems(items, c.param("fields"), "Page",
		[]string{"access_token", "category", "category_list", "name", "id", "tasks"}, pageFields)
	if gerr != nil {
		return fail(gerr)
	}
	return ok(s.paginate(c, items))
}

func (s *Server) routePage(c *call, id, edge, sub string) result {
	p := s.pages[id]
	switch edge {
	case "":
		if c.method != http.MethodGet {
			return fail(errNoObject(strings.ToLower(c.method), id))
		}
		return s.fields(c, s.pageNode(c, p), "Page", []string{"id", "name"}, pageFields)
	case "feed", "posts", "published_posts":
		switch {
		case c.method == http.MethodGet:
			return s.listFeed(c, p)
		case c.method == http.MethodPost && edge == "feed":
			return s.publish(c, p, "feed")
		}
	case "photos", "videos":
		if c.method == http.MethodPost {
			return s.publish(c, p, edge)
		}
	case "insights":
		if c.method == http.MethodGet {
			return s.insights(c, id, "page", sub)
		}
	case "messages":
		if c.method == http.MethodPost {
			return s.sendMessage(c, p)
		}
	case "subscribed_apps":
		return s.subscribedApps(c, p)
	default:
		return fail(errNoField(edge, "Page"))
	}
	return fail(errNoObject(strings.ToLower(c.method), id))
}

// canPublish checks the Page token, permissions and task for publishing.
func (s *Server) canPublish(c *call, p *page) *graphError {
	const msg = "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin with sufficient administrative permission"
	if c.tok.kind != kindPage || c.tok.pageID != p.ID {
		return errPermission(200, msg)
	}
	if !c.grant.has("pages_manage_posts", "pages_read_engagement") {
		return errPermission(200, msg)
	}
	if !hasTask(p, c.tok.userID, TaskCreateContent, TaskManage, TaskModerate) {
		return errPermission(200, msg)
	}
	return nil
}

func (s *Server) publish(c *call, p *page, edge string) result {
	if gerr := s.canPublish(c, p); gerr != nil {
		return fail(gerr)
	}
	published := c.param("published") != "false"
	now := s.nowLocked()
	np := &post{Post: Post{PageID: p.ID, Published: published, CreatedTime: now, Message: c.param("message")}}
	var objectID string
	switch edge {
	case "feed":
		np.Link = c.param("link")
		if np.Message == "" && np.Link == "" {
			return fail(errParam("(#100) Missing message or attachment"))
		}
		if np.Link != "" {
			u, err := url.Parse(np.Link)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fail(newErr(typeOAuth, 1609005, 0, "(#1609005) Error Posting Link"))
			}
			np.Type = "link"
		} else {
			np.Type = "status"
		}
		if last := s.lastPost(p.ID); last != nil && last.Type == np.Type &&
			last.Message == np.Message && last.Link == np.Link && now.Sub(last.CreatedTime) < 24*time.Hour {
			return fail(newErr(typeOAuth, 506, 0, "(#506) Duplicate status message"))
		}
	case "photos":
		np.Type = "photo"
		np.MediaURL = c.param("url")
		if np.MediaURL == "" && c.files["source"] == "" {
			return fail(newErr(typeOAuth, 324, 0, "(#324) Requires upload file"))
		}
		objectID = s.nextID(500000000000000)
	case "videos":
		if !c.grant.has("publish_video") {
			return fail(errPermission(200, "(#200) The user hasn't authorized the application to perform this action"))
		}
		np.Type = "video"
		np.MediaURL = c.param("file_url")
		np.Message = c.param("description")
		if np.MediaURL == "" && c.files["source"] == "" {
			return fail(errParam("(#100) The parameter file_url or source is required"))
		}
		objectID = s.nextID(600000000000000)
	}
	np.ID = p.ID + "_" + s.nextID(100000000000000)
	np.ObjectID = objectID
	s.posts[np.ID] = np
	s.postOrder = append(s.postOrder, np.ID)
	if objectID == "" {
		return ok(map[string]any{"id": np.ID})
	}
	obj := &post{Post: np.Post, isObject: true}
	s.posts[objectID] = obj
	if edge == "videos" {
		return ok(map[string]any{"id": objectID})
	}
	if !published {
		return ok(map[string]any{"id": objectID})
	}
	return ok(map[string]any{"id": objectID, "post_id": np.ID})
}

func (s *Server) lastPost(pageID string) *post {
	for i := len(s.postOrder) - 1; i >= 0; i-- {
		if p := s.posts[s.postOrder[i]]; p != nil && !p.isObject && p.PageID == pageID {
			return p
		}
	}
	return nil
}

func (s *Server) postNode(p *post) map[string]any {
	pg := s.pages[p.PageID]
	node := map[string]any{
		"id":            p.ID,
		"created_time":  formatTime(p.CreatedTime),
		"from":          map[string]any{"id": pg.ID, "name": pg.Name},
		"permalink_url": "https://www.facebook.com/" + strings.ReplaceAll(p.ID, "_", "/posts/"),
		"is_published":  p.Published,
	}
	if p.isObject {
		node["id"] = p.ObjectID
		node["permalink_url"] = "https://www.facebook.com/" + p.ObjectID
		if p.Type == "video" {
			node["description"] = p.Message
		} else {
			node["name"] = p.Message
		}
		return node
	}
	if p.Message != "" {
		node["message"] = p.Message
	}
	if p.Link != "" {
		node["link"] = p.Link
	}
	return node
}

var postFields = []string{"id", "message", "created_time", "link", "from", "permalink_url", "is_published", "name", "description"}

func (s *Server) canReadPage(c *call, p *page) *graphError {
	mayRead := (c.tok.kind == kindPage && c.tok.pageID == p.ID) ||
		(c.tok.kind == kindUser && len(p.Tasks[c.tok.userID]) > 0)
	if !mayRead || !c.grant.has("pages_read_engagement") {
		return errPermission(10, "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' feature. Refer to https://developers.facebook.com/docs/apps/review/login-permissions#manage-pages and https://developers.facebook.com/docs/apps/review/feature#reference-PAGES_ACCESS for details.")
	}
	return nil
}

func (s *Server) listFeed(c *call, p *page) result {
	if c.tok.kind == kindApp {
		return fail(errPermission(10, "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' feature."))
	}
	if gerr := s.canReadPage(c, p); gerr != nil {
		return fail(gerr)
	}
	var items []map[string]any
	for i := len(s.postOrder) - 1; i >= 0; i-- {
		ps := s.posts[s.postOrder[i]]
		if ps == nil || ps.isObject || ps.PageID != p.ID || !ps.Published {
			continue
		}
		items = append(items, s.postNode(ps))
	}
	items, gerr := filterItems(items, c.param("fields"), "Post", []string{"created_time", "message", "id"}, postFields)
	if gerr != nil {
		return fail(gerr)
	}
	return ok(s.paginate(c, items))
}

func (s *Server) routePost(c *call, id, edge, sub string) result {
	ps := s.posts[id]
	p := s.pages[ps.PageID]
	switch edge {
	case "":
		switch c.method {
		case http.MethodGet:
			if c.tok.kind == kindApp {
				return fail(errNoObject("get", id))
			}
			if gerr := s.canReadPage(c, p); gerr != nil {
				return fail(gerr)
			}
			return s.fields(c, s.postNode(ps), "Post", []string{"created_time", "message", "id"}, postFields)
		case http.MethodDelete:
			if gerr := s.canPublish(c, p); gerr != nil {
				return fail(gerr)
			}
			delete(s.posts, id)
			if ps.isObject {
				for k, other := range s.posts {
					if !other.isObject && other.ObjectID == id {
						delete(s.posts, k)
					}
				}
			} else if ps.ObjectID != "" {
				delete(s.posts, ps.ObjectID)
			}
			return success()
		}
	case "insights":
		if c.method == http.MethodGet && !ps.isObject {
			return s.insights(c, id, "post", sub)
		}
	case "comments":
		switch {
		case sub != "" || ps.isObject:
		case c.method == http.MethodGet:
			return s.listComments(c, id, "", false)
		case c.method == http.MethodPost:
			return s.reply(c, id, nil)
		}
	default:
		return fail(errNoField(edge, "Post"))
	}
	return fail(errNoObject(strings.ToLower(c.method), id))
}
