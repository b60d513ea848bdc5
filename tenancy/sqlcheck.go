package tenancy

import (
	"fmt"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// shape is what the Guard learns from one statement text with its literals
// blanked out: everything but the tenant's id, which the context supplies.
type shape struct {
	err    error    // a refusal that holds whatever the context
	owned  bool     // reads or writes a tenant-owned table: needs a tenant
	tables []string // the tenant-owned tables it reads or writes
	tenant []lit    // the string literals that must be the tenant's id
	// ftsQuery are the string literals of full-text index look-ups, which
	// must be exact tokens (ftsQueryOK).
	ftsQuery []lit
	// ftsWords are the string literals of the look-ups of a full-text
	// index's pending rows: each one exact token between spaces, or a
	// space (ftsLit.ok).
	ftsWords []ftsLit
	setting  bool // can change settings row-level security depends on
	policy   bool // changes row-level security of a table
	// sessionLock takes an advisory lock that outlives the transaction:
	// refused under a tenant's principal (pgwalls.go).
	sessionLock bool
	// pairLock takes a two-key advisory lock, the space of the system
	// principal's claims: refused under a tenant's principal
	// (guard_locks.go).
	pairLock bool
	// walCheckpoint is SQLite's PRAGMA wal_checkpoint: refused under a
	// tenant's principal but for the SDK's own (guard_xids.go).
	walCheckpoint bool
	// tempKept leaves an object in the temporary schema after the
	// transaction: refused on PostgreSQL under a tenant's principal
	// (guard_shadow.go).
	tempKept bool
	// made and madeTemp name (lower case) the relations and types the
	// statement creates or renames to, madeTemp those in the temporary
	// schema; schemaChange creates or alters a schema, a trigger or
	// privileges (guard_shadow.go).
	made, madeTemp []string
	schemaChange   bool
	// counter is why the statement reads a counter of the whole server or
	// file (counters.go), "" when it reads none: refused under a
	// tenant's principal.
	counter string
	// rowids counts the references to SQLite's rowid (rowid, _rowid_)
	// beyond those of full-text look-ups, and oids those to oid, which
	// is rowid on SQLite and a catalogue's key on PostgreSQL
	// (counters.go).
	rowids, oids int
	// registry is the shape of the statement with the tenant registries
	// (registry.go) as its tenant-owned tables, nil when it names none:
	// what a statement under a tenant's principal must satisfy.
	registry *shape
	// member is the shape of the statement with the MemberOwned tables
	// (creator.go) as its tenant-owned tables, keyed by member_id, nil when
	// it names none: what a statement under a creator's principal must
	// satisfy.
	member *shape
	// uncached: a literal blankLiterals blanked out is not a constant of
	// the parse tree (a U&"…" UESCAPE character, an option's value such
	// as EXPLAIN (ANALYZE 'true')), or the parser could not read the
	// statement and the Guard read its words, literals included (SQLite's
	// PRAGMA 'name'(…)): its values may change what the statement is, so
	// the shape is reused only for the same text.
	uncached bool
}

// analyze parses query with PostgreSQL's own grammar (libpg_query; see
// parse) and works out its shape. bun quotes
// identifiers with double quotes on SQLite too, so the one grammar reads
// both dialects; a statement it cannot read (SQLite's INSERT OR REPLACE,
// REPLACE, a second ON CONFLICT) is refused when it names a tenant-owned
// table. lits holds the byte offsets of the query's string literals, as
// blankLiterals found them, when the shape is to be cached.
func analyze(query string, lits []int, cached bool, owned func(string) bool, text func() fullText, registry, member func(string) string) *shape {
	tree, err := parse(query)
	if err != nil {
		// Read from its words, literals included (PRAGMA 'name'(…)): a
		// shape for this text only.
		sh := unreadableWith(query, owned, registry)
		sh.uncached = true
		return sh
	}
	sh := &shape{}
	a := &analysis{owned: owned, sh: sh, ft: text()}
	if cached {
		a.litAt = make(map[int32]int, len(lits))
		for i, at := range lits {
			a.litAt[int32(at)] = i
		}
		sh.uncached = !constantsAt(tree, a.litAt)
	}
	for _, raw := range tree.Stmts {
		a.top(raw.Stmt)
	}
	sh.rowids -= a.ftsRowids // counters.go
	if len(a.ft.walled) > 0 {
		a.wall(tree, query, cached)
	}
	// The same statement with the registries as the tenant-owned tables,
	// each keyed by its own column (registry.go).
	r := &analysis{key: registry, sh: &shape{}, litAt: a.litAt,
		owned: func(n string) bool {
			k := registry(n)
			return k != "" && k != noTenantColumn && k != unreachableKey
		}}
	for _, raw := range tree.Stmts {
		r.top(raw.Stmt)
		r.noTenantWrites(raw.Stmt, registry)
	}
	if r.sh.owned {
		sh.registry = r.sh
	}
	// The same statement with the MemberOwned tables as the tenant-owned
	// ones, keyed by member_id (creator.go).
	m := &analysis{key: member, sh: &shape{}, litAt: a.litAt,
		owned: func(n string) bool { return member(n) != "" }}
	for _, raw := range tree.Stmts {
		m.top(raw.Stmt)
	}
	if m.sh.owned {
		sh.member = m.sh
	}
	return sh
}

// constantsAt reports whether every literal offset of litAt is where the
// parse tree holds a string constant: a literal the parser turned into
// something else (the lexer reads a UESCAPE character into the name
// before it; an option's value is a word) is a value the shape cannot
// stand for.
func constantsAt(tree *pg.ParseResult, litAt map[int32]int) bool {
	found := make(map[int32]bool, len(litAt))
	walk(tree.ProtoReflect(), func(x proto.Message) bool {
		c, ok := x.(*pg.A_Const)
		switch {
		case !ok:
		case c.GetSval() != nil:
			if _, ok := litAt[c.Location]; ok {
				found[c.Location] = true
			}
		case c.GetBsval() != nil:
			// X'…' (bun's bytes on SQLite) and B'…': located at the
			// prefix; never a value the shape reads.
			if _, ok := litAt[c.Location+1]; ok {
				found[c.Location+1] = true
			}
		}
		return true
	})
	return len(found) == len(litAt)
}

// fullText is what the Guard knows of the full-text indexes (see
// FullTextIndex): their tables, and those with their shadow tables.
type fullText struct{ fts, walled []string }

func (f fullText) isFTS(name string) bool {
	return slices.ContainsFunc(f.fts, func(t string) bool { return strings.EqualFold(t, name) })
}

// isMark reports whether name is a full-text index's watermark table
// (FullTextIndex).
func (f fullText) isMark(name string) bool {
	return slices.ContainsFunc(f.fts, func(t string) bool { return strings.EqualFold(t+ftsMark, name) })
}

func (f fullText) isWalled(name string) bool {
	return strings.EqualFold(name, "fts5vocab") ||
		slices.ContainsFunc(f.walled, func(t string) bool { return strings.EqualFold(t, name) })
}

// wall refuses a statement that names a full-text index or its shadow
// tables anywhere but in the look-ups ftsLookup allowed, each of which
// names its index twice. Both the statement's text (comments stripped,
// literals blanked, quotes dropped) and every name in its parse tree are
// counted, so that neither a form the walk of the tree does not know nor
// a name the parser decodes (U&"…") slips by.
func (a *analysis) wall(tree *pg.ParseResult, query string, cached bool) {
	text := query
	if cached {
		text, _, _ = blankLiterals(query)
	}
	inText := 0
	for _, w := range identWords(unquote(strings.ToLower(stripComments(text)))) {
		if a.ft.isWalled(w) {
			inText++
		}
	}
	inTree := 0
	for _, raw := range tree.Stmts {
		walkStrings(raw.ProtoReflect(), func(s string) {
			if a.ft.isWalled(s) {
				inTree++
			}
		})
	}
	if inText != a.walledNames || inTree != a.walledNames {
		a.fail("a full-text index and its shadow tables may be named only as x.c IN (SELECT c FROM <index> WHERE <index> = '<tokens>' [UNION ALL SELECT c FROM <index> WHERE rowid > (SELECT w FROM <index>_mark) AND rowid < (SELECT w FROM <index>_mark) + <n> AND instr(' ' || <column> || ' ', ' <token> ') > 0 …])")
	}
}

// walkStrings calls fn with every string field of m and the messages
// below it.
func walkStrings(m protoreflect.Message, fn func(string)) {
	if !m.IsValid() {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if fd.Message() != nil {
					walkStrings(l.Get(i).Message(), fn)
				} else if fd.Kind() == protoreflect.StringKind {
					fn(l.Get(i).String())
				}
			}
		case fd.Message() != nil:
			walkStrings(v.Message(), fn)
		case fd.Kind() == protoreflect.StringKind:
			fn(v.String())
		}
		return true
	})
}

// ftsLookup reports whether x is exactly a full-text index look-up the
// Guard lets through, x.c IN (SELECT c FROM <index> WHERE <index> =
// '<tokens>') for one column c, and records its literal, checked by
// ftsQueryOK on each run.
func (a *analysis) ftsLookup(x *pg.SubLink) bool {
	if len(a.ft.fts) == 0 || x.SubLinkType != pg.SubLinkType_ANY_SUBLINK {
		return false
	}
	if len(x.OperName) > 1 || len(x.OperName) == 1 && x.OperName[0].GetString_().GetSval() != "=" {
		return false
	}
	isCol := func(n *pg.Node, qualified bool, name string) bool {
		f := n.GetColumnRef().GetFields()
		if len(f) == 0 || len(f) > 2 || len(f) == 2 && !qualified {
			return false
		}
		return strings.EqualFold(f[len(f)-1].GetString_().GetSval(), name)
	}
	tf := x.Testexpr.GetColumnRef().GetFields()
	if len(tf) == 0 {
		return false
	}
	key := tf[len(tf)-1].GetString_().GetSval() // the column the look-up yields: rowid, or the indexed table's key
	if key == "" || !isCol(x.Testexpr, true, key) {
		return false
	}
	q := x.Subselect.GetSelectStmt()
	if q == nil {
		return false
	}
	var pending *pg.SelectStmt
	if q.Op == pg.SetOperation_SETOP_UNION && q.All && q.WithClause == nil && len(q.SortClause) == 0 &&
		q.LimitCount == nil && q.LimitOffset == nil && len(q.LockingClause) == 0 {
		q, pending = q.Larg, q.Rarg
	}
	fts, l, ok := a.ftsMatch(q, key, isCol)
	if !ok {
		return false
	}
	var words []ftsLit
	if pending != nil {
		if words, ok = a.ftsPending(pending, key, fts, isCol); !ok {
			return false
		}
		a.walledNames += 3
	}
	a.sh.ftsQuery = append(a.sh.ftsQuery, l)
	a.sh.ftsWords = append(a.sh.ftsWords, words...)
	a.ftsLookups++
	a.walledNames += 2
	a.ftsRowids += rowidRefs(x) // counters.go
	return true
}

// plainSelect reports whether q is a plain SELECT of one target from one
// table: no CTE, set operation, DISTINCT, grouping, window, VALUES,
// ordering, limit or locking.
func plainSelect(q *pg.SelectStmt) bool {
	return q != nil && q.WithClause == nil && q.IntoClause == nil && q.Op == pg.SetOperation_SETOP_NONE &&
		len(q.DistinctClause) == 0 && len(q.GroupClause) == 0 && !q.GroupDistinct && q.HavingClause == nil &&
		len(q.WindowClause) == 0 && len(q.ValuesLists) == 0 && len(q.SortClause) == 0 && q.LimitCount == nil &&
		q.LimitOffset == nil && len(q.LockingClause) == 0 && len(q.TargetList) == 1 && len(q.FromClause) == 1
}

// ftsMatch reports whether q is SELECT c FROM <index> WHERE <index> =
// '<tokens>', and returns the index's name and the literal.
func (a *analysis) ftsMatch(q *pg.SelectStmt, key string, isCol func(*pg.Node, bool, string) bool) (string, lit, bool) {
	if !plainSelect(q) {
		return "", lit{}, false
	}
	rt := q.TargetList[0].GetResTarget()
	if rt == nil || rt.Name != "" || len(rt.Indirection) > 0 || !isCol(rt.Val, false, key) {
		return "", lit{}, false
	}
	rv := q.FromClause[0].GetRangeVar()
	if rv == nil || rv.Alias != nil || rv.Schemaname != "" || rv.Catalogname != "" || !a.ft.isFTS(rv.Relname) {
		return "", lit{}, false
	}
	w := q.WhereClause.GetAExpr()
	if w == nil || w.Kind != pg.A_Expr_Kind_AEXPR_OP || len(w.Name) != 1 || w.Name[0].GetString_().GetSval() != "=" ||
		!isCol(w.Lexpr, false, rv.Relname) {
		return "", lit{}, false
	}
	l, ok := a.literal(w.Rexpr)
	return rv.Relname, l, ok
}

// ftsPending reports whether q is the look-up of the pending rows of the
// index fts (those above its watermark, see FullTextIndex): SELECT c FROM
// <index> WHERE rowid > (SELECT w FROM <index>_mark) AND rowid < (SELECT
// w FROM <index>_mark) + <integer> AND instr(' ' || col || ' ', ' <token>
// ') > 0 [AND …], the conditions in that order, 1 to 64 tokens, and
// returns the tokens' literals.
func (a *analysis) ftsPending(q *pg.SelectStmt, key, fts string, isCol func(*pg.Node, bool, string) bool) ([]ftsLit, bool) {
	if !plainSelect(q) {
		return nil, false
	}
	rt := q.TargetList[0].GetResTarget()
	if rt == nil || rt.Name != "" || len(rt.Indirection) > 0 || !isCol(rt.Val, false, key) {
		return nil, false
	}
	rv := q.FromClause[0].GetRangeVar()
	if rv == nil || rv.Alias != nil || rv.Schemaname != "" || rv.Catalogname != "" || !strings.EqualFold(rv.Relname, fts) {
		return nil, false
	}
	cs := conjuncts(q.WhereClause, nil)
	if len(cs) < 3 || len(cs) > 2+64 {
		return nil, false
	}
	op := func(n *pg.Node, name string) *pg.A_Expr {
		x := n.GetAExpr()
		if x == nil || x.Kind != pg.A_Expr_Kind_AEXPR_OP || len(x.Name) != 1 || x.Name[0].GetString_().GetSval() != name {
			return nil
		}
		return x
	}
	markRead := func(n *pg.Node) bool {
		l := n.GetSubLink()
		if l == nil || l.SubLinkType != pg.SubLinkType_EXPR_SUBLINK || l.Testexpr != nil || len(l.OperName) > 0 {
			return false
		}
		s := l.Subselect.GetSelectStmt()
		if !plainSelect(s) || s.WhereClause != nil {
			return false
		}
		rt := s.TargetList[0].GetResTarget()
		if rt == nil || rt.Name != "" || len(rt.Indirection) > 0 || !isCol(rt.Val, false, "w") {
			return false
		}
		rv := s.FromClause[0].GetRangeVar()
		return rv != nil && rv.Alias == nil && rv.Schemaname == "" && rv.Catalogname == "" && strings.EqualFold(rv.Relname, fts+ftsMark)
	}
	gt := op(cs[0], ">")
	if gt == nil || !isCol(gt.Lexpr, false, "rowid") || !markRead(gt.Rexpr) {
		return nil, false
	}
	lt := op(cs[1], "<")
	if lt == nil || !isCol(lt.Lexpr, false, "rowid") {
		return nil, false
	}
	plus := op(lt.Rexpr, "+")
	if plus == nil || plus.Lexpr == nil || !markRead(plus.Lexpr) || plus.Rexpr.GetAConst().GetIval() == nil {
		return nil, false
	}
	var words []ftsLit
	for _, c := range cs[2:] {
		pos := op(c, ">")
		if pos == nil || pos.Rexpr.GetAConst().GetIval() == nil || pos.Rexpr.GetAConst().GetIval().GetIval() != 0 {
			return nil, false
		}
		f := pos.Lexpr.GetFuncCall()
		if f == nil || len(f.Funcname) != 1 || !strings.EqualFold(f.Funcname[0].GetString_().GetSval(), "instr") ||
			len(f.Args) != 2 || f.AggStar || f.AggDistinct || f.FuncVariadic || f.Over != nil || f.AggFilter != nil || len(f.AggOrder) > 0 {
			return nil, false
		}
		// ' ' || col || ' '
		outer := op(f.Args[0], "||")
		if outer == nil {
			return nil, false
		}
		inner := op(outer.Lexpr, "||")
		if inner == nil {
			return nil, false
		}
		sp, ok := a.literals(inner.Lexpr, outer.Rexpr) // ' ', checked on each run
		if !ok {
			return nil, false
		}
		col := inner.Rexpr.GetColumnRef().GetFields()
		if len(col) != 1 || col[0].GetString_() == nil || strings.EqualFold(col[0].GetString_().GetSval(), fts) {
			return nil, false
		}
		l, ok := a.literal(f.Args[1])
		if !ok {
			return nil, false
		}
		words = append(words, ftsLit{l: l}, ftsLit{l: sp[0], space: true}, ftsLit{l: sp[1], space: true})
	}
	return words, true
}

// unreadable is the shape of a statement the Guard cannot read as the
// database will: it is refused when it mentions settings or row security
// or names a tenant-owned table, and passes otherwise. Comments are
// stripped as SQLite does (without nesting); words inside quotes count.
func unreadable(query string, owned func(string) bool) *shape {
	sh := &shape{}
	bare := unquote(strings.ToLower(stripComments(query)))
	if err := sqliteRefusal(bare); err != nil { // sqlitewalls.go
		sh.err = err
		return sh
	}
	sh.walCheckpoint = walCheckpoint(bare) // guard_xids.go
	for _, w := range identWords(bare) {
		if slices.Contains(counterRelations, w) { // counters.go
			sh.counter = w + " holds counters every tenant's work moves"
		}
	}
	for _, w := range []string{"set_config", "app.", "row level security", "policy"} {
		if strings.Contains(bare, w) {
			sh.err = fmt.Errorf("%w: a statement the Guard cannot read mentions %q", ErrUnscoped, w)
			return sh
		}
	}
	if strings.Contains(bare, "writable_schema") {
		sh.err = fmt.Errorf("%w: writable_schema is not allowed", ErrUnscoped)
		return sh
	}
	if words := identWords(bare); len(words) > 1 && words[0] == "drop" && words[1] == "trigger" {
		// SQLite's DROP TRIGGER names no table: it could drop the audit
		// log's append-only triggers.
		sh.err = fmt.Errorf("%w: DROP TRIGGER is not allowed: change schemas before InstallGuard or as the owner", ErrUnscoped)
		return sh
	}
	if beginsOrEndsTx(bare) {
		sh.err = fmt.Errorf("%w: %s", ErrUnscoped, txControlRefusal)
		return sh
	}
	for _, word := range identWords(bare) {
		if owned(word) {
			sh.owned, sh.tables = true, []string{word}
			sh.err = fmt.Errorf("%w: a statement on %s the Guard cannot read as the database will (REPLACE, INSERT OR REPLACE, a second ON CONFLICT; on SQLite also nested comments, E-prefixed strings with backslashes, parameter names SQLite reads on (@a, $1::a(…)) or $ not followed by a digit, and bracketed or backticked names holding other than letters, digits and spaces)", ErrUnscoped, word)
			return sh
		}
	}
	return sh
}

// txControlRefusal is why the Guard refuses a statement that begins or
// ends a transaction.
const txControlRefusal = "BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK and PREPARE TRANSACTION are not allowed: use tenancy.RunInTx (SAVEPOINT, RELEASE and ROLLBACK TO are)"

// beginsOrEndsTx reports whether a statement of bare (lower case, comments
// stripped), split at semicolons, begins or ends a transaction in a form
// the parser cannot read, such as SQLite's BEGIN IMMEDIATE. The END of a
// SQLite trigger's body ends no transaction. A semicolon inside a string
// makes another statement of the text after it: a false refusal at worst.
func beginsOrEndsTx(bare string) bool {
	body := false
	for _, stmt := range strings.Split(bare, ";") {
		w := identWords(stmt)
		switch {
		case len(w) == 0:
		case body:
			body = w[0] != "end"
		case w[0] == "create":
			body = slices.Contains(w, "trigger") && slices.Contains(w, "begin")
		case w[0] == "begin", w[0] == "commit", w[0] == "end", w[0] == "abort",
			w[0] == "rollback" && !slices.Contains(w, "to"):
			return true
		}
	}
	return false
}

// sqliteReadsOtherwise reports whether SQLite would split query into
// tokens other than PostgreSQL's parser does, so that text the parser
// takes for a comment, a string or a subscript is SQL to SQLite: a block
// comment containing "/*" (PostgreSQL's nest, SQLite's do not), an E-prefixed
// string with a backslash (an escape to PostgreSQL, not to SQLite), a $
// not followed by a digit (a dollar-quoted string to PostgreSQL, a
// parameter to SQLite), and a [bracketed] or `backticked` name holding
// anything but letters, digits, underscores and spaces (a subscript or an
// operator to PostgreSQL, a name to SQLite). So is a parameter name that
// starts with @, # or : (operators or a slice to PostgreSQL), or a $1 followed
// by "(" or ":": SQLite reads such a name on through "::" and a
// parenthesized suffix up to the first ")", quotes and all, so that
// @a(') is one name to it and an operator, a call and the start of a
// string to the parser.
func sqliteReadsOtherwise(q string) bool {
	if strings.IndexByte(q, '[') < 0 && strings.IndexByte(q, '`') < 0 && strings.IndexByte(q, '\\') < 0 &&
		strings.IndexByte(q, '$') < 0 && strings.Count(q, "/*") < 2 &&
		strings.IndexByte(q, '@') < 0 && strings.IndexByte(q, '#') < 0 && strings.IndexByte(q, ':') < 0 {
		return false // the common case: nothing SQLite reads otherwise
	}
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) && (q[j] != c || j+1 < len(q) && q[j+1] == c) {
				if q[j] == c {
					j++
				}
				j++
			}
			if c == '\'' && i > 0 && (q[i-1] == 'e' || q[i-1] == 'E') && (i < 2 || !identByte(q[i-2])) &&
				strings.ContainsRune(q[i+1:min(j, len(q))], '\\') {
				return true
			}
			i = j
		case c == '`' || c == '[':
			end := byte('`')
			if c == '[' {
				end = ']'
			}
			j := strings.IndexByte(q[i+1:], end)
			if j < 0 {
				return true
			}
			for _, b := range []byte(q[i+1 : i+1+j]) {
				if !identByte(b) && b != ' ' || b == '$' {
					return true
				}
			}
			i += j + 1
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return false
			}
			i += j
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return strings.Contains(q[i+2:], "/*")
			}
			if strings.Contains(q[i+2:i+2+j], "/*") {
				return true
			}
			i += j + 3
		case c == '$':
			if i+1 >= len(q) || q[i+1] < '0' || q[i+1] > '9' {
				return true
			}
			j := i + 1
			for j < len(q) && '0' <= q[j] && q[j] <= '9' {
				j++
			}
			if end, _ := sqliteVariable(q, i); end != j {
				return true // $1::a(…), $1(…): a longer name to SQLite
			}
			i = j - 1
		case c == '@' || c == '#' || c == ':':
			// Outside literals SQLite knows these only as the start of a
			// parameter's name, or as an illegal token that fails the
			// statement there (x::text).
			if _, ok := sqliteVariable(q, i); ok {
				return true
			}
			return false
		}
	}
	return false
}

// sqliteVariable reads a parameter's name at q[i] ($, @, # or :) as
// SQLite's tokenizer does, and returns where it ends and whether it is one
// (false: an illegal token without a name character, which fails the
// statement there): name characters, "::" pairs, and after a name
// character a suffix from "(" up to the first ")" or white space.
func sqliteVariable(q string, i int) (end int, ok bool) {
	n, j := 0, i+1
	for ; j < len(q); j++ {
		c := q[j]
		switch {
		case identByte(c) || c >= 0x80:
			n++
			continue
		case c == '(' && n > 0:
			for j++; j < len(q) && q[j] != ')' && !strings.ContainsRune(" \t\n\f\r\v", rune(q[j])); j++ {
			}
			if j >= len(q) || q[j] != ')' {
				return j, true // illegal to SQLite; counted as a name all the same
			}
			return j + 1, true
		case c == ':' && j+1 < len(q) && q[j+1] == ':':
			j++
			continue
		}
		break
	}
	return j, n > 0
}

// identWords splits a lower-cased, unquoted statement into its words.
func identWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r > 0x7f || !identByte(byte(r)) })
}

// lit is a string literal of a statement: its ordinal among the
// statement's literals when the shape is cached (values differ from one
// statement to the next), else its value.
type lit struct {
	ord int
	val string
}

// analysis walks one parsed statement.
type analysis struct {
	owned func(string) bool
	sh    *shape
	ft    fullText
	// ftsLookups counts the full-text index look-ups ftsLookup allowed,
	// ftsRowids the references to rowid they hold (counters.go).
	ftsLookups, ftsRowids int
	// walledNames counts the names of full-text index tables (the index,
	// its watermark) the look-ups ftsLookup allowed hold.
	walledNames int
	litAt       map[int32]int // byte offset of a string literal -> its ordinal; nil: not cached
	// key returns the column that names the tenant in a tenant-owned
	// table: "" or nil for tenant_id (registries differ, registry.go).
	key func(table string) string
}

// writeTargetRef is rangeVar for the table a write writes.
func (a *analysis) writeTargetRef(rv *pg.RangeVar) *ref { return a.rangeVar(rv) }

// keyOf returns the column of table that names its tenant.
func (a *analysis) keyOf(table string) string {
	if a.key != nil && table != "" {
		if k := a.key(table); k != "" {
			return k
		}
	}
	return "tenant_id"
}

func (a *analysis) fail(format string, args ...any) {
	if a.sh.err == nil {
		a.sh.err = fmt.Errorf("%w: "+format, append([]any{ErrUnscoped}, args...)...)
	}
}

// inner returns the message a Node wraps, or nil.
func inner(n *pg.Node) proto.Message {
	if n == nil {
		return nil
	}
	m := n.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().Get(0))
	if fd == nil {
		return nil
	}
	return m.Get(fd).Message().Interface()
}

// walk visits m and every message below it, depth first, descending only
// where fn returns true.
func walk(m protoreflect.Message, fn func(proto.Message) bool) {
	if !m.IsValid() || !fn(m.Interface()) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap() || fd.Message() == nil:
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				walk(l.Get(i).Message(), fn)
			}
		default:
			walk(v.Message(), fn)
		}
		return true
	})
}

// sqlExecutors are functions that run SQL given as text, which the Guard
// cannot see into: ts_stat and ts_rewrite run the query they are given
// too, where a set_config switched app.tenant_id before the rows were read.
var sqlExecutors = []string{"query_to_xml", "cursor_to_xml", "table_to_xml", "schema_to_xml", "database_to_xml", "dblink", "pg_read_file", "lo_import", "lo_export",
	"ts_stat", "ts_rewrite"}

// writeTarget returns the table an INSERT, UPDATE or DELETE writes, or
// nil for any other message.
func writeTarget(x proto.Message) *pg.RangeVar {
	switch w := x.(type) {
	case *pg.InsertStmt:
		return w.Relation
	case *pg.UpdateStmt:
		return w.Relation
	case *pg.DeleteStmt:
		return w.Relation
	}
	return nil
}

// funcName returns the name of the function f calls, without its schema,
// in lower case.
func funcName(f *pg.FuncCall) string {
	if len(f.Funcname) == 0 {
		return ""
	}
	return strings.ToLower(f.Funcname[len(f.Funcname)-1].GetString_().GetSval())
}

// top checks one statement of the text.
func (a *analysis) top(n *pg.Node) {
	m := inner(n)
	if m == nil {
		return
	}
	a.pgWalls(m)  // pgwalls.go
	a.counters(m) // counters.go
	a.shadows(m)  // guard_shadow.go
	a.locks(m)    // guard_locks.go
	a.xids(m)     // guard_xids.go
	// Whatever the statement, no function may set settings or run SQL
	// text, and the settings view may not be written.
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		switch x := x.(type) {
		case *pg.FuncCall:
			name := funcName(x)
			if name == "set_config" {
				a.sh.setting = true
			}
			if pageReader(name) {
				a.fail("%s reads what every tenant's rows hold (pages or statistics)", name) // sqlitewalls.go
			}
			if connStateFunc(name) {
				a.fail("%s", connStateWhy(name)) // sqlitewalls.go
			}
			for _, f := range sqlExecutors {
				if strings.HasPrefix(name, f) {
					a.fail("%s runs SQL the Guard cannot see", name)
				}
			}
		case *pg.RangeVar:
			if strings.EqualFold(x.Relname, "pg_settings") {
				a.sh.setting = true
			}
			if pageReader(x.Relname) {
				a.fail("%s reads what every tenant's rows hold (pages or statistics)", strings.ToLower(x.Relname)) // sqlitewalls.go
			}
		case *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt:
			// SQLite's schema table, written with writable_schema, can
			// rename tenant_id or drop the audit log's triggers.
			if rv := writeTarget(x); rv != nil && strings.HasPrefix(strings.ToLower(rv.Relname), "sqlite_") {
				a.fail("writing %s is not allowed", strings.ToLower(rv.Relname))
			}
		}
		return true
	})
	switch s := m.(type) {
	case *pg.SelectStmt, *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt:
		a.query(m, nil)
	case *pg.ExplainStmt:
		a.top(s.Query)
	case *pg.VariableSetStmt:
		name := strings.ToLower(s.Name)
		switch {
		case strings.HasPrefix(name, "app."), s.Kind == pg.VariableSetKind_VAR_RESET_ALL,
			name == "role", name == "session_authorization", name == "search_path", name == "row_security":
			a.sh.setting = true
		}
	case *pg.DiscardStmt:
		a.sh.setting = true
	case *pg.DoStmt:
		a.fail("DO blocks are not allowed")
	case *pg.CreateFunctionStmt, *pg.AlterFunctionStmt, *pg.CreatePLangStmt, *pg.RuleStmt, *pg.CreateEventTrigStmt:
		a.fail("defining functions, procedures, rules or event triggers is not allowed")
	case *pg.CreatePolicyStmt, *pg.AlterPolicyStmt:
		a.sh.policy = true
	case *pg.DropStmt:
		if s.RemoveType == pg.ObjectType_OBJECT_POLICY {
			a.sh.policy = true
			break
		}
		// Dropping a tenant-owned table, or a trigger on one (the audit
		// log's append-only triggers), is a schema change for migrations.
		walk(s.ProtoReflect(), func(x proto.Message) bool {
			if str, ok := x.(*pg.String); ok && a.owned(str.Sval) {
				a.fail("DROP on tenant-owned table %s is not allowed: change schemas before InstallGuard or as the owner", strings.ToLower(str.Sval))
			}
			return true
		})
	case *pg.AlterTableStmt:
		other := false
		for _, c := range s.Cmds {
			switch c.GetAlterTableCmd().GetSubtype() {
			case pg.AlterTableType_AT_EnableRowSecurity, pg.AlterTableType_AT_DisableRowSecurity,
				pg.AlterTableType_AT_ForceRowSecurity, pg.AlterTableType_AT_NoForceRowSecurity:
				a.sh.policy = true
			default:
				other = true
			}
		}
		if other && s.Relation != nil && a.owned(s.Relation.Relname) {
			// Renaming tenant_id and adding another with a default hands
			// every tenant's rows to one; on SQLite nothing else stops it.
			a.fail("ALTER TABLE of tenant-owned table %s is not allowed: change schemas before InstallGuard or as the owner", strings.ToLower(s.Relation.Relname))
		}
	case *pg.CreateStmt:
		// Creating a tenant-owned table holds nobody's rows yet; one that
		// inherits from or references a tenant-owned table reaches them,
		// and a temporary one of its name hides it from every tenant that
		// uses the connection next (SQLite).
		if s.Relation != nil && s.Relation.Relpersistence == "t" && a.owned(s.Relation.Relname) {
			a.fail("a temporary table may not take the name of tenant-owned table %s", strings.ToLower(s.Relation.Relname))
		}
		walk(s.ProtoReflect(), func(x proto.Message) bool {
			if rv, ok := x.(*pg.RangeVar); ok && rv != s.Relation && a.owned(rv.Relname) {
				a.fail("CREATE TABLE naming tenant-owned table %s is not allowed: change schemas before InstallGuard or as the owner", strings.ToLower(rv.Relname))
			}
			return true
		})
	case *pg.IndexStmt:
		// A unique index that does not begin with tenant_id makes one
		// tenant's write fail on another's row.
		if s.Unique && s.Relation != nil && a.owned(s.Relation.Relname) &&
			(len(s.IndexParams) == 0 || !strings.EqualFold(s.IndexParams[0].GetIndexElem().GetName(), "tenant_id")) {
			a.fail("a unique index on tenant-owned table %s must begin with tenant_id", strings.ToLower(s.Relation.Relname))
		}
	case *pg.TransactionStmt:
		// Savepoints are what bun's nested transactions send; a statement
		// that begins or ends a transaction would end RunInTx's early (the
		// rest of fn then commits on its own) or return a pooled
		// connection inside one, to run the next user's statements.
		switch s.Kind {
		case pg.TransactionStmtKind_TRANS_STMT_SAVEPOINT, pg.TransactionStmtKind_TRANS_STMT_RELEASE,
			pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		default:
			a.fail("%s", txControlRefusal)
		}
	case *pg.VariableShowStmt, *pg.CheckPointStmt,
		*pg.CommentStmt, *pg.CreateSchemaStmt, *pg.CreateSeqStmt, *pg.AlterSeqStmt, *pg.CreateEnumStmt,
		*pg.AlterEnumStmt, *pg.CreateDomainStmt, *pg.GrantStmt, *pg.VacuumStmt:
		// Schema changes by migrations.
	default:
		// Anything else — TRUNCATE (which row-level security ignores),
		// COPY, CREATE TABLE AS, views, MERGE, PREPARE, LOCK, and the
		// schema changes CREATE TRIGGER and RENAME — may not touch a
		// tenant-owned table.
		walk(m.ProtoReflect(), func(x proto.Message) bool {
			if rv, ok := x.(*pg.RangeVar); ok && a.owned(rv.Relname) {
				a.fail("%s on tenant-owned table %s is not allowed", strings.TrimSuffix(string(m.ProtoReflect().Descriptor().Name()), "Stmt"), strings.ToLower(rv.Relname))
			}
			return true
		})
	}
}

// ref is one table, subquery or function in a FROM list, or the target of
// a write.
type ref struct {
	name  string // alias, or the table's name
	table string // tenant-owned table, or ""
	ok    bool   // constrained to the tenant
}

// level is the FROM list of one query level.
type level struct {
	refs  []*ref
	outer *level
}

// lookup resolves a qualifier as SQL does: the innermost level first.
// Two references of one name in a level are ambiguous.
func (s *level) lookup(name string) *ref {
	for ; s != nil; s = s.outer {
		var found *ref
		for _, r := range s.refs {
			if strings.EqualFold(r.name, name) {
				if found != nil {
					return nil
				}
				found = r
			}
		}
		if found != nil {
			return found
		}
	}
	return nil
}

// cond is a condition and the references it restricts: all of a WHERE's,
// both sides of an inner join's, the nullable side of an outer join's.
type cond struct {
	expr     *pg.Node
	eligible []*ref
	using    [2]*ref // a JOIN … USING (tenant_id) between two tables
}

func (a *analysis) rangeVar(rv *pg.RangeVar) *ref {
	r := &ref{name: rv.Relname}
	if rv.Alias != nil {
		r.name = rv.Alias.Aliasname
	}
	if a.owned(rv.Relname) {
		r.table = strings.ToLower(rv.Relname)
		a.sh.owned = true
		a.sh.tables = append(a.sh.tables, r.table)
	}
	return r
}

// with checks each common table expression as a query of its own.
func (a *analysis) with(w *pg.WithClause, outer *level) {
	if w == nil {
		return
	}
	for _, c := range w.Ctes {
		a.query(inner(c.GetCommonTableExpr().GetCtequery()), outer)
	}
}

// query checks a SELECT, INSERT, UPDATE or DELETE at any depth: every
// tenant-owned table it names must be constrained to the tenant in this
// query's own level.
func (a *analysis) query(m proto.Message, outer *level) {
	switch q := m.(type) {
	case *pg.SelectStmt:
		a.selectStmt(q, outer)
	case *pg.InsertStmt:
		a.insert(q, outer)
	case *pg.UpdateStmt:
		a.update(q, outer)
	case *pg.DeleteStmt:
		a.delete(q, outer)
	case nil:
	default:
		a.exprs(m, outer)
	}
}

func (a *analysis) selectStmt(q *pg.SelectStmt, outer *level) {
	if q == nil {
		return
	}
	a.with(q.WithClause, outer)
	if q.Op != pg.SetOperation_SETOP_NONE && q.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		// Each arm of a UNION, INTERSECT or EXCEPT is a query of its own.
		a.selectStmt(q.Larg, outer)
		a.selectStmt(q.Rarg, outer)
		for _, n := range q.SortClause {
			a.exprs(n, outer)
		}
		a.exprs(q.LimitCount, outer)
		a.exprs(q.LimitOffset, outer)
		return
	}
	s := &level{outer: outer}
	var conds []cond
	for _, f := range q.FromClause {
		a.from(f, s, &conds)
	}
	conds = append(conds, cond{expr: q.WhereClause, eligible: s.refs})
	a.constrain(s, conds)
	for _, c := range conds {
		a.exprs(c.expr, s)
	}
	for _, list := range [][]*pg.Node{q.TargetList, q.GroupClause, q.WindowClause, q.ValuesLists, q.SortClause, q.DistinctClause, q.LockingClause} {
		for _, n := range list {
			a.exprs(n, s)
		}
	}
	a.exprs(q.HavingClause, s)
	a.exprs(q.LimitCount, s)
	a.exprs(q.LimitOffset, s)
}

// from adds the references of one FROM item to s and returns them.
func (a *analysis) from(n *pg.Node, s *level, conds *[]cond) []*ref {
	switch f := inner(n).(type) {
	case *pg.RangeVar:
		r := a.rangeVar(f)
		s.refs = append(s.refs, r)
		return []*ref{r}
	case *pg.JoinExpr:
		l := a.from(f.Larg, s, conds)
		r := a.from(f.Rarg, s, conds)
		all := append(append([]*ref(nil), l...), r...)
		var eligible []*ref
		switch f.Jointype {
		case pg.JoinType_JOIN_INNER:
			eligible = all
		case pg.JoinType_JOIN_LEFT:
			eligible = r
		case pg.JoinType_JOIN_RIGHT:
			eligible = l
		}
		c := cond{expr: f.Quals, eligible: eligible}
		if len(l) == 1 && len(r) == 1 && !f.IsNatural {
			for _, u := range f.UsingClause {
				if strings.EqualFold(u.GetString_().GetSval(), "tenant_id") {
					c.using = [2]*ref{l[0], r[0]}
				}
			}
		}
		*conds = append(*conds, c)
		return all
	case *pg.RangeSubselect:
		a.query(inner(f.Subquery), s)
		r := &ref{name: f.GetAlias().GetAliasname()}
		s.refs = append(s.refs, r)
		return []*ref{r}
	case *pg.RangeFunction:
		a.exprs(f, s)
		r := &ref{name: f.GetAlias().GetAliasname()}
		s.refs = append(s.refs, r)
		return []*ref{r}
	default:
		a.exprs(f, s)
		return nil
	}
}

// conjuncts flattens the top-level ANDs of a condition.
func conjuncts(n *pg.Node, out []*pg.Node) []*pg.Node {
	if n == nil {
		return out
	}
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg.BoolExprType_AND_EXPR {
		for _, x := range b.Args {
			out = conjuncts(x, out)
		}
		return out
	}
	return append(out, n)
}

// tenantColumn resolves a column reference to tenant_id of a reference in
// s or an outer level; a bare tenant_id resolves only when s has exactly
// one reference.
func (a *analysis) tenantColumn(n *pg.Node, s *level) *ref {
	c := n.GetColumnRef()
	if c == nil {
		return nil
	}
	f := c.Fields
	switch len(f) {
	case 1:
		if len(s.refs) == 1 && strings.EqualFold(f[0].GetString_().GetSval(), a.keyOf(s.refs[0].table)) {
			return s.refs[0]
		}
	case 2:
		if f[0].GetString_() != nil {
			if r := s.lookup(f[0].GetString_().GetSval()); r != nil && strings.EqualFold(f[1].GetString_().GetSval(), a.keyOf(r.table)) {
				return r
			}
		}
	}
	return nil
}

// literal returns a plain string literal.
func (a *analysis) literal(n *pg.Node) (lit, bool) {
	c := n.GetAConst()
	if c == nil || c.GetSval() == nil {
		return lit{}, false
	}
	if a.litAt == nil {
		return lit{ord: -1, val: c.GetSval().GetSval()}, true
	}
	if i, ok := a.litAt[c.Location]; ok {
		return lit{ord: i}, true
	}
	return lit{}, false
}

// literals returns the plain string literals of ns, or false if one is
// something else.
func (a *analysis) literals(ns ...*pg.Node) ([]lit, bool) {
	out := make([]lit, len(ns))
	for i, n := range ns {
		l, ok := a.literal(n)
		if !ok {
			return nil, false
		}
		out[i] = l
	}
	return out, true
}

func eligible(r *ref, c cond) bool {
	for _, e := range c.eligible {
		if e == r {
			return true
		}
	}
	return false
}

// constrain marks the references of s that the conditions confine to the
// tenant: tenant_id = '<literal>' (or IN a list of it, or inside a row IN
// list) where the reference is eligible, and then, until nothing changes,
// tenant_id = other.tenant_id where other is confined. Every tenant-owned
// reference of s must end up confined.
func (a *analysis) constrain(s *level, conds []cond) {
	type eq struct {
		x, y *ref
		c    cond
	}
	var eqs []eq
	mark := func(r *ref, c cond, ns ...*pg.Node) {
		if r == nil || !eligible(r, c) {
			return
		}
		if lits, ok := a.literals(ns...); ok {
			a.sh.tenant = append(a.sh.tenant, lits...)
			r.ok = true
		}
	}
	for _, c := range conds {
		if c.using[0] != nil {
			eqs = append(eqs, eq{c.using[0], c.using[1], c}, eq{c.using[1], c.using[0], c})
		}
		for _, e := range conjuncts(c.expr, nil) {
			x := e.GetAExpr()
			if x == nil || len(x.Name) != 1 {
				continue
			}
			op := x.Name[0].GetString_().GetSval()
			switch {
			case x.Kind == pg.A_Expr_Kind_AEXPR_OP && op == "=":
				l, r := a.tenantColumn(x.Lexpr, s), a.tenantColumn(x.Rexpr, s)
				switch {
				case l != nil && r != nil:
					eqs = append(eqs, eq{l, r, c}, eq{r, l, c})
				case l != nil:
					mark(l, c, x.Rexpr)
				case r != nil:
					mark(r, c, x.Lexpr)
				}
			case x.Kind == pg.A_Expr_Kind_AEXPR_IN && op == "=":
				items := x.Rexpr.GetList().GetItems()
				if len(items) == 0 {
					continue
				}
				if col := a.tenantColumn(x.Lexpr, s); col != nil {
					mark(col, c, items...)
					continue
				}
				// (…, w.tenant_id, …) IN ((…, '<t>', …), …)
				row := x.Lexpr.GetRowExpr()
				for i, arg := range row.GetArgs() {
					col := a.tenantColumn(arg, s)
					if col == nil {
						continue
					}
					vals := make([]*pg.Node, len(items))
					for j, it := range items {
						if args := it.GetRowExpr().GetArgs(); len(args) == len(row.Args) {
							vals[j] = args[i]
						}
					}
					mark(col, c, vals...)
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, e := range eqs {
			if !e.x.ok && e.y.ok && eligible(e.x, e.c) {
				e.x.ok, changed = true, true
			}
		}
	}
	for _, r := range s.refs {
		if r.table != "" && !r.ok {
			a.fail("%s (as %s) is not constrained to the tenant in its own scope", r.table, r.name)
		}
	}
}

// exprs walks an expression for subqueries and checks each as a query
// with s as its outer level. A tenant-owned table reached in any other
// way is refused.
func (a *analysis) exprs(m any, s *level) {
	var msg proto.Message
	switch m := m.(type) {
	case *pg.Node:
		if m == nil {
			return
		}
		msg = m
	case proto.Message:
		msg = m
	}
	if msg == nil {
		return
	}
	walk(msg.ProtoReflect(), func(x proto.Message) bool {
		switch x := x.(type) {
		case *pg.SubLink:
			a.exprs(x.Testexpr, s)
			if !a.ftsLookup(x) {
				a.query(inner(x.Subselect), s)
			}
			return false
		case *pg.SelectStmt, *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt:
			a.query(x, s)
			return false
		case *pg.RangeVar:
			if a.owned(x.Relname) {
				a.fail("%s is named where the Guard cannot check it", strings.ToLower(x.Relname))
			}
		}
		return true
	})
}

// tenantAssigned reports whether a SET list assigns tenant_id, and refuses
// any assignment but the tenant's own id as a literal.
func (a *analysis) tenantAssigned(targets []*pg.Node, table string, allowExcluded bool) {
	for _, t := range targets {
		rt := t.GetResTarget()
		if rt == nil || !strings.EqualFold(rt.Name, a.keyOf(table)) {
			continue
		}
		if allowExcluded {
			if f := rt.Val.GetColumnRef().GetFields(); len(rt.Indirection) == 0 && len(f) == 2 &&
				strings.EqualFold(f[0].GetString_().GetSval(), "excluded") && strings.EqualFold(f[1].GetString_().GetSval(), a.keyOf(table)) {
				continue
			}
		}
		if l, ok := a.literal(rt.Val); ok && len(rt.Indirection) == 0 {
			a.sh.tenant = append(a.sh.tenant, l)
			continue
		}
		a.fail("a write may not assign %s of %s", a.keyOf(table), table)
	}
}

func (a *analysis) insert(q *pg.InsertStmt, outer *level) {
	a.with(q.WithClause, outer)
	target := a.writeTargetRef(q.Relation)
	s := &level{refs: []*ref{target}, outer: outer}
	target.ok = true // a checked insert writes only the tenant's rows
	sel := inner(q.SelectStmt)
	if target.table == "" {
		a.query(sel, outer)
	} else {
		key := a.keyOf(target.table)
		col := -1
		for i, c := range q.Cols {
			if strings.EqualFold(c.GetResTarget().GetName(), key) {
				col = i
			}
		}
		if col < 0 {
			a.fail("INSERT into %s must name %s", target.table, key)
		}
		for i, c := range q.Cols {
			if i != col && strings.EqualFold(c.GetResTarget().GetName(), key) {
				// SQLite takes the first of two, the Guard would check the last.
				a.fail("INSERT into %s names tenant_id more than once", target.table)
			}
		}
		switch sel := sel.(type) {
		case *pg.SelectStmt:
			if len(sel.ValuesLists) > 0 {
				for _, row := range sel.ValuesLists {
					items := row.GetList().GetItems()
					if col < 0 || col >= len(items) {
						a.fail("INSERT into %s must give tenant_id as the tenant's id", target.table)
					} else if l, ok := a.literal(items[col]); !ok {
						a.fail("INSERT into %s must give tenant_id as the tenant's id", target.table)
					} else {
						a.sh.tenant = append(a.sh.tenant, l)
					}
					a.exprs(row, outer)
				}
				break
			}
			a.selectStmt(sel, outer)
			var l lit
			ok := sel.Op == pg.SetOperation_SETOP_NONE && col >= 0 && col < len(sel.TargetList)
			if ok {
				l, ok = a.literal(sel.TargetList[col].GetResTarget().GetVal())
			}
			if !ok {
				a.fail("INSERT … SELECT into %s must select the tenant's id as tenant_id", target.table)
			} else {
				a.sh.tenant = append(a.sh.tenant, l)
			}
		default:
			a.fail("INSERT into %s without values", target.table)
		}
	}
	if oc := q.OnConflictClause; oc != nil {
		if target.table != "" {
			switch {
			case oc.Infer == nil && oc.Action == pg.OnConflictAction_ONCONFLICT_NOTHING:
			case a.key != nil && oc.Infer != nil && oc.Infer.Conname == "" &&
				slices.ContainsFunc(oc.Infer.IndexElems, func(e *pg.Node) bool {
					return strings.EqualFold(e.GetIndexElem().GetName(), a.keyOf(target.table))
				}):
				// A registry's conflict target names its key column
				// anywhere (the account index's is platform, account_id,
				// tenant_id): the row it meets is the tenant's own.
			case oc.Infer == nil || oc.Infer.Conname != "" || len(oc.Infer.IndexElems) == 0 ||
				!strings.EqualFold(oc.Infer.IndexElems[0].GetIndexElem().GetName(), a.keyOf(target.table)):
				a.fail("ON CONFLICT on %s must name a conflict target that begins with tenant_id", target.table)
			}
			a.tenantAssigned(oc.TargetList, target.table, true)
		}
		conflict := &level{refs: []*ref{target, {name: "excluded", ok: true}}, outer: outer}
		a.exprs(oc.Infer, conflict)
		for _, t := range oc.TargetList {
			a.exprs(t, conflict)
		}
		a.exprs(oc.WhereClause, conflict)
	}
	for _, n := range q.ReturningList {
		a.exprs(n, s)
	}
}

func (a *analysis) update(q *pg.UpdateStmt, outer *level) {
	a.with(q.WithClause, outer)
	s := &level{outer: outer}
	target := a.writeTargetRef(q.Relation)
	s.refs = append(s.refs, target)
	var conds []cond
	for _, f := range q.FromClause {
		a.from(f, s, &conds)
	}
	conds = append(conds, cond{expr: q.WhereClause, eligible: s.refs})
	a.constrain(s, conds)
	if target.table != "" {
		a.tenantAssigned(q.TargetList, target.table, false)
	}
	for _, c := range conds {
		a.exprs(c.expr, s)
	}
	for _, list := range [][]*pg.Node{q.TargetList, q.ReturningList} {
		for _, n := range list {
			a.exprs(n, s)
		}
	}
}

func (a *analysis) delete(q *pg.DeleteStmt, outer *level) {
	a.with(q.WithClause, outer)
	s := &level{outer: outer}
	s.refs = append(s.refs, a.writeTargetRef(q.Relation))
	var conds []cond
	for _, f := range q.UsingClause {
		a.from(f, s, &conds)
	}
	conds = append(conds, cond{expr: q.WhereClause, eligible: s.refs})
	a.constrain(s, conds)
	for _, c := range conds {
		a.exprs(c.expr, s)
	}
	for _, n := range q.ReturningList {
		a.exprs(n, s)
	}
}

// blankLiterals blanks out the literals of query for the shape cache: each
// string literal becomes \x00 and each plain number \x01, and it returns
// the byte offsets of the string literals in query. A statement whose
// literals it cannot delimit exactly as PostgreSQL's lexer does, or whose
// literal text may differ from its value, is not cacheable: one with a
// dollar sign outside literals other than a parameter's ($1): dollar
// quoting, a name holding one; an E” or U&”
// literal, a literal followed by another (PostgreSQL joins them), a
// backslash outside literals, or the marker bytes.
func blankLiterals(query string) (key string, lits []int, cacheable bool) {
	return blankLiteralsOf(query, true)
}

// blankLiteralsOf is blankLiterals, with params false for SQLite: it reads
// a parameter's name on past "::" and a parenthesized suffix ($1::a(…)),
// where PostgreSQL's lexer ends the parameter at its digits, so a
// statement with a dollar sign outside literals is not cached there.
func blankLiteralsOf(query string, params bool) (key string, lits []int, cacheable bool) {
	b, lits, cacheable := appendBlanked(make([]byte, 0, len(query)), query, params)
	return string(b), lits, cacheable
}

// appendBlanked is blankLiteralsOf appending the key to b, so that a
// caller can look a shape up without building a string of it.
func appendBlanked(b []byte, query string, params bool) (key []byte, lits []int, cacheable bool) {
	last := 0
	for i := 0; i < len(query); {
		for i < len(query) && plainBytes[query[i]] {
			i++ // the common bytes first: letters, separators
		}
		if i == len(query) {
			break
		}
		c := query[i]
		switch {
		case c == '$' && params && (i == 0 || !wordByte(query[i-1])) && i+1 < len(query) && '0' <= query[i+1] && query[i+1] <= '9':
			// A parameter ($1): kept as it is. No dollar quote opens
			// with a digit; $1abc (a parameter glued to a word, which
			// lexers read differently) is not cached.
			j := i + 1
			for j < len(query) && '0' <= query[j] && query[j] <= '9' {
				j++
			}
			if j < len(query) && wordByte(query[j]) {
				return nil, nil, false
			}
			i = j
		case c == '$' || c == '\\' || c == 0 || c == 1:
			return nil, nil, false
		case c == '\'':
			if i > 0 && (query[i-1] == 'e' || query[i-1] == 'E' || query[i-1] == '&') && (i < 2 || !identByte(query[i-2]) || query[i-1] == '&') {
				return nil, nil, false // E'' escapes, U&'' escapes
			}
			j := i + 1
			for j < len(query) && (query[j] != '\'' || j+1 < len(query) && query[j+1] == '\'') {
				if query[j] == '\'' {
					j++
				}
				j++
			}
			if j >= len(query) || nextIsQuote(query[j+1:]) {
				return nil, nil, false // unterminated, or continued by another literal
			}
			b = append(b, query[last:i]...)
			b = append(b, 0)
			lits = append(lits, i)
			i = j + 1
			last = i
		case c == '"':
			j := strings.IndexByte(query[i+1:], '"')
			if j < 0 {
				return nil, nil, false
			}
			i += j + 2 // a doubled "" is two quoted identifiers to this scan: same result
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				i = len(query)
			} else {
				i += j
			}
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			// PostgreSQL's block comments nest.
			depth, j := 1, i+2
			for j < len(query) && depth > 0 {
				switch {
				case strings.HasPrefix(query[j:], "/*"):
					depth++
					j += 2
				case strings.HasPrefix(query[j:], "*/"):
					depth--
					j += 2
				default:
					j++
				}
			}
			if depth > 0 {
				return nil, nil, false
			}
			i = j
		case '0' <= c && c <= '9' && (i == 0 || !wordByte(query[i-1]) && query[i-1] != '.'):
			// Not the digits that end a name: a non-ASCII letter is a
			// name's too (wé1 is a name; as a number blanked out, wé1
			// and wé2 were one alias to the cache).
			j := i
			for j < len(query) && '0' <= query[j] && query[j] <= '9' {
				j++
			}
			if j+1 < len(query) && query[j] == '.' && '0' <= query[j+1] && query[j+1] <= '9' {
				j++
				for j < len(query) && '0' <= query[j] && query[j] <= '9' {
					j++
				}
			}
			if j < len(query) && (wordByte(query[j]) || query[j] == '.') {
				for j < len(query) && (wordByte(query[j]) || query[j] == '.') {
					j++
				}
				i = j // not a plain number: kept as it is
				continue
			}
			b = append(b, query[last:i]...)
			b = append(b, 1)
			i = j
			last = i
		default:
			i++
		}
	}
	return append(b, query[last:]...), lits, true
}

// plainBytes are the bytes blankLiteralsOf passes over as they are,
// whatever precedes or follows them: letters, separators and every byte of
// a non-ASCII character.
var plainBytes = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c > '9' && c != '\\' && c != '$' || strings.IndexByte(" ,.()=", byte(c)) >= 0
	}
	return t
}()

// nextIsQuote reports whether, past whitespace and comments, rest begins
// with a quote.
func nextIsQuote(rest string) bool {
	for {
		i := 0
		for i < len(rest) && strings.IndexByte(" \t\r\n\f\v", rest[i]) >= 0 {
			i++
		}
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "--"):
			i := strings.IndexByte(rest, '\n')
			if i < 0 {
				return false
			}
			rest = rest[i:]
		case strings.HasPrefix(rest, "/*"):
			i := strings.Index(rest, "*/")
			if i < 0 {
				return true // unterminated: let the caller give up
			}
			rest = rest[i+2:]
		default:
			return strings.HasPrefix(rest, "'")
		}
	}
}

// literalAt returns the string literal of query at an offset blankLiterals
// found, quotes included.
func literalAt(query string, at int) string {
	j := at + 1
	for j < len(query) && (query[j] != '\'' || j+1 < len(query) && query[j+1] == '\'') {
		if query[j] == '\'' {
			j++
		}
		j++
	}
	return query[at:min(j+1, len(query))]
}

// wordByte reports whether b can be part of a name to PostgreSQL's lexer
// (and SQLite's): an ASCII name byte or any byte of a non-ASCII letter.
func wordByte(b byte) bool { return b >= 0x80 || identByte(b) }

func identByte(b byte) bool {
	return b == '_' || b == '$' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}
