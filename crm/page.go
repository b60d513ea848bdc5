package crm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Page sizes.
const (
	// DefaultLimit is the page size when ListOptions.Limit is 0.
	DefaultLimit = 50
	// MaxLimit is the largest page size.
	MaxLimit = 1000
)

// ListOptions selects a page of a list. The zero value asks for the first
// page of DefaultLimit items. Every list of the package is paged by keyset
// (a cursor naming the last item seen), so pages stay fast however deep,
// and an item inserted or removed meanwhile neither repeats nor skips
// another.
type ListOptions struct {
	// Limit is the page size (0 means DefaultLimit; at most MaxLimit).
	Limit int `json:"limit,omitempty" validate:"gte=0,lte=1000"`
	// Cursor is a Page's NextCursor; empty for the first page. It is
	// opaque: pass it back unchanged, with the same filters, to the same
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

// All returns every item of a list as an iterator, fetching one page at a
// time with list, called with o and then with each next cursor in turn.
// Lists that take a filter are bound to it by a closure:
//
//	f := crm.ContactFilter{Stage: crm.StageCustomer}
//	for c, err := range crm.All(ctx, crm.ListOptions{Limit: 200},
//		func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Contact], error) {
//			return store.Contacts().List(ctx, f, o)
//		}) { … }
//
// A failed page yields its error once and ends the iteration. Breaking out
// early fetches nothing more.
func All[T any](ctx context.Context, o ListOptions, list func(context.Context, ListOptions) (Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			p, err := list(ctx, o)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range p.Items {
				if !yield(it, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			o.Cursor = p.NextCursor
		}
	}
}

// keyset is how a list is ordered: the columns of its sort key (the last
// one unique, normally the id), all ascending or all descending.
type keyset struct {
	// name identifies the list in its cursors, so that a cursor of one
	// list is refused by another.
	name string
	cols []string
	desc bool
}

// cursorKey is one value of a sort key in a cursor, typed so that it binds
// as the column's type (a time compares as a time on both databases).
type cursorKey struct {
	S *string    `json:"s,omitempty"`
	I *int64     `json:"i,omitempty"`
	T *time.Time `json:"t,omitempty"`
}

type cursorBody struct {
	List string      `json:"l"`
	Keys []cursorKey `json:"k"`
}

// encodeCursor returns the cursor after an item whose sort key is vals
// (string, int64 or time.Time, one per column of ks).
func (ks keyset) encodeCursor(vals ...any) (string, error) {
	if len(vals) != len(ks.cols) {
		return "", fmt.Errorf("crm: cursor of %s: %d values for %d columns", ks.name, len(vals), len(ks.cols))
	}
	b := cursorBody{List: ks.name, Keys: make([]cursorKey, len(vals))}
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			b.Keys[i].S = &v
		case int64:
			b.Keys[i].I = &v
		case int:
			n := int64(v)
			b.Keys[i].I = &n
		case time.Time:
			t := v.UTC()
			b.Keys[i].T = &t
		default:
			return "", fmt.Errorf("crm: cursor of %s: unsupported key type %T", ks.name, v)
		}
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return "", fmt.Errorf("crm: cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// decodeCursor returns the sort key in cursor, or a *ValidationError
// (field "cursor", rule "cursor") when it is malformed or belongs to
// another list.
func (ks keyset) decodeCursor(kind, cursor string) ([]any, error) {
	bad := invalid(kind, "cursor", "cursor", "is not a cursor of this list")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, bad
	}
	var b cursorBody
	if err := json.Unmarshal(raw, &b); err != nil || b.List != ks.name || len(b.Keys) != len(ks.cols) {
		return nil, bad
	}
	vals := make([]any, len(b.Keys))
	for i, k := range b.Keys {
		switch {
		case k.S != nil:
			vals[i] = *k.S
		case k.I != nil:
			vals[i] = *k.I
		case k.T != nil:
			vals[i] = k.T.UTC()
		default:
			return nil, bad
		}
	}
	return vals, nil
}

// apply orders q by the keyset, starts it after o.Cursor and limits it to
// one more row than the page, so that page can tell whether another page
// follows. It validates o, failing with a *ValidationError of kind.
func (ks keyset) apply(q *bun.SelectQuery, kind string, o ListOptions) (*bun.SelectQuery, error) {
	if o.Limit < 0 || o.Limit > MaxLimit {
		return nil, invalid(kind, "limit", "lte", fmt.Sprintf("must be between 0 and %d", MaxLimit))
	}
	dir, cmp := " ASC", ">"
	if ks.desc {
		dir, cmp = " DESC", "<"
	}
	if o.Cursor != "" {
		vals, err := ks.decodeCursor(kind, o.Cursor)
		if err != nil {
			return nil, err
		}
		cols := make([]string, len(ks.cols))
		marks := make([]string, len(ks.cols))
		for i, c := range ks.cols {
			cols[i] = "?TableAlias." + c
			marks[i] = "?"
		}
		// A row-value comparison: one index range scan on both databases.
		q = q.Where("("+strings.Join(cols, ", ")+") "+cmp+" ("+strings.Join(marks, ", ")+")", vals...)
	}
	for _, c := range ks.cols {
		q = q.OrderExpr("?TableAlias." + c + dir)
	}
	return q.Limit(int64(o.limit() + 1)), nil
}

// page cuts items (fetched by a query that apply prepared) to the page
// size and computes the next cursor from the last item's sort key.
func page[T any](ks keyset, o ListOptions, items []T, key func(*T) []any) (Page[T], error) {
	n := o.limit()
	if len(items) <= n {
		if items == nil {
			items = []T{}
		}
		return Page[T]{Items: items}, nil
	}
	items = items[:n]
	next, err := ks.encodeCursor(key(&items[n-1])...)
	if err != nil {
		return Page[T]{}, err
	}
	return Page[T]{Items: items, NextCursor: next}, nil
}
