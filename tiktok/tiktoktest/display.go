package tiktoktest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// userFieldScopes maps each /v2/user/info/ field to the scope that unlocks
// it (https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info).
var userFieldScopes = map[string]string{
	"open_id":           "user.info.basic",
	"union_id":          "user.info.basic",
	"avatar_url":        "user.info.basic",
	"avatar_url_100":    "user.info.basic",
	"avatar_large_url":  "user.info.basic",
	"display_name":      "user.info.basic",
	"bio_description":   "user.info.profile",
	"profile_deep_link": "user.info.profile",
	"is_verified":       "user.info.profile",
	"username":          "user.info.profile",
	"follower_count":    "user.info.stats",
	"following_count":   "user.info.stats",
	"likes_count":       "user.info.stats",
	"video_count":       "user.info.stats",
}

// videoFields are the fields of the Video Object
// (https://developers.tiktok.com/doc/tiktok-api-v2-video-object).
var videoFields = []string{
	"id", "create_time", "cover_image_url", "share_url", "video_description",
	"duration", "height", "width", "title", "embed_html", "embed_link",
	"like_count", "comment_count", "share_count", "view_count",
}

// coverTTL is the documented lifetime of cover_image_url.
const coverTTL = 6 * time.Hour

func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// authLocked checks the bearer token and the rate limit, and that the
// token's grant holds one of scopes (none: no scope needed). On failure it
// writes the documented error and returns nil.
func (s *Server) authLocked(w http.ResponseWriter, r *http.Request, now time.Time, scopes ...string) *grant {
	tok := bearer(r)
	at, ok := s.access[tok]
	if tok == "" || !ok || at.g.revoked || !now.Before(at.expires) {
		s.writeAPIError(w, http.StatusUnauthorized, codeAccessTokenInvalid, "The access token is invalid or not found in the request.")
		return nil
	}
	if _, ok := s.users[at.g.openID]; !ok {
		s.writeAPIError(w, http.StatusUnauthorized, codeAccessTokenInvalid, "The access token is invalid or not found in the request.")
		return nil
	}
	if !s.allow(r.URL.Path, tok, now) {
		s.writeAPIError(w, http.StatusTooManyRequests, codeRateLimitExceeded, "The API rate limit was exceeded. Please try again later.")
		return nil
	}
	if len(scopes) > 0 && !slices.ContainsFunc(scopes, func(sc string) bool { return slices.Contains(at.g.scopes, sc) }) {
		s.writeAPIError(w, http.StatusUnauthorized, codeScopeNotAuthorized, "The user did not authorize the scope required for completing this request.")
		return nil
	}
	return at.g
}

// jsonEndpoint checks method and content type of a POST+JSON endpoint.
func (s *Server) jsonEndpoint(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		s.methodNotAllowed(w, http.MethodPost, false)
		return false
	}
	if !isJSON(r) {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "Content-Type must be application/json.")
		return false
	}
	return true
}

// decodeBody decodes a JSON body into v; an empty body leaves v alone.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

// parseFields splits the fields query parameter and checks each name.
func parseFields(r *http.Request, known func(string) bool) ([]string, string) {
	raw := r.URL.Query().Get("fields")
	if raw == "" {
		return nil, "fields is required."
	}
	var out []string
	for _, f := range strings.Split(raw, ",") {
		if f == "" {
			continue
		}
		if !known(f) {
			return nil, "Invalid field: " + f + "."
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, "fields is required."
	}
	return out, ""
}

func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.methodNotAllowed(w, http.MethodGet, false)
		return
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.authLocked(w, r, now)
	if g == nil {
		return
	}
	fields, msg := parseFields(r, func(f string) bool { _, ok := userFieldScopes[f]; return ok })
	if msg != "" {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, msg)
		return
	}
	for _, f := range fields {
		if !slices.Contains(g.scopes, userFieldScopes[f]) {
			s.writeAPIError(w, http.StatusUnauthorized, codeScopeNotAuthorized,
				"The user did not authorize the scope required for completing this request: "+userFieldScopes[f]+" for field "+f+".")
			return
		}
	}
	s.settleLocked(now)
	u := s.users[g.openID]
	all := map[string]any{
		"open_id":           u.OpenID,
		"union_id":          u.UnionID,
		"avatar_url":        u.AvatarURL,
		"avatar_url_100":    u.AvatarURL100,
		"avatar_large_url":  u.AvatarLargeURL,
		"display_name":      u.DisplayName,
		"bio_description":   u.BioDescription,
		"profile_deep_link": u.ProfileDeepLink,
		"is_verified":       u.IsVerified,
		"username":          u.Username,
		"follower_count":    u.FollowerCount,
		"following_count":   u.FollowingCount,
		"likes_count":       u.LikesCount,
		"video_count":       u.videoCount(),
	}
	user := map[string]any{}
	for _, f := range fields {
		user[f] = all[f]
	}
	s.writeAPIData(w, map[string]any{"user": user})
}

func (u *userState) videoCount() int64 {
	if u.VideoCount != 0 {
		return u.VideoCount
	}
	var n int64
	for _, v := range u.Videos {
		if !v.Private {
			n++
		}
	}
	return n
}

// publicVideos returns the user's public videos, newest first.
func (u *userState) publicVideos() []Video {
	var out []Video
	for _, v := range u.Videos {
		if !v.Private {
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreateTime.Equal(out[j].CreateTime) {
			return out[i].CreateTime.After(out[j].CreateTime)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

func videoJSON(v Video, fields []string, now time.Time) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		if slices.Contains(v.Omit, f) {
			continue
		}
		switch f {
		case "id":
			out[f] = v.ID
		case "create_time":
			out[f] = v.CreateTime.Unix()
		case "cover_image_url":
			out[f] = coverURL(v.CoverImageURL, now)
		case "share_url":
			out[f] = v.ShareURL
		case "video_description":
			out[f] = v.VideoDescription
		case "duration":
			out[f] = v.Duration
		case "height":
			out[f] = v.Height
		case "width":
			out[f] = v.Width
		case "title":
			out[f] = v.Title
		case "embed_html":
			out[f] = v.EmbedHTML
		case "embed_link":
			out[f] = v.EmbedLink
		case "like_count":
			out[f] = v.LikeCount
		case "comment_count":
			out[f] = v.CommentCount
		case "share_count":
			out[f] = v.ShareCount
		case "view_count":
			out[f] = v.ViewCount
		}
	}
	return out
}

// coverURL stamps a cover URL with its expiry, like TikTok's signed CDN
// URLs.
func coverURL(raw string, now time.Time) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("x-expires", strconv.FormatInt(now.Add(coverTTL).Unix(), 10))
	u.RawQuery = q.Encode()
	return u.String()
}

func knownVideoField(f string) bool { return slices.Contains(videoFields, f) }

func (s *Server) handleVideoList(w http.ResponseWriter, r *http.Request) {
	if !s.jsonEndpoint(w, r) {
		return
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.authLocked(w, r, now, "video.list")
	if g == nil {
		return
	}
	fields, msg := parseFields(r, knownVideoField)
	if msg != "" {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, msg)
		return
	}
	var body struct {
		Cursor   *int64 `json:"cursor"`
		MaxCount *int32 `json:"max_count"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "The request body is not valid JSON for this endpoint.")
		return
	}
	max := int32(10)
	if body.MaxCount != nil {
		max = *body.MaxCount
		if max < 1 || max > 20 {
			s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "max_count must be between 1 and 20.")
			return
		}
	}
	var cursor int64
	if body.Cursor != nil {
		cursor = *body.Cursor
		if cursor < 0 {
			s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "cursor must not be negative.")
			return
		}
	}
	s.settleLocked(now)
	all := s.users[g.openID].publicVideos()
	var page []Video
	rest := 0
	for _, v := range all {
		if cursor > 0 && v.CreateTime.UnixMilli() >= cursor {
			continue
		}
		if len(page) < int(max) {
			page = append(page, v)
		} else {
			rest++
		}
	}
	videos := make([]map[string]any, 0, len(page))
	for _, v := range page {
		videos = append(videos, videoJSON(v, fields, now))
	}
	next := cursor
	if len(page) > 0 {
		next = page[len(page)-1].CreateTime.UnixMilli()
	}
	s.writeAPIData(w, map[string]any{"videos": videos, "cursor": next, "has_more": rest > 0})
}

func (s *Server) handleVideoQuery(w http.ResponseWriter, r *http.Request) {
	if !s.jsonEndpoint(w, r) {
		return
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.authLocked(w, r, now, "video.list")
	if g == nil {
		return
	}
	fields, msg := parseFields(r, knownVideoField)
	if msg != "" {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, msg)
		return
	}
	var body struct {
		Filters *struct {
			VideoIDs []string `json:"video_ids"`
		} `json:"filters"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "The request body is not valid JSON for this endpoint.")
		return
	}
	if body.Filters == nil || len(body.Filters.VideoIDs) == 0 {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "filters.video_ids is required.")
		return
	}
	if len(body.Filters.VideoIDs) > 20 {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "filters.video_ids takes at most 20 ids.")
		return
	}
	s.settleLocked(now)
	public := s.users[g.openID].publicVideos()
	videos := []map[string]any{}
	var seen []string
	for _, id := range body.Filters.VideoIDs {
		if slices.Contains(seen, id) {
			continue
		}
		seen = append(seen, id)
		for _, v := range public {
			if v.ID == id {
				videos = append(videos, videoJSON(v, fields, now))
				break
			}
		}
	}
	s.writeAPIData(w, map[string]any{"videos": videos})
}
