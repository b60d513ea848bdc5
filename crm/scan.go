package crm

import (
	"database/sql"
	"fmt"
	"reflect"
	"time"

	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/vault"
)

// Column scanners for rows read by hand (scanContact): each scans the
// values both drivers return for its column as bun's Scan would, without
// bun's per-column reflection.

// textCol scans a text column; NULL scans as "" (bun's nullzero).
type textCol struct{ p *string }

func (c textCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.p = ""
	case string:
		*c.p = v
	case []byte:
		*c.p = string(v)
	default:
		return fmt.Errorf("crm: cannot scan %T into a text column", src)
	}
	return nil
}

// timeCol scans a timestamp column: a time.Time as it is, anything else
// (SQLite's text) as bun parses it.
type timeCol struct{ p *time.Time }

var scanTime = schema.Scanner(reflect.TypeFor[time.Time]())

func (c timeCol) Scan(src any) error {
	if t, ok := src.(time.Time); ok {
		*c.p = t
		return nil
	}
	return scanTime(reflect.ValueOf(c.p).Elem(), src)
}

// ScanBytes scans a text column as pgx hands it to a reader of
// sqldb.ReadRows (pgx's BytesScanner): the column's text in the driver's
// memory, nil for NULL, which scans as "".
func (c textCol) ScanBytes(v []byte) error {
	*c.p = string(v)
	return nil
}

// sealedCol scans a sealed column as pgx hands it to a reader of
// sqldb.ReadRows (pgx's BytesScanner): NULL as the zero Sealed, anything
// else copied once, as Sealed.Scan keeps it (a malformed value too: it
// fails to open, not to scan).
type sealedCol struct{ p *vault.Sealed }

func (c sealedCol) ScanBytes(v []byte) error {
	s, err := vault.ParseSealed(v) // a copy of v
	if err != nil {
		return c.p.Scan(v)
	}
	*c.p = s
	return nil
}

var (
	_ sql.Scanner = textCol{}
	_ sql.Scanner = timeCol{}
)
