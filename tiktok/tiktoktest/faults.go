package tiktoktest

import (
	"net/http"
	"time"
)

// Fault makes the next Count requests to Path fail. The zero values are
// usable: Count 0 means once, Status 0 means 500, and an empty Code and
// Message take the documented ones for the status (internal_error,
// rate_limit_exceeded for 429; server_error or temporarily_unavailable on
// the OAuth endpoints). Faults on UploadPath answer with the bare status, as
// the upload host does. A fault is applied before any other check, and the
// request still appears in the request log.
//
// With Processed, the request is carried out first (a post is created, a
// token rotated) and only its answer is replaced: by the fault's status, or
// with Drop by a connection closed without any answer — a platform that
// acted but whose answer was lost. Drop without Processed closes the
// connection before anything is done.
//
// Hold, if set, is called when the fault applies, and the request waits
// for it to return: before anything is done, or with Processed once the
// request was carried out, before its answer goes out — a platform slow
// to act, or one that acted and is slow to answer (a test may block in
// Hold until it has done what must happen meanwhile). With Pass the fault
// only holds: the request's own answer is written once Hold returns.
type Fault struct {
	Path      string
	Count     int
	Status    int
	Code      string
	Message   string
	Processed bool
	Drop      bool
	Hold      func()
	Pass      bool
}

type pendingFault struct {
	f    Fault
	left int
}

// InjectFault queues f. Faults on the same path apply in the order queued.
func (s *Server) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusInternalServerError
	}
	s.mu.Lock()
	s.faults = append(s.faults, &pendingFault{f: f, left: f.Count})
	s.mu.Unlock()
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

func (s *Server) takeFault(path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.faults {
		if p.f.Path != path {
			continue
		}
		p.left--
		if p.left <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return p.f, true
	}
	return Fault{}, false
}

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func (s *Server) writeFault(w http.ResponseWriter, path string, f Fault) {
	switch path {
	case UploadPath:
		w.WriteHeader(f.Status)
	case TokenPath, RevokePath:
		code, msg := f.Code, f.Message
		if code == "" {
			code = oauthServerError
			if f.Status == http.StatusServiceUnavailable || f.Status == http.StatusTooManyRequests {
				code = oauthTemporarilyUnavailable
			}
		}
		if msg == "" {
			msg = "Injected fault."
		}
		writeJSON(w, f.Status, oauthError{Error: code, Description: msg, LogID: s.newLogID()})
	default:
		code, msg := f.Code, f.Message
		if code == "" {
			code = codeInternalError
			if f.Status == http.StatusTooManyRequests {
				code = codeRateLimitExceeded
			}
		}
		if msg == "" {
			msg = "Injected fault."
		}
		s.writeAPIError(w, f.Status, code, msg)
	}
}

// allow records a hit on path for token and reports whether it is within
// the configured rate limit. Callers hold s.mu.
func (s *Server) allow(path, token string, now time.Time) bool {
	rule, ok := s.cfg.rateLimits[path]
	if !ok {
		return true
	}
	key := path + "\x00" + token
	hits := s.hits[key]
	keep := hits[:0]
	for _, t := range hits {
		if now.Sub(t) < rule.window {
			keep = append(keep, t)
		}
	}
	if len(keep) >= rule.limit {
		s.hits[key] = keep
		return false
	}
	s.hits[key] = append(keep, now)
	return true
}
