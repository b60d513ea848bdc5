package tiktoktest

import (
	"crypto/subtle"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// PublishStatus is the status reported by /v2/post/publish/status/fetch/.
type PublishStatus string

// Documented publish statuses.
const (
	StatusProcessingUpload   PublishStatus = "PROCESSING_UPLOAD"
	StatusProcessingDownload PublishStatus = "PROCESSING_DOWNLOAD"
	StatusSendToUserInbox    PublishStatus = "SEND_TO_USER_INBOX"
	StatusPublishComplete    PublishStatus = "PUBLISH_COMPLETE"
	StatusFailed             PublishStatus = "FAILED"
)

// PublishTimings drives a publish through its statuses on the server clock.
// A zero duration makes that stage instant.
type PublishTimings struct {
	// Download is how long a PULL_FROM_URL download takes.
	Download time.Duration
	// Processing follows the transfer; the status stays
	// PROCESSING_UPLOAD/PROCESSING_DOWNLOAD meanwhile. After it a Direct
	// Post is PUBLISH_COMPLETE and an inbox upload SEND_TO_USER_INBOX.
	Processing time.Duration
	// Moderation follows processing for PUBLIC_TO_EVERYONE Direct Posts;
	// after it the post id is listed in publicaly_available_post_id and the
	// video appears in the Display API.
	Moderation time.Duration
}

// DefaultPublishTimings are roughly what TikTok documents: half a minute of
// processing, moderation "usually within one minute".
func DefaultPublishTimings() PublishTimings {
	return PublishTimings{Download: 10 * time.Second, Processing: 30 * time.Second, Moderation: time.Minute}
}

// WithPublishTimings replaces DefaultPublishTimings. Negative durations are
// refused.
func WithPublishTimings(t PublishTimings) Option {
	return func(c *config) error {
		if t.Download < 0 || t.Processing < 0 || t.Moderation < 0 {
			return fmt.Errorf("tiktoktest: WithPublishTimings: negative duration in %+v", t)
		}
		c.timings = t
		return nil
	}
}

// UploadLimits are the FILE_UPLOAD chunk rules.
type UploadLimits struct {
	// MinChunk is the smallest chunk; a smaller video is sent whole.
	MinChunk int64
	// MaxChunk is the largest chunk except the last.
	MaxChunk int64
	// MaxFinalChunk bounds the last chunk, which absorbs the remainder.
	MaxFinalChunk int64
	// MaxChunks bounds total_chunk_count.
	MaxChunks int64
	// MaxVideo bounds video_size.
	MaxVideo int64
}

// DocumentedUploadLimits are the media transfer guide's rules: chunks of 5
// to 64 MB (MB = 2^20 bytes, as its "4 MB = 4,194,304 bytes" example
// shows), a final chunk up to 128 MB, 1 to 1000 chunks, videos up to 4 GB.
func DocumentedUploadLimits() UploadLimits {
	const mb = 1 << 20
	return UploadLimits{MinChunk: 5 * mb, MaxChunk: 64 * mb, MaxFinalChunk: 128 * mb, MaxChunks: 1000, MaxVideo: 4 << 30}
}

// WithUploadLimits replaces DocumentedUploadLimits, for example to test a
// chunker with small files. The limits must be positive and ordered.
func WithUploadLimits(l UploadLimits) Option {
	return func(c *config) error {
		if l.MinChunk < 1 || l.MaxChunk < l.MinChunk || l.MaxFinalChunk < l.MaxChunk || l.MaxChunks < 1 || l.MaxVideo < 1 {
			return fmt.Errorf("tiktoktest: WithUploadLimits: inconsistent limits %+v", l)
		}
		c.limits = l
		return nil
	}
}

// Publish is a snapshot of a publishing task.
type Publish struct {
	ID        string
	ClientKey string
	OpenID    string
	// Inbox is true for /inbox/video/init/ (upload as draft).
	Inbox        bool
	Source       string // FILE_UPLOAD or PULL_FROM_URL
	VideoURL     string
	VideoSize    int64
	ChunkSize    int64
	ChunkCount   int64
	PrivacyLevel string
	Title        string
	Status       PublishStatus
	FailReason   string
	// Data holds the bytes uploaded so far.
	Data    []byte
	PostIDs []int64
}

type postInfo struct {
	PrivacyLevel          string `json:"privacy_level"`
	Title                 string `json:"title"`
	DisableDuet           bool   `json:"disable_duet"`
	DisableStitch         bool   `json:"disable_stitch"`
	DisableComment        bool   `json:"disable_comment"`
	VideoCoverTimestampMs int32  `json:"video_cover_timestamp_ms"`
	BrandContentToggle    bool   `json:"brand_content_toggle"`
	BrandOrganicToggle    bool   `json:"brand_organic_toggle"`
	IsAIGC                bool   `json:"is_aigc"`
}

type sourceInfo struct {
	Source          string `json:"source"`
	VideoURL        string `json:"video_url"`
	VideoSize       int64  `json:"video_size"`
	ChunkSize       int64  `json:"chunk_size"`
	TotalChunkCount int64  `json:"total_chunk_count"`
}

type publish struct {
	id            string
	clientKey     string
	openID        string
	inbox         bool
	source        string
	post          postInfo
	videoURL      string
	videoSize     int64
	chunkSize     int64
	chunkCount    int64
	uploadID      string
	uploadToken   string
	uploadExpires time.Time
	data          []byte
	createdAt     time.Time
	uploadedAt    time.Time // FILE_UPLOAD: when the last chunk arrived
	failReason    string
	postedAt      time.Time // inbox: when the user posted the draft
	postID        int64
	videoAdded    bool
}

const (
	sourceFile = "FILE_UPLOAD"
	sourcePull = "PULL_FROM_URL"
)

// transferredAt is when the media finished arriving; ok is false while it
// has not.
func (s *Server) transferredAt(p *publish, now time.Time) (time.Time, bool) {
	if p.source == sourcePull {
		t := p.createdAt.Add(s.cfg.timings.Download)
		return t, !now.Before(t)
	}
	return p.uploadedAt, !p.uploadedAt.IsZero()
}

func (s *Server) statusLocked(p *publish, now time.Time) PublishStatus {
	if p.failReason != "" {
		return StatusFailed
	}
	processing := StatusProcessingUpload
	if p.source == sourcePull {
		processing = StatusProcessingDownload
	}
	t, ok := s.transferredAt(p, now)
	if !ok || now.Before(t.Add(s.cfg.timings.Processing)) {
		return processing
	}
	if p.inbox && p.postedAt.IsZero() {
		return StatusSendToUserInbox
	}
	return StatusPublishComplete
}

// publicAt is when the post becomes publicly available; ok is false if it
// never does or its time is unknown yet.
func (s *Server) publicAt(p *publish, now time.Time) (time.Time, bool) {
	if p.failReason != "" {
		return time.Time{}, false
	}
	if p.inbox {
		return p.postedAt, !p.postedAt.IsZero()
	}
	if p.post.PrivacyLevel != "PUBLIC_TO_EVERYONE" {
		return time.Time{}, false
	}
	t, ok := s.transferredAt(p, now)
	if !ok {
		return time.Time{}, false
	}
	return t.Add(s.cfg.timings.Processing + s.cfg.timings.Moderation), true
}

func (s *Server) postIDsLocked(p *publish, now time.Time) []int64 {
	if t, ok := s.publicAt(p, now); ok && !now.Before(t) {
		return []int64{p.postID}
	}
	return []int64{}
}

// settleLocked adds newly public posts to their creators' profiles.
func (s *Server) settleLocked(now time.Time) {
	for _, p := range s.publishes {
		if p.videoAdded {
			continue
		}
		t, ok := s.publicAt(p, now)
		if !ok || now.Before(t) {
			continue
		}
		u, ok := s.users[p.openID]
		if !ok {
			continue
		}
		p.videoAdded = true
		u.Videos = append(u.Videos, Video{
			ID:         strconv.FormatInt(p.postID, 10),
			CreateTime: t,
			Title:      p.post.Title,
		})
	}
}

func (s *Server) snapshotLocked(p *publish, now time.Time) Publish {
	return Publish{
		ID:           p.id,
		ClientKey:    p.clientKey,
		OpenID:       p.openID,
		Inbox:        p.inbox,
		Source:       p.source,
		VideoURL:     p.videoURL,
		VideoSize:    p.videoSize,
		ChunkSize:    p.chunkSize,
		ChunkCount:   p.chunkCount,
		PrivacyLevel: p.post.PrivacyLevel,
		Title:        p.post.Title,
		Status:       s.statusLocked(p, now),
		FailReason:   p.failReason,
		Data:         slices.Clone(p.data),
		PostIDs:      s.postIDsLocked(p, now),
	}
}

// Publish returns a snapshot of a publishing task.
func (s *Server) Publish(publishID string) (Publish, error) {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.publishes[publishID]
	if !ok {
		return Publish{}, fmt.Errorf("%w: %s", ErrUnknownPublish, publishID)
	}
	s.settleLocked(now)
	return s.snapshotLocked(p, now), nil
}

// Publishes returns snapshots of every publishing task, oldest first.
func (s *Server) Publishes() []Publish {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked(now)
	ps := make([]*publish, 0, len(s.publishes))
	for _, p := range s.publishes {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].postID < ps[j].postID })
	out := make([]Publish, len(ps))
	for i, p := range ps {
		out[i] = s.snapshotLocked(p, now)
	}
	return out
}

// FailPublish makes a task FAILED with the given fail_reason (for example
// "file_format_check_failed" or "spam_risk_text"), as moderation or media
// checks would.
func (s *Server) FailPublish(publishID, reason string) error {
	if reason == "" {
		return fmt.Errorf("tiktoktest: FailPublish: empty reason")
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.publishes[publishID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownPublish, publishID)
	}
	if st := s.statusLocked(p, now); st == StatusPublishComplete || st == StatusFailed {
		return fmt.Errorf("tiktoktest: FailPublish: %s is already %s", publishID, st)
	}
	p.failReason = reason
	return nil
}

// PostFromInbox plays the creator who opens the inbox notification of an
// uploaded draft and posts it publicly: the task becomes PUBLISH_COMPLETE
// and its post id public.
func (s *Server) PostFromInbox(publishID string) error {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.publishes[publishID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownPublish, publishID)
	}
	if st := s.statusLocked(p, now); st != StatusSendToUserInbox {
		return fmt.Errorf("tiktoktest: PostFromInbox: %s is %s, not %s", publishID, st, StatusSendToUserInbox)
	}
	p.postedAt = now
	s.settleLocked(now)
	return nil
}

func privacyOptions(u *userState) []string {
	if u.Private {
		return []string{"FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"}
	}
	return []string{"PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"}
}

func (s *Server) handleCreatorInfo(w http.ResponseWriter, r *http.Request) {
	if !s.jsonEndpoint(w, r) {
		return
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.authLocked(w, r, now, "video.publish")
	if g == nil {
		return
	}
	u := s.users[g.openID]
	maxDur := u.MaxVideoPostDurationSec
	if maxDur == 0 {
		maxDur = 600
	}
	data := map[string]any{
		"creator_avatar_url":          stampExpiry(u.AvatarURL, now.Add(2*time.Hour)),
		"creator_username":            u.Username,
		"creator_nickname":            u.DisplayName,
		"privacy_level_options":       privacyOptions(u),
		"comment_disabled":            u.CommentDisabled,
		"duet_disabled":               u.Private || u.DuetDisabled,
		"stitch_disabled":             u.Private || u.StitchDisabled,
		"max_video_post_duration_sec": maxDur,
	}
	if u.PostingError != "" {
		// Documented as HTTP 200 "intentional".
		writeJSON(w, http.StatusOK, envelope{Data: data, Error: apiError{Code: u.PostingError, Message: postingMessage(u.PostingError), LogID: s.newLogID()}})
		return
	}
	s.writeAPIData(w, data)
}

func stampExpiry(raw string, at time.Time) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("x-expires", strconv.FormatInt(at.Unix(), 10))
	u.RawQuery = q.Encode()
	return u.String()
}

func postingMessage(code string) string {
	switch code {
	case PostingTooManyPosts:
		return "The daily post cap from the API is reached for the current user."
	case PostingUserBanned:
		return "The user is banned from making new posts."
	case PostingActiveUserCapHit:
		return "The daily quota for active publishing users from your client is reached."
	}
	return ""
}

// chunkError checks source_info against the chunk rules.
func chunkError(si sourceInfo, l UploadLimits) string {
	size, chunk, count := si.VideoSize, si.ChunkSize, si.TotalChunkCount
	switch {
	case size <= 0:
		return "video_size must be positive."
	case size > l.MaxVideo:
		return "video_size exceeds the maximum video size."
	case chunk <= 0 || count <= 0:
		return "The chunk size is invalid."
	case size < l.MinChunk:
		if chunk != size || count != 1 {
			return "The chunk size is invalid. A video smaller than the minimum chunk size is uploaded whole."
		}
		return ""
	case chunk < l.MinChunk || chunk > l.MaxChunk || chunk > size:
		return "The chunk size is invalid."
	case count != size/chunk:
		return "The total chunk count is invalid. It must be video_size / chunk_size rounded down."
	case count > l.MaxChunks:
		return "The total chunk count is invalid. It exceeds the maximum."
	case size-(count-1)*chunk > l.MaxFinalChunk:
		return "The chunk size is invalid. The final chunk is too large."
	}
	return ""
}

// verifiedURL reports whether the app owns raw's domain or URL prefix.
func verifiedURL(app *App, u *url.URL, raw string) bool {
	host := strings.ToLower(u.Hostname())
	for _, p := range app.VerifiedURLPrefixes {
		if strings.Contains(p, "://") {
			if strings.HasPrefix(raw, p) {
				return true
			}
			continue
		}
		d := strings.ToLower(p)
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// pendingSharesLocked counts the user's inbox uploads of the last 24 hours
// that the creator has not posted yet.
func (s *Server) pendingSharesLocked(openID string, now time.Time) int {
	n := 0
	for _, p := range s.publishes {
		if !p.inbox || p.openID != openID || now.Sub(p.createdAt) >= 24*time.Hour {
			continue
		}
		if st := s.statusLocked(p, now); st != StatusPublishComplete && st != StatusFailed {
			n++
		}
	}
	return n
}

func (s *Server) handleInit(w http.ResponseWriter, r *http.Request, inbox bool) {
	if !s.jsonEndpoint(w, r) {
		return
	}
	scope := "video.publish"
	if inbox {
		scope = "video.upload"
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.authLocked(w, r, now, scope)
	if g == nil {
		return
	}
	var body struct {
		PostInfo   *postInfo   `json:"post_info"`
		SourceInfo *sourceInfo `json:"source_info"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "The request body is not valid JSON for this endpoint.")
		return
	}
	bad := func(msg string) { s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, msg) }
	forbid := func(code, msg string) { s.writeAPIError(w, http.StatusForbidden, code, msg) }
	if body.SourceInfo == nil {
		bad("source_info is required.")
		return
	}
	si := *body.SourceInfo
	var pi postInfo
	if body.PostInfo != nil {
		pi = *body.PostInfo
	}
	if n := utf16Len(pi.Title); n > 2200 {
		bad(fmt.Sprintf("post_info.title is %d UTF-16 code units; the maximum is 2200.", n))
		return
	}
	var videoURL *url.URL
	switch si.Source {
	case sourceFile:
		if msg := chunkError(si, s.cfg.limits); msg != "" {
			bad(msg)
			return
		}
	case sourcePull:
		u, err := url.Parse(si.VideoURL)
		if si.VideoURL == "" || err != nil || !u.IsAbs() || u.Host == "" {
			bad("source_info.video_url is required and must be an absolute URL.")
			return
		}
		if u.Scheme != "https" {
			bad("source_info.video_url must use https.")
			return
		}
		videoURL = u
	default:
		bad("source_info.source must be FILE_UPLOAD or PULL_FROM_URL.")
		return
	}
	app := s.apps[g.clientKey]
	u := s.users[g.openID]
	if inbox {
		if u.PostingError == PostingUserBanned {
			forbid(u.PostingError, postingMessage(u.PostingError))
			return
		}
		if s.pendingSharesLocked(g.openID, now) >= 5 {
			forbid(codeTooManyPendingShare, "There may be at most 5 pending shares within any 24-hour period.")
			return
		}
	} else {
		if u.PostingError != "" {
			forbid(u.PostingError, postingMessage(u.PostingError))
			return
		}
		if pi.PrivacyLevel == "" || !slices.Contains(privacyOptions(u), pi.PrivacyLevel) {
			forbid(codePrivacyMismatch, "privacy_level is not specified or not among the privacy_level_options of the creator.")
			return
		}
		if app.Unaudited && !u.Private {
			forbid(codeUnauditedPrivateOnly, "Unaudited clients can only post to a private account.")
			return
		}
	}
	if videoURL != nil && !verifiedURL(app, videoURL, si.VideoURL) {
		forbid(codeURLOwnership, "The ownership of the video_url domain or URL prefix is not verified.")
		return
	}
	seq := s.nextSeq()
	kind := "v_pub_"
	if inbox {
		kind = "v_inbox_"
	}
	src := "file"
	if si.Source == sourcePull {
		src = "url"
	}
	p := &publish{
		id:         fmt.Sprintf("%s%s~v2-1.%d", kind, src, 7300000000000000000+seq),
		clientKey:  g.clientKey,
		openID:     g.openID,
		inbox:      inbox,
		source:     si.Source,
		post:       pi,
		videoURL:   si.VideoURL,
		videoSize:  si.VideoSize,
		chunkSize:  si.ChunkSize,
		chunkCount: si.TotalChunkCount,
		createdAt:  now,
		postID:     7300000000000000000 + seq,
	}
	data := map[string]any{"publish_id": p.id}
	if si.Source == sourceFile {
		p.uploadID = strconv.FormatInt(67890000+seq, 10)
		p.uploadToken = randomString(32)
		p.uploadExpires = now.Add(UploadURLLifetime)
		s.uploads[p.uploadID] = p
		data["upload_url"] = s.uploadURL + UploadPath + "?" + url.Values{"upload_id": {p.uploadID}, "upload_token": {p.uploadToken}}.Encode()
	}
	s.publishes[p.id] = p
	s.writeAPIData(w, data)
}

var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+)$`)

var uploadTypes = []string{"video/mp4", "video/quicktime", "video/webm"}

// handleUpload receives chunks on the upload listener. Errors are bare
// statuses, as documented for the upload host.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != UploadPath {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.URL.Query()
	p, ok := s.uploads[q.Get("upload_id")]
	if !ok || subtle.ConstantTimeCompare([]byte(p.uploadToken), []byte(q.Get("upload_token"))) != 1 || p.failReason != "" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if !now.Before(p.uploadExpires) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	progress := func() {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(p.data), p.videoSize))
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(uploadTypes, mt) {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m := contentRangeRE.FindStringSubmatch(r.Header.Get("Content-Range"))
	if m == nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	first, err1 := strconv.ParseInt(m[1], 10, 64)
	last, err2 := strconv.ParseInt(m[2], 10, 64)
	total, err3 := strconv.ParseInt(m[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || last < first || total != p.videoSize || last >= total {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	n := last - first + 1
	if r.ContentLength != n || int64(len(body)) != n {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	uploaded := int64(len(p.data))
	if first != uploaded || uploaded == p.videoSize {
		progress()
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	want := p.chunkSize
	if uploaded/p.chunkSize == p.chunkCount-1 {
		want = p.videoSize - uploaded
	}
	if n != want {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	p.data = append(p.data, body...)
	progress()
	if int64(len(p.data)) == p.videoSize {
		p.uploadedAt = now
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusPartialContent)
}

func (s *Server) publishForLocked(w http.ResponseWriter, r *http.Request, g *grant) *publish {
	var body struct {
		PublishID string `json:"publish_id"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "The request body is not valid JSON for this endpoint.")
		return nil
	}
	if body.PublishID == "" {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidParams, "publish_id is required.")
		return nil
	}
	p, ok := s.publishes[body.PublishID]
	if !ok {
		s.writeAPIError(w, http.StatusBadRequest, codeInvalidPublishID, "The publish_id does not exist.")
		return nil
	}
	if p.clientKey != g.clientKey || p.openID != g.openID {
		s.writeAPIError(w, http.StatusBadRequest, codeTokenNotAuthorizedPub, "The access_token does not have authorization for this publish_id.")
		return nil
	}
	return p
}

func (s *Server) handleStatusFetch(w http.ResponseWriter, r *http.Request) {
	if !s.jsonEndpoint(w, r) {
		return
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.authLocked(w, r, now, "video.upload", "video.publish")
	if g == nil {
		return
	}
	p := s.publishForLocked(w, r, g)
	if p == nil {
		return
	}
	s.settleLocked(now)
	data := map[string]any{
		"status":                      s.statusLocked(p, now),
		"publicaly_available_post_id": s.postIDsLocked(p, now),
	}
	if p.failReason != "" {
		data["fail_reason"] = p.failReason
	}
	if p.source == sourceFile {
		data["uploaded_bytes"] = len(p.data)
	}
	s.writeAPIData(w, data)
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	if !s.jsonEndpoint(w, r) {
		return
	}
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.authLocked(w, r, now, "video.upload", "video.publish")
	if g == nil {
		return
	}
	p := s.publishForLocked(w, r, g)
	if p == nil {
		return
	}
	if _, done := s.transferredAt(p, now); p.source != sourcePull || done || p.failReason != "" {
		s.writeAPIError(w, http.StatusBadRequest, codePublishNotCancellable, "The task is not an ongoing download and cannot be cancelled.")
		return
	}
	p.failReason = "publish_cancelled"
	s.writeAPIData(w, nil)
}
