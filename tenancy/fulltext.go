package tenancy

import "strings"

// FullTextIndex marks, embedded in a bun model, a SQLite FTS5 table that
// indexes the rows of a tenant-owned table by keyed tokens (blind indexes,
// keyed per tenant) rather than by anything a tenant could read: a
// contentless table whose rowid is the indexed row's rowid. Such a table
// has no tenant_id to confine a statement by, and FTS5 keeps its index in
// shadow tables beside it (name_data, name_idx, name_content, name_docsize,
// name_config) that hold every tenant's tokens and rowids; beside them
// may stand name_mark, a table of one row whose column w is the highest
// rowid of the indexed table that the index holds (the rows above it are
// pending, kept out of the index until triggers move them in). So the Guard
// walls it off: a statement that names the table or a shadow table in any
// way (a FROM item, a join, a subquery, a CTE, a table-valued function
// call, a column, an INSERT of an FTS5 command such as 'delete-all' or
// 'rebuild', DDL, a PRAGMA, a statement the parser cannot read), or that
// mentions fts5vocab, is refused — except the one shape an exact look-up
// needs, as an IN condition on a rowid:
//
//	… rowid IN (SELECT rowid FROM name WHERE name = '<tokens>')
//
// (or x.c IN (SELECT c FROM name WHERE name = '<tokens>') for another
// column c the table yields, such as the indexed row's key), where
// '<tokens>' is a string literal of 1 to 64 words of 26 to 128 ASCII
// letters and digits separated by single spaces: an AND of exact tokens,
// no prefix query (*), no column filter, no NEAR or OR. It yields the
// rows holding every token; the condition it sits in confines the rows
// read to the tenant as usual. Tokens are keyed per
// tenant, so a tenant's tokens match only its own rows, and no statement
// of the application can read another tenant's tokens to try.
//
// The look-up may also reach the pending rows, as a second arm of the
// same IN:
//
//	… x.c IN (SELECT c FROM name WHERE name = '<tokens>'
//		UNION ALL SELECT c FROM name
//		WHERE rowid > (SELECT w FROM name_mark) AND rowid < (SELECT w FROM name_mark) + <integer>
//		AND instr(' ' || col || ' ', ' <token> ') > 0 [AND instr(…) > 0 …])
//
// with those conditions in that order and 1 to 64 instr conditions, each
// one token as above between single spaces, on an unqualified column of
// the table. FTS5 reads those rows of the indexed table along its rowid
// (every tenant's, at most <integer> rowids): the arm yields the keys of
// the pending rows whose column holds every token, and the condition it
// sits in confines them to the tenant, as for the index. The watermark is
// named nowhere else: no statement reads its value or writes it. What a
// tenant can learn from the arm is whether its own rows are above or
// below the watermark — which a row's rowid, readable with the row, tells
// already: rowids count the rows of every tenant.
//
// The table is written by triggers on the indexed table, which run inside
// the database and need no statement of the application's. Register the
// model with InstallGuard (or Guard.Register) like a tenant-owned one.
type FullTextIndex struct{}

func (*FullTextIndex) fullTextIndex() {}

// fullTextModel is implemented only by models embedding FullTextIndex.
type fullTextModel interface{ fullTextIndex() }

// ftsMark is the suffix of a full-text index's watermark table: one row,
// one column w, the highest rowid of the indexed table whose row is in
// the index (the rows above it are pending, read by their own column).
const ftsMark = "_mark"

// fts5Shadows are the suffixes of the shadow tables FTS5 keeps beside a
// table.
var fts5Shadows = []string{"_data", "_idx", "_content", "_docsize", "_config"}

// ftsQueryOK reports whether q is an FTS5 query the Guard lets through: 1
// to 64 words of 26 to 128 ASCII letters and digits, separated by single
// spaces. Such a word is no FTS5 keyword (AND, OR, NOT, NEAR) and matches
// only itself.
func ftsQueryOK(q string) bool {
	words := strings.Split(q, " ")
	if len(words) == 0 || len(words) > 64 {
		return false
	}
	for _, w := range words {
		if len(w) < 26 || len(w) > 128 {
			return false
		}
		for i := range len(w) {
			if c := w[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// ftsLit is a string literal of a look-up of a full-text index's pending
// rows: a space, or a word between spaces.
type ftsLit struct {
	l     lit
	space bool
}

// ok reports whether v, the literal's value, is what it must be: " ", or
// one word ftsQueryOK takes between single spaces.
func (f ftsLit) ok(v string) bool {
	if f.space {
		return v == " "
	}
	return len(v) > 2 && v[0] == ' ' && v[len(v)-1] == ' ' && !strings.Contains(v[1:len(v)-1], " ") && ftsQueryOK(v[1:len(v)-1])
}
