package metatest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// upload is the state of a resumable upload to a container.
type upload struct {
	igID     string
	size     int64 // file_size, fixed by the first upload request
	received int64
}

// answerDrop loses the answers of matching requests.
type answerDrop struct {
	method, pattern string
	left            int
}

// createResumable creates a video container whose file comes by
// resumable upload (upload_type=resumable): it answers the container id
// and the upload URI, and stays IN_PROGRESS until the whole file arrived.
// Only Facebook Login apps have it.
func (s *Server) createResumable(c *call, ct *container) result {
	if c.tok.kind == kindInstagram {
		return fail(errParam("(#100) upload_type=resumable is only available to apps that implemented Facebook Login for Business"))
	}
	if ct.videoURL != "" || ct.imageURL != "" {
		return fail(errParam("(#100) A resumable upload sends the file to the upload URI; do not pass video_url or image_url"))
	}
	switch {
	case ct.mediaType == "REELS", ct.mediaType == "STORIES", ct.mediaType == "VIDEO" && ct.carouselItem:
	default:
		return fail(errParam("(#100) upload_type=resumable needs media_type REELS, STORIES, or VIDEO for a carousel item"))
	}
	ct.readyAt = ct.created.Add(100 * 365 * 24 * time.Hour) // until the upload completes
	ct.id = s.nextID(17900000000000000)
	s.containers[ct.id] = ct
	s.ig.uploads[ct.id] = &upload{igID: ct.igID}
	return ok(map[string]any{"id": ct.id, "uri": s.UploadURL() + "/ig-api-upload/" + s.cfg.version + "/" + ct.id})
}

// DropUpload makes the next upload request (to any container) break
// after after bytes of its body reached the emulator: the connection
// closes without an answer, as a dropped connection does. The bytes
// received count; the client resumes from them. Calls queue up: each arms
// one more request.
func (s *Server) DropUpload(after int64) error {
	if after < 0 {
		return invalid("DropUpload: after %d", after)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ig.uploadDrops = append(s.ig.uploadDrops, after)
	return nil
}

// UploadedBytes returns how many bytes of a resumable container's file
// the emulator holds, and the announced file_size.
func (s *Server) UploadedBytes(containerID string) (received, size int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := s.ig.uploads[containerID]
	if up == nil {
		return 0, 0, fmt.Errorf("metatest: UploadedBytes: resumable container %q: %w", containerID, ErrNotFound)
	}
	return up.received, up.size, nil
}

// DropAnswer makes the emulator carry out the next count Graph requests
// matching method and pathPattern (path.Match syntax on the path after
// the version, such as "/*/media_publish") but lose their answers: the
// connection closes before any byte of the answer is sent, as when the
// network fails after Meta acted.
func (s *Server) DropAnswer(method, pathPattern string, count int) error {
	if count < 1 {
		return invalid("DropAnswer: count %d", count)
	}
	if _, err := path.Match(pathPattern, "/"); err != nil || !strings.HasPrefix(pathPattern, "/") {
		return invalid("DropAnswer: pattern %q", pathPattern)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ig.drops = append(s.ig.drops, &answerDrop{method: strings.ToUpper(method), pattern: pathPattern, left: count})
	return nil
}

// dropAnswer closes the connection of c instead of answering when a
// DropAnswer matches.
func (s *Server) dropAnswer(c *call) bool {
	s.mu.Lock()
	drop := false
	for _, d := range s.ig.drops {
		if d.left > 0 && (d.method == "" || d.method == c.method) {
			if m, _ := path.Match(d.pattern, c.path); m {
				d.left--
				drop = true
				break
			}
		}
	}
	s.mu.Unlock()
	if drop {
		hangUp(c.w)
	}
	return drop
}

// hangUp closes the connection behind w without answering.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // closes the connection on HTTP/2 too
}

// uploadError writes rupload's error answer.
func uploadError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"debug_info": map[string]any{"retriable": false, "type": typ, "message": msg}})
}

// serveUpload serves rupload.facebook.com/ig-api-upload/{version}/{container}:
// POST with Authorization: OAuth <token>, offset and file_size headers and
// the bytes from offset; GET answers how many bytes arrived
// ({"id", "offset", "file_size"}) so that an interrupted upload resumes.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, p string) {
	segs := splitPath(p)
	s.record(r, "", p, nil, nil, nil)
	if len(segs) != 3 || segs[0] != "ig-api-upload" || !versionPattern.MatchString(segs[1]) {
		uploadError(w, http.StatusNotFound, "NotFoundError", "unknown upload path")
		return
	}
	id := segs[2]
	scheme, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.mu.Lock()
	up := s.ig.uploads[id]
	t := s.lookupToken(strings.TrimSpace(raw))
	var gerr *graphError
	switch {
	case !strings.EqualFold(scheme, "OAuth") || t == nil || t.kind == kindApp:
		gerr = errBadToken()
	default:
		gerr = s.tokenProblem(t)
	}
	if gerr == nil && up == nil {
		s.mu.Unlock()
		uploadError(w, http.StatusBadRequest, "ProcessingFailedError", "no resumable upload for container "+id)
		return
	}
	if gerr == nil {
		c := &call{method: r.Method, tok: t, grant: s.grantFor(t.appID, t.userID)}
		gerr = s.canUseIG(c, up.igID, "instagram_basic", "instagram_content_publish")
	}
	if gerr != nil {
		s.mu.Unlock()
		uploadError(w, http.StatusUnauthorized, "OAuthException", gerr.Message)
		return
	}
	if r.Method == http.MethodGet {
		body := map[string]any{"id": id, "offset": up.received, "file_size": up.size}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	if r.Method != http.MethodPost {
		s.mu.Unlock()
		uploadError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use POST to upload, GET to read the offset")
		return
	}
	offset, err1 := strconv.ParseInt(r.Header.Get("offset"), 10, 64)
	size, err2 := strconv.ParseInt(r.Header.Get("file_size"), 10, 64)
	switch {
	case err1 != nil || err2 != nil || size <= 0:
		s.mu.Unlock()
		uploadError(w, http.StatusBadRequest, "ProcessingFailedError", "the offset and file_size headers are required")
		return
	case up.size != 0 && size != up.size:
		s.mu.Unlock()
		uploadError(w, http.StatusBadRequest, "ProcessingFailedError", fmt.Sprintf("file_size %d differs from the %d announced first", size, up.size))
		return
	case offset != up.received:
		s.mu.Unlock()
		uploadError(w, http.StatusBadRequest, "ProcessingFailedError", fmt.Sprintf("offset %d: the upload continues at %d", offset, up.received))
		return
	}
	up.size = size
	dropAfter := int64(-1)
	if len(s.ig.uploadDrops) > 0 {
		dropAfter, s.ig.uploadDrops = s.ig.uploadDrops[0], s.ig.uploadDrops[1:]
	}
	s.mu.Unlock()

	limit := size - offset
	if dropAfter >= 0 {
		limit = min(limit, dropAfter)
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, limit))
	s.mu.Lock()
	up.received += n
	done := up.received == up.size
	if done {
		if ct := s.containers[id]; ct != nil {
			ct.readyAt = s.nowLocked().Add(s.cfg.videoProcessing)
		}
	}
	s.mu.Unlock()
	if dropAfter >= 0 {
		hangUp(w)
		return
	}
	if extra, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1)); extra > 0 {
		uploadError(w, http.StatusBadRequest, "ProcessingFailedError", "more bytes than file_size")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "message": "Upload successful."})
}
