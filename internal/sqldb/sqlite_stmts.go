package sqldb

import (
	"context"
	"database/sql/driver"
	"encoding/hex"
	"strconv"
	"strings"
)

// On SQLite bun writes a statement's values into its text as literals, so
// no two texts repeat and SQLite parses and compiles each statement anew
// — for a contact's create, with the trigger that keeps its name index,
// about a third of what the statement's execution costs. A caller that
// marks a statement's context with PreparedLiterals lets the connection
// run it as a statement prepared once per connection instead: its quoted
// literals ('…' strings and X'…' blobs) travel as bound parameters of the
// text with each literal replaced by $1, $2, …, which SQLite reads exactly
// as it reads the literal (a bound text or blob has no affinity, as a
// literal has none). Numbers, NULL and everything else stay as written.
//
// The Check runs first, on the statement as bun wrote it, literals and
// all: what it sees and decides does not change. A text the conversion
// cannot read whole (a comment, a semicolon, a parameter of its own, an
// unterminated quote) runs as it came.

// preparedLiteralsKey marks a context whose statements may run prepared
// (PreparedLiterals).
type preparedLiteralsKey struct{}

// PreparedLiterals returns ctx marked so that, on SQLite, a statement run
// in it is executed as a prepared statement the connection keeps, with its
// quoted literals as bound parameters. Mark only statements whose every
// quoted literal is a value (not, say, a column alias the result is read
// by, or a pattern a partial index's condition must see), and whose shape
// repeats: the connection keeps up to maxPrepared shapes.
func PreparedLiterals(ctx context.Context) context.Context {
	return context.WithValue(ctx, preparedLiteralsKey{}, true)
}

// maxPrepared bounds the statements a SQLite connection keeps prepared.
const maxPrepared = 32

// literalParams returns query with its quoted literals replaced by $1, $2,
// … and their values (a string, or the bytes of a blob), or ok false when
// it has none or must run as written.
func literalParams(query string) (out string, args []driver.NamedValue, ok bool) {
	if strings.ContainsAny(query, "$;?") || strings.Contains(query, "--") || strings.Contains(query, "/*") {
		return "", nil, false
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(query); {
		switch c := query[i]; c {
		case '"', '`':
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				return "", nil, false
			}
			i += j + 2 // a doubled quote reads as two names here: the same result
		case '[':
			j := strings.IndexByte(query[i+1:], ']')
			if j < 0 {
				return "", nil, false
			}
			i += j + 2
		case '\'':
			blob := i > 0 && (query[i-1] == 'x' || query[i-1] == 'X') && (i < 2 || !isWord(query[i-2]))
			j, doubled, closed := quoted(query, i) // params.go
			if !closed {
				return "", nil, false
			}
			start := i
			var v driver.Value
			if blob {
				bs, err := hex.DecodeString(query[i+1 : j-1])
				if err != nil {
					return "", nil, false
				}
				if bs == nil {
					bs = []byte{}
				}
				v, start = bs, i-1
			} else {
				s := query[i+1 : j-1]
				if doubled {
					s = strings.ReplaceAll(s, "''", "'")
				}
				v = s
			}
			if len(args) == 0 {
				b.Grow(len(query))
			}
			b.WriteString(query[last:start])
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(len(args)))
			i, last = j, j
		default:
			if isWord(c) && i > 0 && query[i-1] == '\'' {
				return "", nil, false // two literals or a literal and a word run together
			}
			i++
		}
	}
	if len(args) == 0 {
		return "", nil, false
	}
	b.WriteString(query[last:])
	return b.String(), args, true
}

// preparedExec runs query, which passed the Check, as a statement the
// connection keeps prepared, when ctx is marked by PreparedLiterals and
// the text converts; handled is false when it did not run.
func (c *conn) preparedExec(ctx context.Context, query string, args []driver.NamedValue) (res driver.Result, handled bool, err error) {
	if len(args) > 0 || ctx.Value(preparedLiteralsKey{}) == nil {
		return nil, false, nil
	}
	p, ok := c.base.(driver.ConnPrepareContext)
	if !ok {
		return nil, false, nil
	}
	text, vals, ok := literalParams(query)
	if !ok {
		return nil, false, nil
	}
	st, ok := c.prepared[text]
	if !ok {
		if st, err = p.PrepareContext(ctx, text); err != nil {
			// Preparing runs nothing: the text runs as written, which
			// reports its own error if it has one. More literals than
			// SQLite binds (32766 variables) prepare as no text does.
			return nil, false, nil
		}
		if _, ok := st.(driver.StmtExecContext); !ok {
			st.Close()
			return nil, false, nil
		}
		for k, old := range c.prepared { // full: one out, at random
			if len(c.prepared) < maxPrepared {
				break
			}
			old.Close()
			delete(c.prepared, k)
		}
		if c.prepared == nil {
			c.prepared = make(map[string]driver.Stmt)
		}
		c.prepared[text] = st
	}
	res, err = st.(driver.StmtExecContext).ExecContext(ctx, vals)
	return res, true, err
}

// closePrepared closes and forgets the statements the connection keeps.
func (c *conn) closePrepared() {
	for k, st := range c.prepared {
		st.Close()
		delete(c.prepared, k)
	}
}
