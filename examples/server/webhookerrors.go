package main

import (
	"fmt"
	"net/http"
	"strings"
)

// edgeErrors makes the error answers of a handler the SDK serves (the
// platforms' webhooks and Meta's callbacks, which answer errors with
// http.Error's short plain text) carry the request's id, as every other
// error answer of the server does: the API's JSON error shape, its
// message the handler's text. With human set (a page a person opens), an
// error stays plain text, with the request id on a line of its own, unless
// the request accepts JSON. Successful answers pass through untouched.
func edgeErrors(h http.Handler, human bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ew := &edgeErrorWriter{ResponseWriter: w}
		h.ServeHTTP(ew, r)
		if ew.status < 400 {
			return
		}
		id := requestID(r.Context())
		msg := strings.TrimSpace(ew.text.String())
		if msg == "" {
			msg = strings.ToLower(http.StatusText(ew.status))
		}
		if human && !strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(ew.status)
			fmt.Fprintf(w, "%s\nRequest id: %s\n", msg, id)
			return
		}
		w.Header().Del("X-Content-Type-Options")
		writeJSON(w, ew.status, map[string]any{"error": &apiError{Status: ew.status, Code: edgeCode(ew.status), Message: msg, RequestID: id}})
	})
}

// edgeCode is the API's error code for a status the SDK's handlers
// answer.
func edgeCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "rate_limited"
	}
	if status >= 500 {
		return "internal"
	}
	return "refused"
}

// edgeErrorWriter passes a success through and holds back an error: its
// status, and up to 512 bytes of its text for the message.
type edgeErrorWriter struct {
	http.ResponseWriter
	status int
	text   strings.Builder
}

func (e *edgeErrorWriter) WriteHeader(status int) {
	if e.status != 0 {
		return
	}
	e.status = status
	if status < 400 {
		e.ResponseWriter.WriteHeader(status)
	}
}

func (e *edgeErrorWriter) Write(p []byte) (int, error) {
	if e.status == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if e.status < 400 {
		return e.ResponseWriter.Write(p)
	}
	if room := 512 - e.text.Len(); room > 0 {
		e.text.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Unwrap lets http.ResponseController reach the connection.
func (e *edgeErrorWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }
