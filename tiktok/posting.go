package tiktok

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// PostingService is the Content Posting API: creator info, Direct Post and
// inbox (draft) video init, chunked upload, status and cancel. Each
// publishing call is made only at the user's instruction and recorded in
// the tenant's audit log.
type PostingService struct{ c *Client }

// Privacy levels of a post.
const (
	PrivacyPublic          = "PUBLIC_TO_EVERYONE"
	PrivacyMutualFollow    = "MUTUAL_FOLLOW_FRIENDS"
	PrivacyFollowers       = "FOLLOWER_OF_CREATOR"
	PrivacySelfOnly        = "SELF_ONLY"
	SourceFileUpload       = "FILE_UPLOAD"
	SourcePullFromURL      = "PULL_FROM_URL"
	StatusProcessingUpload = "PROCESSING_UPLOAD"
	StatusProcessingPull   = "PROCESSING_DOWNLOAD"
	StatusSentToInbox      = "SEND_TO_USER_INBOX"
	StatusPublishComplete  = "PUBLISH_COMPLETE"
	StatusFailed           = "FAILED"
)

// CreatorInfo is what the creator can post now. Call it every time the
// post page renders; offer only PrivacyLevelOptions, with no default.
type CreatorInfo struct {
	CreatorAvatarURL        string   `json:"creator_avatar_url"` // expires within 2 hours
	CreatorUsername         string   `json:"creator_username"`
	CreatorNickname         string   `json:"creator_nickname"`
	PrivacyLevelOptions     []string `json:"privacy_level_options"`
	CommentDisabled         bool     `json:"comment_disabled"`
	DuetDisabled            bool     `json:"duet_disabled"`
	StitchDisabled          bool     `json:"stitch_disabled"`
	MaxVideoPostDurationSec int32    `json:"max_video_post_duration_sec"`
}

// CreatorInfo queries what the creator can post (scope video.publish).
// spam_risk_* and reached_active_user_cap refusals, which TikTok sends with
// HTTP 200, are *APIError like any other.
func (s *PostingService) CreatorInfo(ctx context.Context) (*CreatorInfo, *Response, error) {
	var ci CreatorInfo
	resp, err := s.c.call(ctx, "POST", "/v2/post/publish/creator_info/query/", nil, struct{}{}, &ci, ScopeVideoPublish)
	if err != nil {
		return nil, resp, err
	}
	return &ci, resp, nil
}

// PostInfo describes a Direct Post.
type PostInfo struct {
	// PrivacyLevel must be one of the CreatorInfo's PrivacyLevelOptions.
	PrivacyLevel          string `json:"privacy_level"`
	Title                 string `json:"title,omitempty"`
	DisableDuet           bool   `json:"disable_duet"`
	DisableStitch         bool   `json:"disable_stitch"`
	DisableComment        bool   `json:"disable_comment"`
	VideoCoverTimestampMs int32  `json:"video_cover_timestamp_ms,omitempty"`
	BrandContentToggle    bool   `json:"brand_content_toggle"`
	BrandOrganicToggle    bool   `json:"brand_organic_toggle"`
	IsAIGC                bool   `json:"is_aigc,omitempty"`
}

// SourceInfo says where the video comes from: FILE_UPLOAD with the chunk
// plan (see PlanChunks), or PULL_FROM_URL with a URL on a verified domain.
type SourceInfo struct {
	Source          string `json:"source"`
	VideoURL        string `json:"video_url,omitempty"`
	VideoSize       int64  `json:"video_size,omitempty"`
	ChunkSize       int64  `json:"chunk_size,omitempty"`
	TotalChunkCount int64  `json:"total_chunk_count,omitempty"`
}

// VideoInitRequest starts a video post.
type VideoInitRequest struct {
	// PostInfo is required for Direct Post and ignored for inbox uploads.
	PostInfo   PostInfo
	SourceInfo SourceInfo
}

// PublishInit is the answer of an init call. UploadURL (FILE_UPLOAD only)
// carries its own credential and is valid for an hour: keep it secret.
type PublishInit struct {
	PublishID string `json:"publish_id"`
	UploadURL string `json:"upload_url"`
}

// InitVideo starts a Direct Post of a video (scope video.publish).
func (s *PostingService) InitVideo(ctx context.Context, req VideoInitRequest) (*PublishInit, *Response, error) {
	body := map[string]any{"post_info": req.PostInfo, "source_info": req.SourceInfo}
	return s.init(ctx, "/v2/post/publish/video/init/", body, ScopeVideoPublish, "direct")
}

// InitInboxVideo uploads a video to the creator's inbox as a draft (scope
// video.upload); the creator finishes the post in the TikTok app.
func (s *PostingService) InitInboxVideo(ctx context.Context, source SourceInfo) (*PublishInit, *Response, error) {
	return s.init(ctx, "/v2/post/publish/inbox/video/init/", map[string]any{"source_info": source}, ScopeVideoUpload, "inbox")
}

func (s *PostingService) init(ctx context.Context, path string, body any, scope, mode string) (*PublishInit, *Response, error) {
	if err := s.c.session.Require(scope); err != nil {
		return nil, nil, err // refused before anything is recorded or sent
	}
	// Recorded before it is sent, and closed by an entry of the same
	// attempt once the outcome is known: a process killed after TikTok
	// acted and before its answer was read leaves this entry open — a
	// publish in doubt, to look up (Lookup, with Path and SentAt) before
	// sending again.
	attempt := tenancy.NewID()
	if err := s.c.session.Audit(ctx, "tiktok.publish_sending", map[string]string{"mode": mode, "path": path,
		"sent_at": s.c.now().UTC().Format(time.RFC3339Nano), "attempt": attempt}); err != nil {
		return nil, nil, fmt.Errorf("tiktok: audit publish: %w", err)
	}
	var out PublishInit
	resp, err := s.c.call(ctx, "POST", path, nil, body, &out, scope)
	// The outcome is recorded even if the caller has gone.
	actx := context.WithoutCancel(ctx)
	var unknown *OutcomeUnknownError
	if errors.As(err, &unknown) {
		// Recorded all the same: the post may exist at TikTok.
		aerr := s.c.session.Audit(actx, "tiktok.publish_outcome_unknown", map[string]string{"publish_id": unknown.PublishID, "mode": mode, "attempt": attempt})
		return nil, resp, errors.Join(err, aerr)
	}
	if err != nil {
		// Refused by TikTok, or never sent: nothing was published.
		if aerr := s.c.session.Audit(actx, "tiktok.publish_refused", map[string]string{"mode": mode, "attempt": attempt, "reason": refusal(err)}); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return nil, resp, err
	}
	if err := s.c.session.Audit(actx, "tiktok.publish_started", map[string]string{"publish_id": out.PublishID, "mode": mode, "attempt": attempt}); err != nil {
		return &out, resp, fmt.Errorf("tiktok: audit publish: %w", err)
	}
	return &out, resp, nil
}

// refusal names why a publish was not carried out, for the audit log:
// TikTok's error code, or what stopped it before it was sent. It never
// quotes the error's text.
func refusal(err error) string {
	var ae *APIError
	var oe *OAuthError
	switch {
	case errors.As(err, &ae) && ae.Code != "":
		return ae.Code
	case errors.Is(err, social.ErrRevoked):
		return "revoked"
	case errors.Is(err, social.ErrNeedsReauth):
		return "needs_reauth"
	case errors.As(err, &oe) && oe.Code != "":
		return oe.Code
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "not_sent"
}

// Chunk-size rules of the media transfer guide (MB = 2^20 bytes).
const (
	MinChunkSize     = 5 << 20
	MaxChunkSize     = 64 << 20
	MaxFinalChunk    = 128 << 20
	MaxChunks        = 1000
	DefaultChunkSize = 10 << 20
)

// PlanChunks returns the FILE_UPLOAD source info for a video of size
// bytes in chunks of about chunkSize (0: DefaultChunkSize): a video
// smaller than MinChunkSize goes whole; otherwise total_chunk_count is
// size/chunkSize rounded down and the last chunk takes the remainder.
func PlanChunks(size, chunkSize int64) (SourceInfo, error) {
	if size <= 0 {
		return SourceInfo{}, fmt.Errorf("tiktok: PlanChunks: size must be positive")
	}
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}
	if size < MinChunkSize {
		return SourceInfo{Source: SourceFileUpload, VideoSize: size, ChunkSize: size, TotalChunkCount: 1}, nil
	}
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return SourceInfo{}, fmt.Errorf("tiktok: PlanChunks: chunk size must be %d to %d bytes", MinChunkSize, MaxChunkSize)
	}
	chunkSize = min(chunkSize, size)
	if size/chunkSize > MaxChunks {
		chunkSize = (size + MaxChunks - 1) / MaxChunks
		if chunkSize > MaxChunkSize {
			return SourceInfo{}, fmt.Errorf("tiktok: PlanChunks: video of %d bytes is too large", size)
		}
	}
	return SourceInfo{Source: SourceFileUpload, VideoSize: size, ChunkSize: chunkSize, TotalChunkCount: size / chunkSize}, nil
}

// UploadError is a refusal of the upload host, which answers with bare
// statuses: 400 bad headers, 403 upload URL expired, 404 unknown upload,
// 416 range out of step (Range then holds the host's progress header).
type UploadError struct {
	StatusCode int
	Range      string
}

func (e *UploadError) Error() string {
	return fmt.Sprintf("tiktok: upload refused with HTTP %d %s", e.StatusCode, e.Range)
}

// Upload sends video, planned by src (PlanChunks), to uploadURL in order,
// one PUT per chunk with Content-Range, and returns when the host answers
// 201. The upload URL carries its own credential: no bearer token is sent
// to the upload host. A chunk answered with 5xx is sent again.
func (s *PostingService) Upload(ctx context.Context, uploadURL string, video io.ReaderAt, src SourceInfo, contentType string) (*Response, error) {
	if src.Source != SourceFileUpload || src.TotalChunkCount < 1 || src.ChunkSize < 1 {
		return nil, fmt.Errorf("tiktok: Upload: source info is not a FILE_UPLOAD plan")
	}
	if contentType == "" {
		contentType = "video/mp4"
	}
	for i := int64(0); i < src.TotalChunkCount; i++ {
		first := i * src.ChunkSize
		last := first + src.ChunkSize - 1
		if i == src.TotalChunkCount-1 {
			last = src.VideoSize - 1
		}
		buf := make([]byte, last-first+1)
		if _, err := video.ReadAt(buf, first); err != nil && !(errors.Is(err, io.EOF) && int64(len(buf)) == last-first+1) {
			return nil, fmt.Errorf("tiktok: Upload: read chunk %d: %w", i, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, bytes.NewReader(buf))
		if err != nil {
			return nil, errors.New("tiktok: Upload: invalid upload URL")
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Content-Range", "bytes "+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10)+"/"+strconv.FormatInt(src.VideoSize, 10))
		resp, err := s.c.rt.Do(req, true)
		if err != nil {
			return nil, fmt.Errorf("tiktok: Upload chunk %d: %w", i, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusCreated:
			return &Response{Response: resp}, nil
		case resp.StatusCode == http.StatusPartialContent && i < src.TotalChunkCount-1:
		default:
			return &Response{Response: resp}, &UploadError{StatusCode: resp.StatusCode, Range: resp.Header.Get("Content-Range")}
		}
	}
	return nil, &UploadError{StatusCode: http.StatusPartialContent, Range: "upload incomplete"}
}

// PublishStatus is the state of a publishing task.
type PublishStatus struct {
	Status     string `json:"status"`
	FailReason string `json:"fail_reason"`
	// PubliclyAvailablePostIDs is TikTok's publicaly_available_post_id
	// (sic): empty until moderation passes, and for private posts; empty
	// is not a failure.
	PubliclyAvailablePostIDs []int64 `json:"publicaly_available_post_id"`
	UploadedBytes            int64   `json:"uploaded_bytes"`
	DownloadedBytes          int64   `json:"downloaded_bytes"`
}

// Done reports whether the task reached a terminal state. For inbox
// uploads SEND_TO_USER_INBOX is terminal for the API's part.
func (p PublishStatus) Done() bool {
	switch p.Status {
	case StatusPublishComplete, StatusFailed, StatusSentToInbox:
		return true
	}
	return false
}

// Status fetches a publishing task's state (scope video.publish or
// video.upload).
func (s *PostingService) Status(ctx context.Context, publishID string) (*PublishStatus, *Response, error) {
	if err := s.c.requireAny(ScopeVideoPublish, ScopeVideoUpload); err != nil {
		return nil, nil, err
	}
	var st PublishStatus
	resp, err := s.c.call(ctx, "POST", "/v2/post/publish/status/fetch/", nil, map[string]string{"publish_id": publishID}, &st)
	if err != nil {
		return nil, resp, err
	}
	return &st, resp, nil
}

// Cancel cancels an ongoing PULL_FROM_URL download (best effort).
func (s *PostingService) Cancel(ctx context.Context, publishID string) (*Response, error) {
	if err := s.c.requireAny(ScopeVideoPublish, ScopeVideoUpload); err != nil {
		return nil, err
	}
	resp, err := s.c.call(ctx, "POST", "/v2/post/publish/cancel/", nil, map[string]string{"publish_id": publishID}, nil)
	if err == nil {
		err = s.c.session.Audit(ctx, "tiktok.publish_cancelled", map[string]string{"publish_id": publishID})
	}
	return resp, err
}

// requireAny fails with a *social.ScopeError naming all of scopes when the
// connection has none of them.
func (c *Client) requireAny(scopes ...string) error {
	for _, sc := range scopes {
		if c.session.Scopes().Has(sc) {
			return nil
		}
	}
	return &social.ScopeError{Missing: social.NewScopes(scopes...)}
}

// IsPostingLimit reports whether err is one of TikTok's posting caps:
// spam_risk_*, reached_active_user_cap.
func IsPostingLimit(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (strings.HasPrefix(ae.Code, "spam_risk") || ae.Code == CodeReachedActiveUserCap)
}

// Photo post modes.
const (
	PostModeDirect      = "DIRECT_POST"
	PostModeMediaUpload = "MEDIA_UPLOAD"
)

// PhotoPostInfo describes a photo post (title ≤ 90, description ≤ 4000
// UTF-16 units). PrivacyLevel is required for DIRECT_POST.
type PhotoPostInfo struct {
	Title              string `json:"title,omitempty"`
	Description        string `json:"description,omitempty"`
	PrivacyLevel       string `json:"privacy_level,omitempty"`
	DisableComment     bool   `json:"disable_comment"`
	AutoAddMusic       bool   `json:"auto_add_music"`
	BrandContentToggle bool   `json:"brand_content_toggle"`
	BrandOrganicToggle bool   `json:"brand_organic_toggle"`
}

// PhotoInitRequest starts a photo post: up to 35 image URLs on a verified
// domain (PULL_FROM_URL is the only source TikTok offers for photos).
type PhotoInitRequest struct {
	// PostMode is PostModeDirect (scope video.publish) or
	// PostModeMediaUpload (scope video.upload, a draft in the inbox).
	PostMode        string
	PostInfo        PhotoPostInfo
	PhotoImages     []string
	PhotoCoverIndex int
}

// MaxPhotos is the most images one photo post takes.
const MaxPhotos = 35

// InitPhoto starts a photo post (POST /v2/post/publish/content/init/).
func (s *PostingService) InitPhoto(ctx context.Context, req PhotoInitRequest) (*PublishInit, *Response, error) {
	scope := ScopeVideoPublish
	switch req.PostMode {
	case PostModeDirect:
	case PostModeMediaUpload:
		scope = ScopeVideoUpload
	default:
		return nil, nil, fmt.Errorf("tiktok: InitPhoto: PostMode must be %s or %s", PostModeDirect, PostModeMediaUpload)
	}
	if n := len(req.PhotoImages); n == 0 || n > MaxPhotos {
		return nil, nil, fmt.Errorf("tiktok: InitPhoto: 1 to %d images, got %d", MaxPhotos, n)
	}
	if req.PhotoCoverIndex < 0 || req.PhotoCoverIndex >= len(req.PhotoImages) {
		return nil, nil, fmt.Errorf("tiktok: InitPhoto: PhotoCoverIndex out of range")
	}
	body := map[string]any{
		"media_type": "PHOTO",
		"post_mode":  req.PostMode,
		"post_info":  req.PostInfo,
		"source_info": map[string]any{
			"source":            SourcePullFromURL,
			"photo_images":      req.PhotoImages,
			"photo_cover_index": req.PhotoCoverIndex,
		},
	}
	return s.init(ctx, "/v2/post/publish/content/init/", body, scope, "photo")
}
