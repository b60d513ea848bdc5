package retention

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// Manifest describes an export; it is the archive's manifest.json.
type Manifest struct {
	Request     string             `json:"request"`
	Kind        RequestKind        `json:"kind"`
	GeneratedAt time.Time          `json:"generated_at"`
	Policy      string             `json:"policy"`
	Categories  []ManifestCategory `json:"categories"`
}

// ManifestCategory is one category of an export.
type ManifestCategory struct {
	Name       string   `json:"name"`
	Purpose    string   `json:"purpose"`
	LegalBasis string   `json:"legal_basis"`
	Retention  string   `json:"retention"`
	Rows       int64    `json:"rows"`
	Files      []string `json:"files"`
}

// Export writes the subject's data for an access or export request to w as
// a zip archive: for every category that can find the subject, <name>.json
// (an array of objects, one per row, columns as keys) and <name>.csv (a
// header row, then one line per row), and last manifest.json (the
// categories, their row counts, the generation time and the policy). Rows
// are read in keyset batches, each in its own short transaction, and
// streamed: memory does not grow with the number of rows. The request must
// be verified (ErrNotVerified). w is not closed.
func (e *Engine) Export(ctx context.Context, id string, w io.Writer) (Manifest, error) {
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return Manifest{}, err
	}
	r, err := e.Get(ctx, id)
	if err != nil {
		return Manifest{}, err
	}
	switch {
	case r.Kind != KindAccess && r.Kind != KindExport:
		return Manifest{}, &ValidationError{Field: "Kind", Reason: "Export needs an access or export request"}
	case r.Verification != VerificationVerified:
		return Manifest{}, ErrNotVerified
	}
	m := Manifest{Request: r.ID, Kind: r.Kind, GeneratedAt: e.clock(), Policy: e.policy.Name}
	bw := bufio.NewWriterSize(w, 64<<10)
	zw := zip.NewWriter(bw)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
	for _, c := range e.Categories() {
		cond, args, ok := subjectMatch(c, r.Subject, r.TenantID)
		if !ok {
			continue
		}
		mc := ManifestCategory{Name: c.Name, Purpose: c.Purpose, LegalBasis: c.LegalBasis, Retention: "no period (erased on request or purge)"}
		if rule, ok := e.policy.rule(c.Name); ok {
			mc.Retention = rule.String()
		}
		for _, format := range []string{"json", "csv"} {
			name := c.Name + "." + format
			fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: m.GeneratedAt})
			if err != nil {
				return m, fmt.Errorf("retention: export: %w", err)
			}
			n, err := e.exportCategory(ctx, c, r.TenantID, cond, args, format, fw)
			if err != nil {
				return m, err
			}
			mc.Rows = n
			mc.Files = append(mc.Files, name)
		}
		m.Categories = append(m.Categories, mc)
	}
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: "manifest.json", Method: zip.Deflate, Modified: m.GeneratedAt})
	if err != nil {
		return m, fmt.Errorf("retention: export: %w", err)
	}
	enc := json.NewEncoder(fw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return m, fmt.Errorf("retention: export manifest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return m, fmt.Errorf("retention: export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return m, fmt.Errorf("retention: export: %w", err)
	}
	err = tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var rows int64
		for _, mc := range m.Categories {
			rows += mc.Rows
		}
		return e.auditTx(ctx, tx, "retention.exported", r, map[string]string{"rows": strconv.FormatInt(rows, 10)})
	})
	return m, err
}

// exportCategory streams the subject's rows of c in one format and returns
// how many it wrote.
func (e *Engine) exportCategory(ctx context.Context, c Category, tid, cond string, args []any, format string, w io.Writer) (int64, error) {
	idc := "r." + c.idColumn()
	base := "SELECT r.* FROM " + c.Table + " AS r WHERE r.tenant_id = ? AND (" + cond + ")"
	var (
		n       int64
		last    any
		cols    []string
		idIdx   = -1
		vals    []any
		ptrs    []any
		strs    []string
		keep    []int // indexes of exported columns
		cw      *csv.Writer
		jsonBuf []byte
	)
	if format == "json" {
		if _, err := io.WriteString(w, "["); err != nil {
			return 0, err
		}
	} else {
		cw = csv.NewWriter(w)
	}
	for {
		got := 0
		err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			q, a := base, append([]any{tid}, args...)
			if last != nil {
				q += " AND " + idc + " > ?"
				a = append(a, last)
			}
			q += " ORDER BY " + idc + " LIMIT ?"
			a = append(a, defaultExportBatch)
			rows, err := tx.QueryContext(ctx, q, a...)
			if err != nil {
				return err
			}
			defer rows.Close()
			if cols == nil {
				if cols, err = rows.Columns(); err != nil {
					return err
				}
				vals, ptrs = make([]any, len(cols)), make([]any, len(cols))
				var header []string
				for i, col := range cols {
					ptrs[i] = &vals[i]
					if col == c.idColumn() {
						idIdx = i
					}
					if !slices.Contains(c.Omit, col) {
						keep = append(keep, i)
						header = append(header, col)
					}
				}
				strs = make([]string, len(keep))
				if idIdx < 0 {
					return fmt.Errorf("no id column %s", c.idColumn())
				}
				if cw != nil {
					if err := cw.Write(header); err != nil {
						return err
					}
				}
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					return err
				}
				for i := range vals {
					vals[i] = plain(vals[i])
				}
				if cw != nil {
					for i, k := range keep {
						strs[i] = csvValue(vals[k])
					}
					if err := cw.Write(strs); err != nil {
						return err
					}
				} else {
					jsonBuf = jsonBuf[:0]
					if n > 0 {
						jsonBuf = append(jsonBuf, ',')
					}
					jsonBuf = append(jsonBuf, "\n{"...)
					for i, k := range keep {
						if i > 0 {
							jsonBuf = append(jsonBuf, ',')
						}
						jsonBuf = appendJSONString(jsonBuf, cols[k])
						jsonBuf = append(jsonBuf, ':')
						if jsonBuf, err = appendJSONValue(jsonBuf, vals[k]); err != nil {
							return err
						}
					}
					jsonBuf = append(jsonBuf, '}')
					if _, err := w.Write(jsonBuf); err != nil {
						return err
					}
				}
				last = vals[idIdx]
				n++
				got++
			}
			return rows.Err()
		})
		if err != nil {
			return n, fmt.Errorf("retention: export %s: %w", c.Name, err)
		}
		if got < defaultExportBatch {
			break
		}
	}
	if cw != nil {
		if cols == nil {
			// No rows: the header still names the columns.
			var err error
			if cols, err = e.columnsOf(ctx, c.Table); err != nil {
				return 0, err
			}
			cols = slices.DeleteFunc(cols, func(col string) bool { return slices.Contains(c.Omit, col) })
			if err := cw.Write(cols); err != nil {
				return 0, err
			}
		}
		cw.Flush()
		return n, cw.Error()
	}
	_, err := io.WriteString(w, "\n]\n")
	return n, err
}

// plain turns driver values into strings, numbers, booleans, times or nil.
func plain(v any) any {
	if b, ok := v.([]byte); ok {
		if utf8.Valid(b) {
			return string(b)
		}
		return b // encoded as base64 in JSON and CSV
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC()
	}
	return v
}

func csvValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case []byte:
		b, _ := json.Marshal(v)
		return string(b[1 : len(b)-1])
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(v)
}

func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v), nil
	case time.Time:
		b = append(b, '"')
		b = v.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"'), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, enc...), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping as encoding/json
// does (including <, > and & for HTML safety).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
