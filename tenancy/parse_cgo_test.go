//go:build cgo

package tenancy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgquery "github.com/wasilibs/go-pgquery"
	"google.golang.org/protobuf/proto"
)

// sqlInTests finds the SQL statements written as Go string literals in the
// tests of tenancy and internal/sqldb: the Guard's attack corpus (unions,
// CTEs, quoting tricks, settings, walls) and the statements bun builds.
var sqlInTests = regexp.MustCompile("(?s)(\"(?:\\\\.|[^\"\\\\])*\"|`[^`]*`)")

var startsLikeSQL = regexp.MustCompile(`(?i)^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|SET|RESET|CREATE|ALTER|DROP|EXPLAIN|COPY|LOCK|PREPARE|EXECUTE|DECLARE|FETCH|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|ANALYZE|VACUUM|LISTEN|NOTIFY|TRUNCATE|GRANT|REVOKE|DO|CALL|VALUES|TABLE|SHOW|DISCARD)\b`)

// TestParsersAgree: built with cgo the Guard reads statements with
// libpg_query compiled from C; without cgo, with the same parser run as
// WebAssembly. Both must read every statement alike — the same tree, or
// both refuse it — or the Guard's decisions would depend on how the host
// built its binary. The corpus is every SQL statement in the tests of
// tenancy and internal/sqldb. The C parser is also read from eight
// goroutines at once, as the Guard does without a lock.
func TestParsersAgree(t *testing.T) {
	var corpus []string
	for _, glob := range []string{"*_test.go", "../internal/sqldb/*_test.go"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range sqlInTests.FindAllString(string(b), -1) {
				s := m[1 : len(m)-1]
				if m[0] == '"' {
					if u, err := strconv.Unquote(m); err == nil {
						s = u
					}
				}
				if startsLikeSQL.MatchString(s) {
					corpus = append(corpus, s)
				}
			}
		}
	}
	if len(corpus) < 300 {
		t.Fatalf("found %d statements in the tests, want hundreds: is the corpus still there?", len(corpus))
	}
	var refused int
	for _, q := range corpus {
		c, cerr := parse(q)
		w, werr := pgquery.Parse(q)
		if (cerr == nil) != (werr == nil) {
			t.Errorf("parse(%q): cgo error %v, WebAssembly error %v", q, cerr, werr)
			continue
		}
		if cerr != nil {
			refused++
			if cerr.Error() != werr.Error() {
				t.Errorf("parse(%q): cgo error %q, WebAssembly error %q", q, cerr, werr)
			}
			continue
		}
		if !proto.Equal(c, w) {
			t.Errorf("parse(%q): the two parsers read different trees", q)
		}
	}
	t.Logf("%d statements, %d refused by both", len(corpus), refused)

	// The Guard parses from every goroutine at once, with no lock: eight
	// goroutines parse the corpus together and read what one did alone.
	want := make([]*pg.ParseResult, len(corpus))
	for i, q := range corpus {
		want[i], _ = parse(q)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range corpus {
				q := corpus[(i+g*len(corpus)/8)%len(corpus)]
				got, err := parse(q)
				if w := want[(i+g*len(corpus)/8)%len(corpus)]; (err == nil) != (w != nil) || (err == nil && !proto.Equal(got, w)) {
					t.Errorf("parse(%q) from 8 goroutines at once read otherwise than alone", q)
					return
				}
			}
		})
	}
	wg.Wait()
}
