package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// requestIDHeader carries the request id in every answer.
const requestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// withRequestID notes the request's id in its context.
func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestID returns the request's id: the one the middleware drew (and
// sent in X-Request-Id), "" outside a request. Error answers carry it as
// request_id, so that a report names the log lines of its request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// ensureRequestID gives r an id, unless it has one, and sets the header.
func ensureRequestID(w http.ResponseWriter, r *http.Request) *http.Request {
	id := requestID(r.Context())
	if id == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
		r = r.WithContext(withRequestID(r.Context(), id))
	}
	w.Header().Set(requestIDHeader, id)
	return r
}
