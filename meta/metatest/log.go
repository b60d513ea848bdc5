package metatest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Redacted replaces secrets in the request log.
const Redacted = "REDACTED"

// Request is one request the emulator received, as logged. Secrets are
// replaced by Redacted: the parameters access_token, input_token,
// client_secret, appsecret_proof, code, fb_exchange_token and
// signed_request, the Authorization and Cookie headers, and the same keys at
// the top level of a JSON body.
type Request struct {
	Time time.Time
	// Host is the Meta host called: graph.facebook.com,
	// graph.instagram.com, api.instagram.com or rupload.facebook.com.
	Host    string
	Method  string
	Version string // the path's version prefix, "" when unversioned
	Path    string // the path without the version prefix, such as "/me/accounts"
	Query   url.Values
	Form    url.Values // form, multipart or JSON body fields
	Files   []string   // names of multipart file fields
	Header  http.Header
	Body    []byte // a JSON body, redacted; nil otherwise
}

var secretParams = []string{
	"access_token", "input_token", "client_secret", "appsecret_proof", "code",
	"fb_exchange_token", "signed_request",
}

func isSecretParam(k string) bool { return slices.Contains(secretParams, k) }

func redactValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		if isSecretParam(k) {
			out[k] = slices.Repeat([]string{Redacted}, len(vs))
			continue
		}
		out[k] = slices.Clone(vs)
	}
	return out
}

func redactHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, k := range []string{"Authorization", "Cookie", "Proxy-Authorization"} {
		if vs := out.Values(k); len(vs) > 0 {
			red := make([]string, len(vs))
			for i, v := range vs {
				scheme, _, found := strings.Cut(v, " ")
				if found {
					red[i] = scheme + " " + Redacted
				} else {
					red[i] = Redacted
				}
			}
			out[k] = red
		}
	}
	return out
}

func redactJSON(body []byte) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return Redacted // not an object we can redact safely
	}
	for k := range obj {
		if isSecretParam(k) {
			obj[k] = json.RawMessage(`"` + Redacted + `"`)
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return Redacted
	}
	return string(b)
}

func (s *Server) record(r *http.Request, version, p string, params url.Values, files map[string]string, body []byte) {
	query := r.URL.Query()
	form := url.Values{}
	for k, vs := range params {
		q := query[k]
		if len(vs) > len(q) {
			form[k] = vs[len(q):]
		}
	}
	req := Request{
		Host:    hostName(r.URL.Path),
		Method:  r.Method,
		Version: version,
		Path:    p,
		Query:   redactValues(query),
		Form:    redactValues(form),
		Header:  redactHeader(r.Header),
	}
	for k := range files {
		req.Files = append(req.Files, k)
	}
	slices.Sort(req.Files)
	if len(body) > 0 {
		req.Body = []byte(redactJSON(body))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	req.Time = s.nowLocked()
	s.requests = append(s.requests, req)
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
		r.Files = slices.Clone(r.Files)
		out[i] = r
	}
	return out
}

// ClearRequests empties the request log.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
