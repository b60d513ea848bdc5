//go:build !cgo

package tenancy

import (
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgquery "github.com/wasilibs/go-pgquery"
)

// warmParser makes the SQL parser compile itself now. It does so on first
// use, once per process, and that takes seconds (far longer under the race
// detector): paid here, when the Guard is installed, rather than by the
// first statement of some transaction while it holds its locks.
func warmParser() { _, _ = parse("SELECT 1") }

// parseMu lets one statement at a time through the parser. The parser is
// a WebAssembly module; calls made at the same moment each get an
// instance of their own, and a new instance costs as much as the first
// compile did — seconds, paid mid-transaction. One at a time, a parse
// costs a fraction of a millisecond, and parsed shapes are cached.
var parseMu sync.Mutex

// parse reads query with libpg_query, PostgreSQL's own parser, run as
// WebAssembly (pure Go) when the SDK is built without cgo; with cgo it is
// the same parser compiled from C (parse_cgo.go). One call at a time.
func parse(query string) (*pg.ParseResult, error) {
	parseMu.Lock()
	defer parseMu.Unlock()
	return pgquery.Parse(query)
}
