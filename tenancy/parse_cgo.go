//go:build cgo

package tenancy

import pg "github.com/pganalyze/pg_query_go/v6"

// parse reads query with libpg_query, PostgreSQL's own parser, compiled
// from C through cgo: ready at once, with nothing to compile at run time,
// and read from many goroutines at once (its memory is per thread;
// TestParsersAgree parses from eight together). Built without cgo,
// the Guard runs the same parser as WebAssembly instead (parse_nocgo.go);
// TestParsersAgree checks that both read the Guard's statements alike.
func parse(query string) (*pg.ParseResult, error) { return pg.Parse(query) }

// warmParser has nothing to do: the C parser needs no compiling at run
// time.
func warmParser() {}
