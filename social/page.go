package social

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Page sizes.
const (
	// DefaultLimit is the page size when ListOptions.Limit is 0.
	DefaultLimit = 50
	// MaxLimit is the largest page size.
	MaxLimit = 1000
)

// ListOptions selects a page of a list, as crm's and retention's do. The
// zero value asks for the first page of DefaultLimit items. Lists are paged
// by keyset (a cursor naming the last item seen), so a connection added or
// removed meanwhile neither repeats nor skips another.
type ListOptions struct {
	// Limit is the page size (0 means DefaultLimit; at most MaxLimit).
	Limit int `json:"limit,omitempty"`
	// Cursor is a Page's NextCursor; empty for the first page. It is
	// opaque: pass it back unchanged, with the same filter, to the same
	// list.
	Cursor string `json:"cursor,omitempty"`
}

// Page is one page of a list. The caller owns Items.
type Page[T any] struct {
	Items []T `json:"items"`
	// NextCursor fetches the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// connectionCursor is the sort key of the last connection of a page.
type connectionCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
}

// check validates o and decodes its cursor (nil for the first page). The
// error matches ErrListOptions.
func (o ListOptions) check() (*connectionCursor, error) {
	if o.Limit < 0 || o.Limit > MaxLimit {
		return nil, fmt.Errorf("%w: limit must be 0 to %d, got %d", ErrListOptions, MaxLimit, o.Limit)
	}
	if o.Cursor == "" {
		return nil, nil
	}
	var c connectionCursor
	raw, err := base64.RawURLEncoding.DecodeString(o.Cursor)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.ID == "" || c.CreatedAt.IsZero() {
		return nil, fmt.Errorf("%w: not a cursor of this list", ErrListOptions)
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return &c, nil
}

func (o ListOptions) limit() int {
	if o.Limit == 0 {
		return DefaultLimit
	}
	return o.Limit
}

func (c connectionCursor) encode() (string, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("social: cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}
