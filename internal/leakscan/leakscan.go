// Package leakscan finds planted values (canaries) where personal data must
// not be readable: in the raw bytes of files (a SQLite database and its WAL,
// a storage directory) and in every text and binary column of database
// tables. Tests plant a canary in each personal field, then scan.
package leakscan

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Hit is a canary found, and where.
type Hit struct {
	Where  string // "file <path>" or "<table>.<column>"
	Canary string
}

func (h Hit) String() string { return h.Canary + " in " + h.Where }

// Bytes returns a Hit for each canary that b holds, as it is.
func Bytes(where string, b []byte, canaries []string) []Hit {
	var hits []Hit
	for _, c := range canaries {
		if bytes.Contains(b, []byte(c)) {
			hits = append(hits, Hit{Where: where, Canary: c})
		}
	}
	return hits
}

// Files scans each path — a file, or a directory walked whole — and
// returns the canaries found in the bytes of its files. A path that does
// not exist (a WAL already checkpointed away) is skipped.
func Files(canaries []string, paths ...string) ([]Hit, error) {
	var hits []Hit
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			hits = append(hits, Bytes("file "+path, b, canaries)...)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("leakscan: %w", err)
		}
	}
	return hits, nil
}

// Tables scans every value of every column of the tables of db's current
// schema whose name starts with one of prefixes (every table when there is
// none), and returns the canaries found. On PostgreSQL pass a handle that
// row-level security does not bind (dbtest.DB.Admin), or it sees only what
// the context's tenant may.
func Tables(ctx context.Context, db bun.IDB, canaries []string, prefixes ...string) ([]Hit, error) {
	pg := db.Dialect().Name() == dialect.PG
	var tables []string
	var err error
	if pg {
		err = db.NewRaw("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1").Scan(ctx, &tables)
	} else {
		err = db.NewRaw("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1").Scan(ctx, &tables)
	}
	if err != nil {
		return nil, fmt.Errorf("leakscan: list tables: %w", err)
	}
	var hits []Hit
	for _, t := range tables {
		if len(prefixes) > 0 && !hasPrefix(t, prefixes) {
			continue
		}
		var cols []struct {
			Name string `bun:"name"`
			Type string `bun:"type"`
		}
		if pg {
			err = db.NewRaw("SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position", t).Scan(ctx, &cols)
		} else {
			err = db.NewRaw("SELECT name, type FROM pragma_table_info(?)", t).Scan(ctx, &cols)
		}
		if err != nil {
			return nil, fmt.Errorf("leakscan: columns of %s: %w", t, err)
		}
		for _, col := range cols {
			c := col.Name
			// Every value as bytes: bytea and BLOB as they are, every
			// other type in its text form.
			expr := "CAST(? AS BLOB)"
			if pg && col.Type != "bytea" {
				expr = "convert_to(?::text, 'UTF8')"
			} else if pg {
				expr = "?"
			}
			var vals [][]byte
			q := db.NewRaw("SELECT "+expr+" FROM ? WHERE ? IS NOT NULL", bun.Ident(c), bun.Ident(t), bun.Ident(c))
			if err := q.Scan(ctx, &vals); err != nil {
				return nil, fmt.Errorf("leakscan: %s.%s: %w", t, c, err)
			}
			for _, v := range vals {
				for _, h := range Bytes(t+"."+c, v, canaries) {
					if !contains(hits, h) {
						hits = append(hits, h)
					}
				}
			}
		}
	}
	return hits, nil
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func contains(hits []Hit, h Hit) bool {
	for _, x := range hits {
		if x == h {
			return true
		}
	}
	return false
}
