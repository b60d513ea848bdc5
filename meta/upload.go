package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// VideoUpload is a local video file to publish as a reel or a story
// through a resumable upload.
type VideoUpload struct {
	// Kind is MediaReel (zero) or MediaStory.
	Kind MediaKind
	// Caption of a reel (stories have none).
	Caption string
	// File holds the video; it is read by offset, so an upload resumes
	// without starting over. Size is its length in bytes.
	File io.ReaderAt
	Size int64
	// ChunkSize bounds the bytes of one upload request (zero: the whole
	// rest of the file in one).
	ChunkSize int64
	// Progress, when set, is called after each upload request that
	// succeeded with the bytes Meta holds and the file's size. It runs on
	// the calling goroutine.
	Progress func(sent, total int64)
	// MaxResumes bounds how many times a dropped connection is resumed
	// (zero: 3; negative: never).
	MaxResumes int
	// PollInterval and Timeout bound the wait for the container, as in
	// MediaRequest (zero: one minute, 10 minutes), on the client's clock.
	PollInterval, Timeout time.Duration
}

func (v *VideoUpload) normalize() error {
	switch v.Kind {
	case "":
		v.Kind = MediaReel
	case MediaReel, MediaStory:
	default:
		return fmt.Errorf("%w: VideoUpload: Kind %q (REELS or STORIES)", ErrConfig, v.Kind)
	}
	if v.File == nil || v.Size <= 0 {
		return fmt.Errorf("%w: VideoUpload: File and a positive Size are required", ErrConfig)
	}
	if v.ChunkSize < 0 || v.PollInterval < 0 || v.Timeout < 0 {
		return fmt.Errorf("%w: VideoUpload: negative ChunkSize, PollInterval or Timeout", ErrConfig)
	}
	if v.ChunkSize == 0 {
		v.ChunkSize = v.Size
	}
	switch {
	case v.MaxResumes == 0:
		v.MaxResumes = 3
	case v.MaxResumes < 0:
		v.MaxResumes = 0
	}
	if v.PollInterval == 0 {
		v.PollInterval = time.Minute
	}
	if v.Timeout == 0 {
		v.Timeout = 10 * time.Minute
	}
	return nil
}

// ErrUpload matches *UploadError.
var ErrUpload = errors.New("meta: video upload failed")

// UploadError is returned when the upload host refused a chunk, or the
// connection dropped more often than VideoUpload.MaxResumes allows.
// Nothing was published; the container (ContainerID) expires unused.
type UploadError struct {
	ContainerID string
	// Offset is how many bytes Meta holds; Size the file's size.
	Offset, Size int64
	// StatusCode and Message are the upload host's refusal (zero and
	// empty after dropped connections).
	StatusCode int
	Message    string
	// Err is the last transport error, if any.
	Err error
}

func (e *UploadError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("meta: upload to container %s refused at %d of %d bytes: HTTP %d: %s", e.ContainerID, e.Offset, e.Size, e.StatusCode, e.Message)
	}
	return fmt.Sprintf("meta: upload to container %s stopped at %d of %d bytes: %v", e.ContainerID, e.Offset, e.Size, e.Err)
}

// Is makes errors.Is(err, ErrUpload) hold.
func (e *UploadError) Is(target error) bool { return target == ErrUpload }

// Unwrap returns the transport error.
func (e *UploadError) Unwrap() error { return e.Err }

// PublishVideo publishes a local video file as a reel or a story at the
// user's instruction: it checks content_publishing_limit, creates a
// container with upload_type=resumable, sends the file to the upload host
// ({UploadURL}/ig-api-upload/{version}/{container}, with the offset and
// file_size headers), resuming from the offset Meta holds after a dropped
// connection, polls the container until FINISHED and publishes it, then
// writes an audit entry (meta.instagram.publish). The publish request is
// never sent twice: a lost answer fails with *OutcomeUnknownError carrying
// the container id. Meta offers resumable uploads to Facebook Login apps
// only: on an Instagram Login connection it fails with a *FlavourError
// before any request. It needs instagram_basic, instagram_content_publish
// and pages_read_engagement.
func (s *InstagramService) PublishVideo(ctx context.Context, igID string, v VideoUpload) (*Media, *Response, error) {
	if err := s.c.requireFlavour(FacebookLogin, "resumable upload (Facebook Login only)"); err != nil {
		return nil, nil, err
	}
	if err := v.normalize(); err != nil {
		return nil, nil, err
	}
	resp, err := s.beforePublish(ctx, igID)
	if err != nil {
		return nil, resp, err
	}
	f := url.Values{"media_type": {string(v.Kind)}, "upload_type": {"resumable"}}
	if v.Caption != "" && v.Kind != MediaStory {
		f.Set("caption", v.Caption)
	}
	var ct struct {
		ID  ID     `json:"id"`
		URI string `json:"uri"`
	}
	resp, err = s.c.post(ctx, "/"+igID+"/media", f, &ct, igPublishPerms...)
	if err != nil {
		return nil, resp, err
	}
	containerID := string(ct.ID)
	if containerID == "" {
		return nil, resp, fmt.Errorf("meta: container creation answered no id")
	}
	if err := s.upload(ctx, containerID, &v); err != nil {
		return nil, resp, err
	}
	return s.finishPublish(ctx, igID, containerID, v.Caption, v.PollInterval, v.Timeout,
		map[string]string{"kind": string(v.Kind), "upload": "resumable"})
}

// publishContainer publishes a FINISHED container (media_publish) and
// returns the media id. The request is sent once: a lost answer is an
// *OutcomeUnknownError, since Meta may have published.
func (s *InstagramService) publishContainer(ctx context.Context, igID, containerID, attempt string) (string, *Response, error) {
	var ans struct {
		ID ID `json:"id"`
	}
	resp, err := s.c.do(ctx, request{method: http.MethodPost, path: "/" + igID + "/media_publish",
		form: url.Values{"creation_id": {containerID}}, need: igPublishPerms, intent: "meta.instagram.publish_sending", attempt: attempt}, &ans)
	if err != nil {
		var ou *OutcomeUnknownError
		if errors.As(err, &ou) { // the client found the outcome unknown
			ou.Operation, ou.ContainerID = "media_publish", containerID
			return "", resp, err
		}
		if sentWithoutAnswer(resp, err) && ctx.Err() == nil {
			// Sent, no answer: Meta may have published. Not resent.
			return "", resp, &OutcomeUnknownError{Operation: "media_publish", ContainerID: containerID, Err: err}
		}
		return "", resp, err
	}
	return string(ans.ID), resp, nil
}

// sentWithoutAnswer reports whether a write may have taken effect
// without its answer reaching the client: the request left and the
// connection failed (a *url.Error), or an answer began but could not be
// read. Refusals made before sending (permissions, a rate-limit block,
// the token) and Meta's error answers are not.
func sentWithoutAnswer(resp *Response, err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	var apiErr *APIError
	var rl *RateLimitError
	return resp != nil && !errors.As(err, &apiErr) && !errors.As(err, &rl)
}

// uploadURL is the upload host's URI of a container.
func (s *InstagramService) uploadURL(containerID string) string {
	return s.c.cfg.uploadURL() + "/ig-api-upload/" + s.c.Version() + "/" + url.PathEscape(containerID)
}

// upload sends v's file to the container from the offset Meta holds.
func (s *InstagramService) upload(ctx context.Context, containerID string, v *VideoUpload) error {
	var offset int64
	resumes := 0
	for offset < v.Size {
		n := min(v.ChunkSize, v.Size-offset)
		status, msg, err := s.sendChunk(ctx, containerID, io.NewSectionReader(v.File, offset, n), offset, n, v.Size)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// The connection dropped: ask how much arrived, go on from there.
			if resumes >= v.MaxResumes {
				return &UploadError{ContainerID: containerID, Offset: offset, Size: v.Size, Err: err}
			}
			resumes++
			got, qerr := s.uploadedBytes(ctx, containerID)
			if qerr != nil {
				return &UploadError{ContainerID: containerID, Offset: offset, Size: v.Size, Err: errors.Join(err, qerr)}
			}
			offset = got
		case status < 200 || status > 299:
			return &UploadError{ContainerID: containerID, Offset: offset, Size: v.Size, StatusCode: status, Message: msg}
		default:
			offset += n
		}
		if v.Progress != nil && err == nil {
			v.Progress(offset, v.Size)
		}
	}
	return nil
}

// uploadAnswer is the upload host's answer: success, or debug_info.
type uploadAnswer struct {
	Success   Bool `json:"success"`
	Offset    Int  `json:"offset"`
	DebugInfo *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"debug_info"`
}

// sendChunk posts n bytes of body at offset. err is a transport error (no
// answer); otherwise status and the refusal's message.
func (s *InstagramService) sendChunk(ctx context.Context, containerID string, body io.Reader, offset, n, size int64) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.uploadURL(containerID), body)
	if err != nil {
		return 0, "", err
	}
	req.ContentLength = n
	req.Header.Set("offset", strconv.FormatInt(offset, 10))
	req.Header.Set("file_size", strconv.FormatInt(size, 10))
	req.Header.Set("Content-Type", "application/octet-stream")
	var a uploadAnswer
	status, err := s.sendUpload(ctx, req, &a)
	if err != nil {
		return 0, "", err
	}
	if a.DebugInfo != nil {
		return status, a.DebugInfo.Message, nil
	}
	return status, "", nil
}

// uploadedBytes asks the upload host how many bytes of the container's
// file it holds.
func (s *InstagramService) uploadedBytes(ctx context.Context, containerID string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.uploadURL(containerID), nil)
	if err != nil {
		return 0, err
	}
	var a uploadAnswer
	status, err := s.sendUpload(ctx, req, &a)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		msg := ""
		if a.DebugInfo != nil {
			msg = a.DebugInfo.Message
		}
		return 0, &UploadError{ContainerID: containerID, StatusCode: status, Message: msg}
	}
	return int64(a.Offset), nil
}

// sendUpload sends req to the upload host with the token in
// "Authorization: OAuth", as the host requires, and decodes the answer.
func (s *InstagramService) sendUpload(ctx context.Context, req *http.Request, out *uploadAnswer) (int, error) {
	tok, err := s.c.session.Token(ctx)
	if err != nil {
		return 0, fmt.Errorf("meta: upload: %w", err)
	}
	req.Header.Set("Authorization", "OAuth "+tok.AccessToken)
	hr, err := s.c.rt.Do(req, false)
	if err != nil {
		return 0, fmt.Errorf("meta: upload: %w", redactToken(err, tok.AccessToken))
	}
	defer hr.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hr.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("meta: upload: read answer: %w", redactToken(err, tok.AccessToken))
	}
	s.c.opts.log.DebugContext(ctx, "meta: upload", "method", req.Method, "status", hr.StatusCode)
	if len(strings.TrimSpace(string(raw))) > 0 {
		_ = json.Unmarshal(raw, out) // a refusal that is not JSON keeps its status
	}
	if out.DebugInfo != nil {
		out.DebugInfo.Message = redactString(out.DebugInfo.Message, tok.AccessToken)
	}
	return hr.StatusCode, nil
}
