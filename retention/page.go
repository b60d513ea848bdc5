package retention

// Page sizes.
const (
	// DefaultLimit is the page size when ListOptions.Limit is 0.
	DefaultLimit = 50
	// MaxLimit is the largest page size.
	MaxLimit = 1000
)

// ListOptions selects a page of a list, as crm's do. The zero value asks
// for the first page of DefaultLimit items. Lists are paged by keyset (a
// cursor naming the last item seen), so an item added or removed meanwhile
// neither repeats nor skips another.
type ListOptions struct {
	// Limit is the page size (0 means DefaultLimit; at most MaxLimit).
	Limit int `json:"limit,omitempty"`
	// Cursor is a Page's NextCursor; empty for the first page. It is
	// opaque: pass it back unchanged, with the same filter, to the same
	// list.
	Cursor string `json:"cursor,omitempty"`
}

func (o ListOptions) limit() int {
	if o.Limit == 0 {
		return DefaultLimit
	}
	return o.Limit
}

// Page is one page of a list. The caller owns Items.
type Page[T any] struct {
	Items []T `json:"items"`
	// NextCursor fetches the next page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}
