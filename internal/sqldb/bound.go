package sqldb

import (
	"context"
	"database/sql/driver"
)

// boundKey holds the parameters WithParams attaches to one statement text.
type boundKey struct{}

type bound struct {
	query  string
	params []any
}

// WithParams returns a context under which the statement whose text is
// exactly query, sent without arguments through a PostgreSQL handle of
// this package, carries params as its parameters $1, $2, …: bun writes
// every argument into a statement's text, so a statement with large
// values (arrays of a batch's rows) would otherwise be written, checked
// and parsed whole — and differ with every batch. The statement's text
// keeps what must be read in it (the Check reads literals such as the
// tenant's id there) and names the values it takes as $n; it is prepared
// once per connection, like any other. A statement of another text, or
// one sent with arguments of its own, runs as it would without the
// context, and so does any statement on another handle (check Folds
// first: there the statement would lack its parameters).
func WithParams(ctx context.Context, query string, params ...any) context.Context {
	return context.WithValue(ctx, boundKey{}, bound{query, params})
}

// boundArgs returns the parameters WithParams attached to query in ctx,
// or args as they are.
func boundArgs(ctx context.Context, query string, args []driver.NamedValue) []driver.NamedValue {
	if len(args) > 0 {
		return args
	}
	b, ok := ctx.Value(boundKey{}).(bound)
	if !ok || b.query != query {
		return args
	}
	nv := make([]driver.NamedValue, len(b.params))
	for i, p := range b.params {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: p}
	}
	return nv
}
