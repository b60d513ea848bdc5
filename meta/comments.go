package meta

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
)

// CommentsService reads and moderates the comments on Instagram media
// (Client.InstagramComments) or on a Facebook Page's posts
// (Client.PageComments): list, reply, hide, unhide and delete.
//
// Comments are personal data of their authors (their text, their
// Instagram username or Facebook name and scoped id). The service returns
// them to the caller and stores none of them; an application that keeps
// them takes on their retention and data-subject duties. Replies, hides
// and deletions happen at the user's instruction and are audited without
// their text (meta.comment.reply, meta.comment.hide, meta.comment.unhide,
// meta.comment.delete).
type CommentsService struct {
	c         *Client
	instagram bool
}

// Comment is a comment on Instagram media or a Page post, or a reply.
type Comment struct {
	ID string `json:"id"`
	// ObjectID is the media or post commented on, when Meta names it.
	ObjectID string `json:"object_id,omitempty"`
	// ParentID is the comment this one answers ("" at the top level).
	ParentID string `json:"parent_id,omitempty"`
	Text     string `json:"text"`
	// FromID is the author's id (Instagram-scoped, or Page-scoped on
	// Facebook); Username their Instagram username or Facebook name.
	FromID    string    `json:"from_id,omitempty"`
	Username  string    `json:"username,omitempty"`
	Timestamp Timestamp `json:"timestamp"`
	Hidden    bool      `json:"hidden"`
	LikeCount int64     `json:"like_count"`
}

type wireIGComment struct {
	ID        ID        `json:"id"`
	Text      string    `json:"text"`
	Timestamp Timestamp `json:"timestamp"`
	Username  string    `json:"username"`
	From      *struct {
		ID       ID     `json:"id"`
		Username string `json:"username"`
	} `json:"from"`
	Hidden    Bool `json:"hidden"`
	LikeCount Int  `json:"like_count"`
	Media     *struct {
		ID ID `json:"id"`
	} `json:"media"`
	ParentID ID `json:"parent_id"`
}

func (w wireIGComment) comment() Comment {
	c := Comment{ID: string(w.ID), Text: w.Text, Timestamp: w.Timestamp, Username: w.Username,
		Hidden: bool(w.Hidden), LikeCount: int64(w.LikeCount), ParentID: string(w.ParentID)}
	if w.From != nil {
		c.FromID = string(w.From.ID)
		if c.Username == "" {
			c.Username = w.From.Username
		}
	}
	if w.Media != nil {
		c.ObjectID = string(w.Media.ID)
	}
	return c
}

type wireFBComment struct {
	ID          ID        `json:"id"`
	Message     string    `json:"message"`
	CreatedTime Timestamp `json:"created_time"`
	From        *struct {
		ID   ID     `json:"id"`
		Name string `json:"name"`
	} `json:"from"`
	IsHidden  Bool `json:"is_hidden"`
	LikeCount Int  `json:"like_count"`
	Parent    *struct {
		ID ID `json:"id"`
	} `json:"parent"`
}

func (w wireFBComment) comment() Comment {
	c := Comment{ID: string(w.ID), Text: w.Message, Timestamp: w.CreatedTime, Hidden: bool(w.IsHidden), LikeCount: int64(w.LikeCount)}
	if w.From != nil {
		c.FromID, c.Username = string(w.From.ID), w.From.Name
	}
	if w.Parent != nil {
		c.ParentID = string(w.Parent.ID)
	}
	return c
}

const (
	igCommentFields = "id,text,timestamp,username,from{id,username},hidden,like_count,media{id},parent_id"
	fbCommentFields = "id,message,created_time,from{id,name},is_hidden,like_count,parent{id}"
)

// CommentList is one page of comments and the cursor of the next (empty
// at the end).
type CommentList struct {
	Comments []Comment
	Next     string
}

// readPerms and writePerms are the permissions of reading and of
// moderating comments.
func (s *CommentsService) readPerms() []string {
	if s.instagram {
		return []string{PermInstagramBasic, PermInstagramManageComments, PermPagesReadEngagement}
	}
	return []string{PermPagesReadEngagement, PermPagesReadUserEngagement}
}

func (s *CommentsService) writePerms() []string {
	if s.instagram {
		return s.readPerms()
	}
	return []string{PermPagesReadEngagement, PermPagesReadUserEngagement, PermPagesManageEngagement}
}

// List reads one page of the top-level comments on a media object
// (Instagram) or a Page post (Facebook, with the Page's connection).
// Instagram needs instagram_basic, instagram_manage_comments and
// pages_read_engagement (instagram_business_basic and
// instagram_business_manage_comments with Instagram Login); Pages need
// pages_read_engagement and pages_read_user_engagement.
func (s *CommentsService) List(ctx context.Context, objectID string, opts ListOptions) (*CommentList, *Response, error) {
	if err := s.c.require(s.readPerms()...); err != nil {
		return nil, nil, err
	}
	if err := checkID(objectID); err != nil {
		return nil, nil, err
	}
	return s.list(ctx, "/"+objectID+"/comments", objectID, opts)
}

// Replies reads one page of the replies to a comment.
func (s *CommentsService) Replies(ctx context.Context, commentID string, opts ListOptions) (*CommentList, *Response, error) {
	if err := s.c.require(s.readPerms()...); err != nil {
		return nil, nil, err
	}
	if err := checkID(commentID); err != nil {
		return nil, nil, err
	}
	edge := "/comments"
	if s.instagram {
		edge = "/replies"
	}
	l, resp, err := s.list(ctx, "/"+commentID+edge, "", opts)
	if l != nil {
		for i := range l.Comments {
			if l.Comments[i].ParentID == "" {
				l.Comments[i].ParentID = commentID
			}
		}
	}
	return l, resp, err
}

func (s *CommentsService) list(ctx context.Context, path, objectID string, opts ListOptions) (*CommentList, *Response, error) {
	fields := fbCommentFields
	if s.instagram {
		fields = igCommentFields
	}
	q := opts.query(url.Values{"fields": {fields}})
	out := &CommentList{}
	var resp *Response
	var next, after string
	var err error
	if s.instagram {
		var l list[wireIGComment]
		resp, err = s.c.get(ctx, path, q, &l, s.readPerms()...)
		for _, w := range l.Data {
			out.Comments = append(out.Comments, w.comment())
		}
		next, after = l.Paging.Next, l.Paging.Cursors.After
	} else {
		var l list[wireFBComment]
		resp, err = s.c.get(ctx, path, q, &l, s.readPerms()...)
		for _, w := range l.Data {
			out.Comments = append(out.Comments, w.comment())
		}
		next, after = l.Paging.Next, l.Paging.Cursors.After
	}
	if err != nil {
		return nil, resp, err
	}
	for i := range out.Comments {
		if out.Comments[i].ObjectID == "" {
			out.Comments[i].ObjectID = objectID
		}
	}
	if next != "" {
		out.Next = after
	}
	return out, resp, nil
}

// All iterates over the top-level comments List returns from
// opts.Cursor on, fetching pages of opts.Limit as needed. Iteration stops
// at the first error, which is yielded.
func (s *CommentsService) All(ctx context.Context, objectID string, opts ListOptions) iter.Seq2[Comment, error] {
	return pages(opts.Cursor, func(after string) ([]Comment, string, error) {
		l, _, err := s.List(ctx, objectID, ListOptions{Limit: opts.Limit, Cursor: after})
		if err != nil {
			return nil, "", err
		}
		return l.Comments, l.Next, nil
	})
}

// Reply answers a comment as the account (Instagram: POST
// /{comment-id}/replies; Facebook: POST /{comment-id}/comments) and returns
// the reply's id. Meta adds a reply to a reply to the top-level comment
// and refuses replies to hidden comments. It needs the moderation
// permissions (pages_manage_engagement on Pages).
func (s *CommentsService) Reply(ctx context.Context, commentID, message string) (*Comment, *Response, error) {
	if err := s.c.require(s.writePerms()...); err != nil {
		return nil, nil, err
	}
	if err := checkID(commentID); err != nil {
		return nil, nil, err
	}
	if message == "" {
		return nil, nil, fmt.Errorf("%w: Reply: empty message", ErrConfig)
	}
	edge := "/comments"
	if s.instagram {
		edge = "/replies"
	}
	var ans struct {
		ID ID `json:"id"`
	}
	resp, err := s.c.post(ctx, "/"+commentID+edge, url.Values{"message": {message}}, &ans, s.writePerms()...)
	if err != nil {
		return nil, resp, err
	}
	c := &Comment{ID: string(ans.ID), ParentID: commentID, Text: message}
	return c, resp, s.audit(ctx, "meta.comment.reply", commentID, c.ID)
}

// Hide hides a comment from everyone but its author and the account.
func (s *CommentsService) Hide(ctx context.Context, commentID string) (*Response, error) {
	return s.setHidden(ctx, commentID, "true", "meta.comment.hide")
}

// Unhide shows a hidden comment again.
func (s *CommentsService) Unhide(ctx context.Context, commentID string) (*Response, error) {
	return s.setHidden(ctx, commentID, "false", "meta.comment.unhide")
}

func (s *CommentsService) setHidden(ctx context.Context, commentID, value, action string) (*Response, error) {
	if err := s.c.require(s.writePerms()...); err != nil {
		return nil, err
	}
	if err := checkID(commentID); err != nil {
		return nil, err
	}
	name := "is_hidden"
	if s.instagram {
		name = "hide"
	}
	var ok struct {
		Success Bool `json:"success"`
	}
	resp, err := s.c.post(ctx, "/"+commentID, url.Values{name: {value}}, &ok, s.writePerms()...)
	if err != nil {
		return resp, err
	}
	return resp, s.audit(ctx, action, commentID, "")
}

// Delete deletes a comment (and, with it, its replies).
func (s *CommentsService) Delete(ctx context.Context, commentID string) (*Response, error) {
	if err := s.c.require(s.writePerms()...); err != nil {
		return nil, err
	}
	if err := checkID(commentID); err != nil {
		return nil, err
	}
	var ok struct {
		Success Bool `json:"success"`
	}
	resp, err := s.c.do(ctx, request{method: http.MethodDelete, path: "/" + commentID, need: s.writePerms(), idempotent: true}, &ok)
	if err != nil {
		return resp, err
	}
	return resp, s.audit(ctx, "meta.comment.delete", commentID, "")
}

func (s *CommentsService) audit(ctx context.Context, action, commentID, replyID string) error {
	surface := "page"
	if s.instagram {
		surface = "instagram"
	}
	m := map[string]string{"comment_id": commentID, "surface": surface}
	if replyID != "" {
		m["reply_id"] = replyID
	}
	if err := s.c.session.Audit(ctx, action, m); err != nil {
		return fmt.Errorf("meta: audit %s: %w", action, err)
	}
	return nil
}
