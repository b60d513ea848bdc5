//go:build cgo

package tenancy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

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
// tenancy and internal/sqldb.
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
}
