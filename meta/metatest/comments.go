package metatest

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Comment is a comment on an Instagram media object or a Facebook Page
// post, or a reply to one.
type Comment struct {
	ID string // required
	// ObjectID is the Instagram media id or the Page post id commented on
	// (required).
	ObjectID string
	// ParentID is the comment this one answers ("" for a top-level
	// comment).
	ParentID string
	Text     string
	// FromID is the commenter's id (Instagram-scoped, or Page-scoped on
	// Facebook); Username their Instagram username or Facebook name.
	FromID, Username string
	Timestamp        time.Time // defaults to the emulator's now
	Hidden           bool
	LikeCount        int
}

type comment struct {
	Comment
	instagram bool
	deleted   bool
}

// AddComment registers a comment. The object must exist: an Instagram
// media object (AddMedia, or published) or a Page post published through
// the emulator.
func (s *Server) AddComment(cm Comment) error {
	if cm.ID == "" || strings.Contains(cm.ID, "/") {
		return invalid("AddComment: ID %q", cm.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ig.comments[cm.ID] != nil {
		return fmt.Errorf("metatest: AddComment %s: %w", cm.ID, ErrDuplicate)
	}
	c := &comment{Comment: cm}
	switch {
	case s.media[cm.ObjectID] != nil:
		c.instagram = true
	case s.posts[cm.ObjectID] != nil:
	default:
		return fmt.Errorf("metatest: AddComment %s: object %q: %w", cm.ID, cm.ObjectID, ErrNotFound)
	}
	if cm.ParentID != "" && s.ig.comments[cm.ParentID] == nil {
		return fmt.Errorf("metatest: AddComment %s: parent %q: %w", cm.ID, cm.ParentID, ErrNotFound)
	}
	if c.Timestamp.IsZero() {
		c.Timestamp = s.nowLocked()
	}
	s.ig.comments[cm.ID] = c
	s.ig.commentOrder = append(s.ig.commentOrder, cm.ID)
	return nil
}

// Comments returns the comments and replies on an object that were not
// deleted, oldest first, with their hidden state.
func (s *Server) Comments(objectID string) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, id := range s.ig.commentOrder {
		if c := s.ig.comments[id]; !c.deleted && c.ObjectID == objectID {
			out = append(out, c.Comment)
		}
	}
	return out
}

var igCommentFields = []string{"id", "text", "timestamp", "username", "from", "hidden", "like_count", "media", "parent_id", "replies"}

func (s *Server) igCommentNode(c *comment) map[string]any {
	n := map[string]any{
		"id": c.ID, "text": c.Text, "timestamp": formatTime(c.Timestamp), "username": c.Username,
		"from": map[string]any{"id": c.FromID, "username": c.Username}, "hidden": c.Hidden,
		"like_count": c.LikeCount, "media": map[string]any{"id": c.ObjectID},
	}
	if c.ParentID != "" {
		n["parent_id"] = c.ParentID
	}
	return n
}

var fbCommentFields = []string{"id", "message", "created_time", "from", "is_hidden", "like_count", "parent", "comment_count"}

func (s *Server) fbCommentNode(c *comment) map[string]any {
	n := map[string]any{
		"id": c.ID, "message": c.Text, "created_time": formatTime(c.Timestamp),
		"from": map[string]any{"id": c.FromID, "name": c.Username}, "is_hidden": c.Hidden, "like_count": c.LikeCount,
	}
	if c.ParentID != "" {
		n["parent"] = map[string]any{"id": c.ParentID}
	}
	return n
}

// canModerate checks the caller may read (write=false) or manage the
// comments of a media object or Page post.
func (s *Server) canModerate(c *call, cm *comment, objectID string, write bool) *graphError {
	if m := s.media[objectID]; m != nil {
		return s.canUseIG(c, m.OwnerID, "instagram_basic", "instagram_manage_comments", "pages_read_engagement")
	}
	ps := s.posts[objectID]
	if ps == nil {
		return errNoObject(strings.ToLower(c.method), objectID)
	}
	p := s.pages[ps.PageID]
	if c.tok.kind != kindPage || c.tok.pageID != p.ID {
		return errPageTokenRequired210()
	}
	need := []string{"pages_read_engagement", "pages_read_user_engagement"}
	if write {
		need = append(need, "pages_manage_engagement")
	}
	if !c.grant.has(need...) || !hasTask(p, c.tok.userID, TaskModerate, TaskManage) {
		return errPermission(200, "(#200) Requires pages_read_user_engagement and pages_manage_engagement permissions and the MODERATE task on the Page")
	}
	return nil
}

// listComments serves GET /{media-id}/comments, /{post-id}/comments and
// /{comment-id}/replies (Instagram) or /{comment-id}/comments (Facebook):
// top-level comments, or the replies of parentID.
func (s *Server) listComments(c *call, objectID, parentID string, instagram bool) result {
	if gerr := s.canModerate(c, nil, objectID, false); gerr != nil {
		return fail(gerr)
	}
	var items []map[string]any
	for _, id := range s.ig.commentOrder {
		cm := s.ig.comments[id]
		if cm.deleted || cm.ObjectID != objectID || cm.ParentID != parentID {
			continue
		}
		if instagram {
			items = append(items, s.igCommentNode(cm))
		} else {
			items = append(items, s.fbCommentNode(cm))
		}
	}
	var gerr *graphError
	if instagram {
		items, gerr = filterItems(items, c.param("fields"), "IGComment", []string{"id", "text", "timestamp"}, igCommentFields)
	} else {
		items, gerr = filterItems(items, c.param("fields"), "Comment", []string{"id", "message", "created_time"}, fbCommentFields)
	}
	if gerr != nil {
		return fail(gerr)
	}
	return ok(s.paginate(c, items))
}

// reply serves POST /{comment-id}/replies (Instagram) and
// /{comment-id}/comments (Facebook), and POST /{post-id}/comments.
func (s *Server) reply(c *call, objectID string, parent *comment) result {
	if gerr := s.canModerate(c, nil, objectID, true); gerr != nil {
		return fail(gerr)
	}
	msg := c.param("message")
	if msg == "" {
		return fail(errParam("(#100) The parameter message is required"))
	}
	parentID := ""
	if parent != nil {
		if parent.Hidden {
			return fail(errParam("(#100) You cannot reply to a hidden comment"))
		}
		parentID = parent.ID
		if parent.ParentID != "" {
			parentID = parent.ParentID // replies go to the top-level comment
		}
	}
	nc := &comment{Comment: Comment{ObjectID: objectID, ParentID: parentID, Text: msg, Timestamp: s.nowLocked()},
		instagram: s.media[objectID] != nil}
	if nc.instagram {
		a := s.igAccounts[s.media[objectID].OwnerID]
		nc.FromID, nc.Username = a.ID, a.Username
		nc.ID = s.nextID(17860000000000000)
	} else {
		p := s.pages[s.posts[objectID].PageID]
		nc.FromID, nc.Username = p.ID, p.Name
		nc.ID = objectID + "_" + s.nextID(1000)
	}
	s.ig.comments[nc.ID] = nc
	s.ig.commentOrder = append(s.ig.commentOrder, nc.ID)
	if m := s.media[objectID]; m != nil {
		m.CommentsCount++
	}
	return ok(map[string]any{"id": nc.ID})
}

// routeComment serves a comment node and its edges.
func (s *Server) routeComment(c *call, id, edge, sub string) result {
	cm := s.ig.comments[id]
	if cm.deleted || sub != "" {
		return fail(errNoObject(strings.ToLower(c.method), id))
	}
	switch {
	case edge == "" && c.method == http.MethodGet:
		if gerr := s.canModerate(c, cm, cm.ObjectID, false); gerr != nil {
			return fail(gerr)
		}
		if cm.instagram {
			return s.fields(c, s.igCommentNode(cm), "IGComment", []string{"id", "text", "timestamp"}, igCommentFields)
		}
		return s.fields(c, s.fbCommentNode(cm), "Comment", []string{"id", "message", "created_time"}, fbCommentFields)
	case edge == "" && c.method == http.MethodPost:
		if gerr := s.canModerate(c, cm, cm.ObjectID, true); gerr != nil {
			return fail(gerr)
		}
		name := "is_hidden"
		if cm.instagram {
			name = "hide"
		}
		switch c.param(name) {
		case "true":
			cm.Hidden = true
		case "false":
			cm.Hidden = false
		default:
			return fail(errParam(fmt.Sprintf("(#100) The parameter %s must be true or false", name)))
		}
		return success()
	case edge == "" && c.method == http.MethodDelete:
		if gerr := s.canModerate(c, cm, cm.ObjectID, true); gerr != nil {
			return fail(gerr)
		}
		cm.deleted = true
		for _, other := range s.ig.comments {
			if other.ParentID == id {
				other.deleted = true
			}
		}
		if m := s.media[cm.ObjectID]; m != nil && m.CommentsCount > 0 {
			m.CommentsCount--
		}
		return success()
	case (cm.instagram && edge == "replies") || (!cm.instagram && edge == "comments"):
		switch c.method {
		case http.MethodGet:
			return s.listComments(c, cm.ObjectID, id, cm.instagram)
		case http.MethodPost:
			return s.reply(c, cm.ObjectID, cm)
		}
	}
	if cm.instagram {
		return fail(errNoField(edge, "IGComment"))
	}
	return fail(errNoField(edge, "Comment"))
}
