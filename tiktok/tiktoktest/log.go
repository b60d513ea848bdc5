package tiktoktest

import (
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Request is one request the emulator received, with secrets redacted: the
// bearer token, client_secret, code, code_verifier, refresh_token, token
// and upload_token values are replaced by Redact(value), so a test can still
// tell which secret was sent without the log holding it.
type Request struct {
	Time   time.Time
	Method string
	Host   string
	Path   string
	Query  url.Values
	Header http.Header
	// Form holds the fields of an application/x-www-form-urlencoded body.
	Form url.Values
	// Body holds any other body except upload chunks (JSON requests).
	Body []byte
	// BodySize is the number of body bytes received.
	BodySize int
	// Status is the HTTP status the emulator answered with.
	Status int
}

// secretFields are redacted from queries and forms.
var secretFields = map[string]bool{
	"client_secret": true,
	"code":          true,
	"code_verifier": true,
	"refresh_token": true,
	"token":         true,
	"access_token":  true,
	"upload_token":  true,
}

// Redact is how the request log shows a secret: "redacted:" and the first
// 12 hex digits of its SHA-256. Compare a log entry with Redact(secret) to
// check which secret was sent.
func Redact(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "redacted:" + hex.EncodeToString(sum[:])[:12]
}

func redactValues(v url.Values) url.Values {
	out := cloneValues(v)
	for k, vs := range out {
		if secretFields[k] {
			for i := range vs {
				vs[i] = Redact(vs[i])
			}
		}
	}
	return out
}

func redactHeader(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, name := range []string{"Authorization", "Cookie"} {
		vs := out.Values(name)
		if len(vs) == 0 {
			continue
		}
		red := make([]string, len(vs))
		for i, v := range vs {
			scheme, cred, found := strings.Cut(v, " ")
			if found {
				red[i] = scheme + " " + Redact(cred)
			} else {
				red[i] = Redact(v)
			}
		}
		out[name] = red
	}
	return out
}

func (s *Server) newRequestEntry(r *http.Request, body []byte, upload bool) Request {
	e := Request{
		Time:     s.Now(),
		Method:   r.Method,
		Host:     r.Host,
		Path:     r.URL.Path,
		Query:    redactValues(r.URL.Query()),
		Header:   redactHeader(r.Header),
		BodySize: len(body),
	}
	if upload || len(body) == 0 {
		return e
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		if f, err := url.ParseQuery(string(body)); err == nil {
			e.Form = redactValues(f)
			return e
		}
	}
	e.Body = append([]byte(nil), body...)
	return e
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Query = cloneValues(r.Query)
		r.Form = cloneValues(r.Form)
		r.Header = r.Header.Clone()
		r.Body = append([]byte(nil), r.Body...)
		out[i] = r
	}
	return out
}

// RequestsTo returns the logged requests whose path is path.
func (s *Server) RequestsTo(path string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// ClearRequests empties the request log.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}
