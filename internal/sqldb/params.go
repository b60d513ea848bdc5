package sqldb

import (
	"math"
	"strconv"
	"strings"
)

// bun writes a statement's arguments into its text as literals, so no two
// statements that differ only in an id share a text, and PostgreSQL
// parses and plans each anew — most of what a short query costs. params
// turns the literals into parameters where their type is certain, so that
// pgx prepares each statement shape once per connection and every later
// execution skips the parser and the planner.
//
// A literal becomes a parameter only where the server infers the
// parameter's type from the other side exactly as it types the literal:
// right after a comparison operator (=, <>, !=, <, >, <=, >=), as an
// element of an IN (…) list or of an INSERT's VALUES rows, or — a string —
// anywhere when a cast (::type) follows it. A number there is cast to the
// type the server gives the literal (numberType), since the other side's
// type would read 1.0 as an integer. Everywhere else
// — a function's argument, a select list, after LIKE or a cast — it stays
// as written. Only SELECT, INSERT, UPDATE, DELETE and WITH statements take
// parameters; any other, and a statement with a dollar sign (parameters of its own,
// dollar quoting), a comment or a semicolon outside its literals and
// quoted names, a prefixed string (E'…', B'…', U&'…') or an unterminated
// quote is left whole. Inside a literal these are data: a blind index
// (base64url) holds "--" about once in a hundred, and a statement left
// whole for it was parsed anew and took a second round trip on every
// execution — every create of a tenant whose birthday index held one.
// Values travel as text, which the server reads as it reads the literal.

// params returns query with its parameterizable literals replaced by $1,
// $2, … and their values, or ok false when it has none or must be left
// whole.
func params(query string) (out string, args []any, ok bool) {
	// Only these statements take parameters.
	first := strings.TrimLeft(query, " \t\n\r(")
	if k := strings.IndexFunc(first, func(r rune) bool { return r > 0x7f || !isWord(byte(r)) }); k >= 0 {
		first = first[:k]
	}
	switch strings.ToUpper(first) {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "WITH":
	default:
		return "", nil, false
	}
	var b strings.Builder
	var prev string // the previous significant token (a word as written)
	var listBuf [16]bool
	lists := listBuf[:0] // for each open parenthesis: whether it opens a list
	lastList := false    // whether the parenthesis just closed opened a list
	insert := false      // the statement is an INSERT
	n := 0
	i := 0
	last := 0 // query[last:i] is not yet copied to b
	param := func() bool {
		switch prev {
		case "=", "<>", "!=", "<", ">", "<=", ">=":
			return true
		case "(", ",":
			return len(lists) > 0 && lists[len(lists)-1]
		}
		return false
	}
	replace := func(start, end int, val string) {
		if n == 0 {
			b.Grow(len(query))
			args = make([]any, 0, 4)
		}
		b.WriteString(query[last:start])
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
		args = append(args, val)
		last = end
	}
	for i < len(query) {
		c := query[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '$' || c == ';' || c == '-' && strings.HasPrefix(query[i:], "--") || c == '/' && strings.HasPrefix(query[i:], "/*"):
			// Outside a literal or quoted name: parameters of its own or
			// dollar quoting, several statements, a comment.
			return "", nil, false
		case c == '\'':
			j, doubled, closed := quoted(query, i)
			if !closed {
				return "", nil, false
			}
			if param() || strings.HasPrefix(strings.TrimLeft(query[j:], " "), "::") {
				val := query[i+1 : j-1]
				if doubled {
					val = strings.ReplaceAll(val, "''", "'")
				}
				replace(i, j, val)
			}
			prev, i = "'", j
		case c == '"':
			j := strings.IndexByte(query[i+1:], '"')
			if j < 0 {
				return "", nil, false
			}
			prev, i = `"`, i+j+2
		case c >= '0' && c <= '9':
			j := i
			for j < len(query) && (query[j] >= '0' && query[j] <= '9' || query[j] == '.') {
				j++
			}
			if j < len(query) && isWord(query[j]) {
				return "", nil, false // 1e5, 0x10: not a plain number
			}
			if param() {
				typ, ok := numberType(query[i:j])
				if !ok {
					return "", nil, false
				}
				replace(i, j, query[i:j])
				b.WriteString(typ)
			}
			prev, i = "0", j
		case isWord(c):
			j := i
			for j < len(query) && isWord(query[j]) {
				j++
			}
			if j < len(query) && query[j] == '\'' || j < len(query) && query[j] == '&' && j+1 < len(query) && query[j+1] == '\'' {
				return "", nil, false // E'…', B'…', U&'…'
			}
			// The word as written (compared ignoring case): no copy.
			w := query[i:j]
			if prev == "" && strings.EqualFold(w, "INSERT") {
				insert = true
			}
			prev, i = w, j
		case c == '(':
			list := strings.EqualFold(prev, "IN") || insert && strings.EqualFold(prev, "VALUES") || insert && prev == "," && lastList && len(lists) == 0
			lists = append(lists, list)
			prev, i = "(", i+1
		case c == ')':
			if len(lists) == 0 {
				return "", nil, false
			}
			lastList = lists[len(lists)-1]
			lists = lists[:len(lists)-1]
			prev, i = ")", i+1
		case c == ',':
			if prev != ")" {
				lastList = false
			}
			prev, i = ",", i+1
		case strings.ContainsRune("<>=!", rune(c)):
			j := i
			for j < len(query) && strings.IndexByte("<>=!", query[j]) >= 0 {
				j++
			}
			prev, i = query[i:j], j
		default:
			prev, i = string(c), i+1
		}
	}
	if n == 0 || n > maxParams {
		return "", nil, false
	}
	b.WriteString(query[last:])
	return b.String(), args, true
}

// numberType returns the cast that gives a parameter the type PostgreSQL
// gives number literal n: integer when it fits 32 bits, bigint when it
// fits 64, numeric otherwise and with a decimal point. An untyped
// parameter took the type of the other side instead, so a statement that
// ran as written failed once rewritten, or compared otherwise: i = 1.0
// (integer = numeric, true for 1) failed with "invalid input syntax for
// type integer", and i = 3000000000 (false) with "out of range"; the cast
// keeps the operator the literal chose (TestNumberLiteralsKeepTheirType).
// ok is false for a number that is no literal (1.2.3).
func numberType(n string) (typ string, ok bool) {
	switch strings.Count(n, ".") {
	case 0:
	case 1:
		return "::numeric", true
	default:
		return "", false
	}
	v, err := strconv.ParseInt(n, 10, 64)
	switch {
	case err != nil:
		return "::numeric", true
	case v <= math.MaxInt32:
		return "::integer", true
	default:
		return "::bigint", true
	}
}

// maxParams is the most parameters the extended protocol carries (a
// 16-bit count): a statement with more literals, an IN list of 70000 ids,
// runs as written, as it ran before params.
const maxParams = 65535

// quoted reads the string literal that opens at query[i]: it ends at
// query[end-1]; doubled says it holds a quote written twice, closed that
// it ends at all.
func quoted(query string, i int) (end int, doubled, closed bool) {
	j := i + 1
	for j < len(query) {
		if query[j] == '\'' {
			if j+1 < len(query) && query[j+1] == '\'' {
				doubled = true
				j += 2
				continue
			}
			return j + 1, doubled, true
		}
		j++
	}
	return j, doubled, false
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
