package crm

import (
	"database/sql"
	"fmt"
	"reflect"
	"time"

	"github.com/uptrace/bun/schema"
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

var (
	_ sql.Scanner = textCol{}
	_ sql.Scanner = timeCol{}
)
