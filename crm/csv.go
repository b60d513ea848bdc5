package crm

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// CSVColumns are the columns ExportCSV writes, in order, and the columns
// ImportCSV understands (in any order; id, created_at and updated_at are
// ignored on import, other unknown columns are reported once).
var csvColumns = []string{"id", "first_name", "last_name", "email", "phone", "stage", "source",
	"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
	"birthday", "company_id", "owner_id", "tags", "preferences", "created_at", "updated_at"}

// CSVColumns returns the columns of the contacts CSV format, in the order
// ExportCSV writes them. Tags are separated by ";", preferences are a JSON
// object, the birthday is YYYY-MM-DD or --MM-DD without a year.
func CSVColumns() []string { return append([]string(nil), csvColumns...) }

// ExportCSV writes the contacts matching f as CSV to w, with a header row,
// reading them a page at a time: memory stays flat however many there are.
// It returns how many contacts it wrote. The e-mail addresses and phone
// numbers are written in clear: treat the output as personal data.
func (r *Contacts) ExportCSV(ctx context.Context, w io.Writer, f ContactFilter) (int, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvColumns); err != nil {
		return 0, fmt.Errorf("crm: export contacts: %w", err)
	}
	n := 0
	o := ListOptions{Limit: 500}
	for {
		p, err := r.List(ctx, f, o)
		if err != nil {
			return n, err
		}
		for _, c := range p.Items {
			if err := cw.Write(contactRow(c)); err != nil {
				return n, fmt.Errorf("crm: export contacts: %w", err)
			}
			n++
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, fmt.Errorf("crm: export contacts: %w", err)
		}
		if p.NextCursor == "" {
			return n, nil
		}
		o.Cursor = p.NextCursor
	}
}

func contactRow(c Contact) []string {
	prefs := ""
	if len(c.Preferences) > 0 {
		b, _ := json.Marshal(c.Preferences) // a map[string]string always marshals
		prefs = string(b)
	}
	return []string{c.ID, c.FirstName, c.LastName, c.Email, c.Phone, string(c.Stage), c.Source,
		c.UTM.Source, c.UTM.Medium, c.UTM.Campaign, c.UTM.Term, c.UTM.Content,
		formatBirthday(c.Birthday), c.CompanyID, c.OwnerID, strings.Join(c.Tags, ";"), prefs,
		c.CreatedAt.Format(time.RFC3339Nano), c.UpdatedAt.Format(time.RFC3339Nano)}
}

func formatBirthday(b Birthday) string {
	switch {
	case b.IsZero():
		return ""
	case b.Year == 0:
		return fmt.Sprintf("--%02d-%02d", b.Month, b.Day)
	}
	return fmt.Sprintf("%04d-%02d-%02d", b.Year, b.Month, b.Day)
}

func parseBirthday(s string) (Birthday, bool) {
	if s == "" {
		return Birthday{}, true
	}
	var b Birthday
	var ok bool
	if rest, cut := strings.CutPrefix(s, "--"); cut {
		b.Month, b.Day, ok = parseMonthDay(rest)
	} else if len(s) == 10 && s[4] == '-' {
		y, err := strconv.Atoi(s[:4])
		b.Year = y
		b.Month, b.Day, ok = parseMonthDay(s[5:])
		ok = ok && err == nil
	}
	return b, ok && b.valid()
}

func parseMonthDay(s string) (int, int, bool) {
	if len(s) != 5 || s[2] != '-' {
		return 0, 0, false
	}
	m, err1 := strconv.Atoi(s[:2])
	d, err2 := strconv.Atoi(s[3:])
	return m, d, err1 == nil && err2 == nil
}

// ImportOptions tunes ImportCSV. The zero value is ready to use.
type ImportOptions struct {
	// Source is the Source of imported contacts whose row has none
	// (default "import").
	Source string
	// MaxErrors stops the import after that many row errors (0: never).
	MaxErrors int
}

// RowError is one problem with one row of an import.
type RowError struct {
	// Row is the line number in the file where the row starts: the
	// header is on line 1.
	Row int `json:"row"`
	// Field is the column at fault, empty when the whole row is.
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
}

// ImportReport says what ImportCSV did.
type ImportReport struct {
	// Created counts the contacts created.
	Created int `json:"created"`
	// Rows counts the data rows read.
	Rows int `json:"rows"`
	// Errors lists each problem of each rejected row; a rejected row
	// created nothing.
	Errors []RowError `json:"errors"`
}

// ImportCSV reads contacts from CSV with a header row (see CSVColumns) and
// creates each valid row as a new contact, one transaction per row, while
// reading: memory stays flat. A row that fails — bad CSV, a value that
// does not parse, a rule it breaks — is listed in the report with its row
// number and fields, creates nothing, and does not stop the rows after it.
// The error is for a problem with the whole input (no header, a read
// error, a database failure, the context ending); the report then covers
// the rows read so far.
func (r *Contacts) ImportCSV(ctx context.Context, in io.Reader, o ImportOptions) (ImportReport, error) {
	rep := ImportReport{Errors: []RowError{}}
	if o.Source == "" {
		o.Source = "import"
	}
	cr := csv.NewReader(in)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return rep, invalid("import", "header", "required", "the CSV has no readable header row")
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		col[h] = i
		if !isCSVColumn(h) {
			rep.Errors = append(rep.Errors, RowError{Row: 1, Field: h, Problem: "unknown column, ignored"})
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rep, nil
		}
		if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
			rep.Rows++
			rep.Errors = append(rep.Errors, RowError{Row: pe.StartLine, Problem: "malformed CSV: " + pe.Err.Error()})
			if o.MaxErrors > 0 && len(rep.Errors) >= o.MaxErrors {
				return rep, nil
			}
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("crm: import contacts: %w", err)
		}
		line, _ := cr.FieldPos(0)
		rep.Rows++
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		c, rowErrs := contactFromRow(get, line)
		if c.Source == "" {
			c.Source = o.Source
		}
		if len(rowErrs) == 0 {
			_, err := r.Create(ctx, c)
			var verr *ValidationError
			switch {
			case errors.As(err, &verr):
				for _, f := range verr.Fields {
					rowErrs = append(rowErrs, RowError{Row: line, Field: f.Field, Problem: f.Message})
				}
			case err != nil:
				return rep, err
			default:
				rep.Created++
			}
		}
		rep.Errors = append(rep.Errors, rowErrs...)
		if o.MaxErrors > 0 && len(rep.Errors) >= o.MaxErrors {
			return rep, nil
		}
	}
}

func isCSVColumn(h string) bool {
	for _, c := range csvColumns {
		if c == h {
			return true
		}
	}
	return false
}

func contactFromRow(get func(string) string, line int) (Contact, []RowError) {
	var errs []RowError
	c := Contact{
		FirstName: get("first_name"), LastName: get("last_name"), Email: get("email"), Phone: get("phone"),
		Stage: Stage(strings.ToLower(get("stage"))), Source: get("source"),
		UTM:       UTM{Source: get("utm_source"), Medium: get("utm_medium"), Campaign: get("utm_campaign"), Term: get("utm_term"), Content: get("utm_content")},
		CompanyID: get("company_id"), OwnerID: get("owner_id"),
	}
	if b, ok := parseBirthday(get("birthday")); ok {
		c.Birthday = b
	} else {
		errs = append(errs, RowError{Row: line, Field: "birthday", Problem: "must be YYYY-MM-DD or --MM-DD"})
	}
	if t := get("tags"); t != "" {
		for _, tag := range strings.Split(t, ";") {
			if tag = strings.TrimSpace(tag); tag != "" {
				c.Tags = append(c.Tags, tag)
			}
		}
	}
	if p := get("preferences"); p != "" {
		if err := json.Unmarshal([]byte(p), &c.Preferences); err != nil {
			errs = append(errs, RowError{Row: line, Field: "preferences", Problem: "must be a JSON object of strings"})
		}
	}
	return c, errs
}
