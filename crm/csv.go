package crm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/csvsafe"
	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/tenancy"
)

// csvColumns are the columns ExportCSV writes, in order, and the columns
// ImportCSV understands (in any order, under their usual spellings; id
// finds the contact, created_at and updated_at are ignored, other unknown
// columns are reported once).
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
// numbers are written in clear: treat the output as personal data. A value
// a spreadsheet would run as a formula (starting with '=', '@', or '+' or
// '-' and not a number) is written with an apostrophe in front, as
// spreadsheets mark such text; ImportCSV removes it.
//
// An export is in the audit log from before its first byte to after its
// last: "contacts.export_started" (the acting principal, nothing else) is
// written once the first page is read and before anything is written to
// w, so an export that a crash cut short is there too; then
// "contacts.exported" with the count when every row was written, or
// "contacts.export_interrupted" with the count and the bytes w took when
// it stopped midway (a writer that failed, a context that ended), even
// when ctx has ended. No entry holds a value or the filter. An export
// refused or failed before the first page (ErrForbidden, ErrInvalid, no
// tenant) writes nothing and no entry.
func (r *Contacts) ExportCSV(ctx context.Context, w io.Writer, f ContactFilter) (int, error) {
	o := ListOptions{Limit: 500}
	first, err := r.List(ctx, f, o)
	if err != nil {
		return 0, err // refused or failed before anything left
	}
	if err := r.s.writeAudit(ctx, r.s.db, tenancy.AuditEvent{Action: "contacts.export_started", Target: "contacts"}); err != nil {
		return 0, err
	}
	cw := &countingWriter{w: w}
	n, err := r.exportCSV(ctx, cw, f, o, first)
	// The rows have left whether or not the caller is still there (a
	// client that hung up ends its request's context): the entry is
	// written all the same.
	ev := tenancy.AuditEvent{Action: "contacts.exported", Target: "contacts",
		Metadata: map[string]string{"count": strconv.Itoa(n), "complete": "true"}}
	if err != nil {
		ev.Action = "contacts.export_interrupted"
		ev.Metadata = map[string]string{"count": strconv.Itoa(n), "complete": "false", "bytes": strconv.FormatInt(cw.n, 10)}
	}
	aerr := r.s.writeAudit(context.WithoutCancel(ctx), r.s.db, ev)
	if err == nil {
		err = aerr
	}
	return n, err
}

// countingWriter counts the bytes its writer took.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// exportCSV writes the header, the page p already read, then the pages
// after it.
func (r *Contacts) exportCSV(ctx context.Context, w io.Writer, f ContactFilter, o ListOptions, p Page[Contact]) (int, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvColumns); err != nil {
		return 0, fmt.Errorf("crm: export contacts: %w", err)
	}
	n := 0
	for {
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
		var err error
		if p, err = r.List(ctx, f, o); err != nil {
			return n, err
		}
	}
}

func contactRow(c Contact) []string {
	prefs := ""
	if len(c.Preferences) > 0 {
		b, _ := json.Marshal(c.Preferences) // a map[string]string always marshals
		prefs = string(b)
	}
	row := []string{c.ID, c.FirstName, c.LastName, c.Email, c.Phone, string(c.Stage), c.Source,
		c.UTM.Source, c.UTM.Medium, c.UTM.Campaign, c.UTM.Term, c.UTM.Content,
		formatBirthday(c.Birthday), c.CompanyID, c.OwnerID, strings.Join(c.Tags, ";"), prefs,
		c.CreatedAt.Format(time.RFC3339Nano), c.UpdatedAt.Format(time.RFC3339Nano)}
	for i := range row {
		row[i] = csvsafe.Escape(row[i]) // never a formula in a spreadsheet
	}
	return row
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
	// OnMatch says what a row that names an existing contact does
	// (default ImportUpdate).
	OnMatch ImportMatch
	// BatchSize is how many rows commit together (default 100, at most
	// 1000). A batch is one transaction: an import stopped midway keeps
	// the batches committed before, and sent again finds their contacts.
	BatchSize int
	// MaxErrors stops the import after that many row errors (0: never).
	MaxErrors int
}

// ImportMatch is what ImportCSV does with a row that names an existing
// contact.
type ImportMatch string

// What a matched row does.
const (
	// ImportUpdate writes the row's non-empty values over the contact's
	// (tags and preferences are added to the contact's); a row that
	// changes nothing is reported unchanged.
	ImportUpdate ImportMatch = "update"
	// ImportSkip leaves the contact as it is.
	ImportSkip ImportMatch = "skip"
)

// ImportAction is what ImportCSV did with one row.
type ImportAction string

// Actions of an import row.
const (
	ImportCreated   ImportAction = "created"
	ImportUpdated   ImportAction = "updated"
	ImportUnchanged ImportAction = "unchanged"
	ImportSkipped   ImportAction = "skipped"
	ImportRejected  ImportAction = "rejected"
)

// RowError is one problem with one row of an import.
type RowError struct {
	// Row is the line number in the file where the row starts: the
	// header is on line 1.
	Row int `json:"row"`
	// Field is the column at fault, empty when the whole row is.
	Field   string `json:"field,omitempty"`
	Problem string `json:"problem"`
}

// RowResult is what an import did with one data row. It holds no value of
// the row: its line, the action, the contact's id and why.
type RowResult struct {
	// Row is the line number where the row starts (the header is line 1).
	Row    int          `json:"row"`
	Action ImportAction `json:"action"`
	// ContactID is the contact created, updated, unchanged or skipped.
	ContactID string `json:"contact_id,omitempty"`
	// MatchedBy names how an existing contact was found: "id" (the id
	// column of an export), "email" or "phone".
	MatchedBy string `json:"matched_by,omitempty"`
	// Reason says why a row was skipped or rejected (the rejected row's
	// field problems are in ImportReport.Errors).
	Reason string `json:"reason,omitempty"`
}

// ImportReport says what ImportCSV did.
type ImportReport struct {
	// Rows counts the data rows read.
	Rows int `json:"rows"`
	// Created, Updated, Unchanged, Skipped and Rejected count the rows by
	// action.
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Skipped   int `json:"skipped"`
	Rejected  int `json:"rejected"`
	// Results lists every data row's outcome, in file order.
	Results []RowResult `json:"results"`
	// Errors lists each problem of each rejected row, and header columns
	// ignored (row 1); a rejected row wrote nothing.
	Errors []RowError `json:"errors"`
}

func (rep *ImportReport) add(r RowResult, errs []RowError) {
	rep.Results = append(rep.Results, r)
	rep.Errors = append(rep.Errors, errs...)
	switch r.Action {
	case ImportCreated:
		rep.Created++
	case ImportUpdated:
		rep.Updated++
	case ImportUnchanged:
		rep.Unchanged++
	case ImportSkipped:
		rep.Skipped++
	case ImportRejected:
		rep.Rejected++
	}
}

// headerAliases maps header spellings, squashed to lower-case letters and
// digits ("First Name", "first_name" and "FirstName" are all "firstname"),
// to the columns of CSVColumns. "name" is a full name, split into first
// and last name at its last space ("Last, First" at its comma) when the
// file has no first or last name. Several spellings of one column (an
// address book's "Work Email" and "Personal Email") may appear together:
// a row takes the first of them that is not empty.
var headerAliases = map[string]string{
	"id": "id", "contactid": "id",
	"firstname": "first_name", "givenname": "first_name", "forename": "first_name", "fname": "first_name",
	"lastname": "last_name", "surname": "last_name", "familyname": "last_name", "lname": "last_name",
	"name": "name", "fullname": "name", "contactname": "name",
	"email": "email", "emailaddress": "email", "mail": "email", "emailaddr": "email", "primaryemail": "email",
	"workemail": "email", "businessemail": "email", "personalemail": "email", "homeemail": "email", "otheremail": "email",
	"email1": "email", "email1value": "email", "emailaddress1": "email", "email2": "email", "email2value": "email", "emailaddress2": "email",
	"phone": "phone", "phonenumber": "phone", "mobile": "phone", "mobilephone": "phone", "mobilenumber": "phone",
	"cell": "phone", "cellphone": "phone", "cellnumber": "phone", "telephone": "phone", "telephonenumber": "phone", "tel": "phone", "phoneno": "phone",
	"workphone": "phone", "businessphone": "phone", "homephone": "phone", "primaryphone": "phone", "otherphone": "phone",
	"phone1": "phone", "phone1value": "phone", "phone2": "phone", "phone2value": "phone",
	"stage": "stage", "lifecyclestage": "stage",
	"source": "source", "leadsource": "source",
	"utmsource": "utm_source", "utmmedium": "utm_medium", "utmcampaign": "utm_campaign", "utmterm": "utm_term", "utmcontent": "utm_content",
	"birthday": "birthday", "birthdate": "birthday", "dateofbirth": "birthday", "dob": "birthday",
	"companyid": "company_id", "ownerid": "owner_id",
	"tags": "tags", "tag": "tags", "labels": "tags",
	"preferences": "preferences",
	"createdat":   "created_at", "updatedat": "updated_at",
}

// csvHeader maps a header cell to its column ("" when unknown).
func csvHeader(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimPrefix(h, "\ufeff")) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return headerAliases[b.String()]
}

// sniffComma returns the separator of the CSV that br reads: of comma,
// semicolon (what spreadsheets write where the comma is the decimal
// separator) and tab, the one its header line holds most often outside
// quotes; comma when none or a tie. It only peeks at br, as little as
// the header line needs (at most br's buffer).
func sniffComma(br *bufio.Reader) rune {
	var head []byte
	for n := 256; ; n *= 2 {
		n = min(n, br.Size())
		var err error
		head, err = br.Peek(n)
		if err != nil || n == br.Size() || bytes.ContainsAny(head, "\r\n") {
			break
		}
	}
	counts := map[byte]int{}
	quoted := false
	for _, b := range head {
		if b == '"' {
			quoted = !quoted
			continue
		}
		if quoted {
			continue
		}
		if b == '\n' || b == '\r' {
			break
		}
		counts[b]++
	}
	comma := byte(',')
	for _, b := range []byte{';', '\t'} {
		if counts[b] > counts[comma] {
			comma = b
		}
	}
	return rune(comma)
}

// importRow is a parsed data row waiting for its batch.
type importRow struct {
	line    int
	id      string
	contact Contact
	errs    []RowError
}

// ImportCSV reads contacts from CSV with a header row and writes each row
// as a contact, reading while it writes: the input is never held whole.
//
// Headers are matched by their usual spellings ("First Name", "first_name",
// "Email Address", "E-mail", "Phone Number", "Mobile", …; see CSVColumns);
// unknown columns are reported once (row 1) and ignored. Fields are
// separated by commas, semicolons or tabs, whichever the header line holds
// most (comma on a tie). Phone numbers may
// be national, read in the Store's default region (WithDefaultRegion).
//
// A row names an existing contact by the id column (as in an export of the
// same tenant), else by its e-mail address, else by its phone number, found
// through their blind indexes; such a row updates that contact or is
// skipped (ImportOptions.OnMatch), and any other row creates one. So
// importing an export back, or an import sent again, creates nothing the
// first time created. A row without a name, e-mail address or phone number
// is rejected rather than stored empty. Every row's outcome is in the
// report (row number, action, contact id, reason; never a value); a
// rejected row — bad CSV, a value that does not parse, a rule it breaks —
// writes nothing and does not stop the rows after it.
//
// Rows are written in batches (ImportOptions.BatchSize), one transaction
// each. On PostgreSQL a transaction-level advisory lock per e-mail address
// and phone number (see Contacts.Create) makes two imports of one address
// at once create one contact: the second finds the first's.
//
// The error is for a problem with the whole input (no header, a read
// error, a database failure, the context ending); the report then covers
// the rows of the batches committed. An audit entry "contacts.imported"
// records the counts.
func (r *Contacts) ImportCSV(ctx context.Context, in io.Reader, o ImportOptions) (ImportReport, error) {
	rep := ImportReport{Results: []RowResult{}, Errors: []RowError{}}
	if o.Source == "" {
		o.Source = "import"
	}
	if o.OnMatch == "" {
		o.OnMatch = ImportUpdate
	}
	if o.OnMatch != ImportUpdate && o.OnMatch != ImportSkip {
		return rep, invalid("import", "on_match", "oneof", "must be update or skip")
	}
	switch {
	case o.BatchSize <= 0:
		o.BatchSize = 100
	case o.BatchSize > 1000:
		o.BatchSize = 1000
	}
	if _, err := r.s.access(ctx, nil, staffOnly(kindContact)); err != nil {
		return rep, err
	}
	// The tenant's keys are created outside any transaction (the vault's
	// Concurrency section): the batches seal inside theirs.
	if _, err := r.s.vault.EnsureKey(ctx); err != nil {
		return rep, fmt.Errorf("crm: import contacts: %w", err)
	}
	br := bufio.NewReader(in) // what csv.NewReader would wrap in: no more read ahead
	cr := csv.NewReader(br)
	cr.Comma = sniffComma(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return rep, invalid("import", "header", "required", "the CSV has no readable header row")
	}
	col := map[string][]int{}
	for i, h := range header {
		c := csvHeader(h)
		if c == "" {
			rep.Errors = append(rep.Errors, RowError{Row: 1, Field: strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")), Problem: "unknown column, ignored"})
			continue
		}
		col[c] = append(col[c], i)
	}
	defer func() {
		if rep.Rows > 0 {
			_ = r.s.writeAudit(ctx, r.s.db, tenancy.AuditEvent{Action: "contacts.imported", Target: "contacts",
				Metadata: map[string]string{"rows": strconv.Itoa(rep.Rows), "created": strconv.Itoa(rep.Created),
					"updated": strconv.Itoa(rep.Updated), "rejected": strconv.Itoa(rep.Rejected)}})
		}
	}()
	var batch []importRow
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, errs, err := r.importBatch(ctx, batch, o)
		if err != nil {
			return err
		}
		for i := range results {
			rep.add(results[i], errs[i])
		}
		batch = batch[:0]
		return nil
	}
	stop := func() bool { return o.MaxErrors > 0 && len(rep.Errors) >= o.MaxErrors }
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rep, flush()
		}
		if pe := (*csv.ParseError)(nil); errors.As(err, &pe) {
			if err := flush(); err != nil {
				return rep, err
			}
			rep.Rows++
			rep.add(RowResult{Row: pe.StartLine, Action: ImportRejected, Reason: "malformed CSV"},
				[]RowError{{Row: pe.StartLine, Problem: "malformed CSV: " + pe.Err.Error()}})
			if stop() {
				return rep, nil
			}
			continue
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return rep, ferr
			}
			return rep, fmt.Errorf("crm: import contacts: %w", err)
		}
		line, _ := cr.FieldPos(0)
		rep.Rows++
		get := func(name string) string {
			for _, i := range col[name] {
				if i < len(rec) {
					if v := strings.TrimSpace(rec[i]); v != "" {
						return csvsafe.Unescape(v) // as ExportCSV wrote it
					}
				}
			}
			return ""
		}
		row := importRow{line: line, id: get("id")}
		row.contact, row.errs = contactFromRow(get, line)
		if row.contact.Source == "" {
			row.contact.Source = o.Source
		}
		batch = append(batch, row)
		if len(batch) >= o.BatchSize {
			if err := flush(); err != nil {
				return rep, err
			}
			if stop() {
				return rep, nil
			}
		}
	}
}

// importBatch writes rows in one transaction, retried when PostgreSQL
// picks it as a deadlock or serialization victim. It returns each row's
// result and errors.
//
// The blind indexes of the rows' e-mail addresses and phone numbers are
// computed first, outside the transaction. Inside it, the batch locks them
// all (PostgreSQL: advisory locks, in one sorted order, the ones
// Contacts.Create takes; SQLite: the write transaction is exclusive), then
// finds the contacts they name in one query; each row then updates its
// contact or creates one, and a contact created is found by the rows after
// it. Created rows skip Create's own duplicate check: the batch did it,
// under the same locks.
func (r *Contacts) importBatch(ctx context.Context, rows []importRow, o ImportOptions) ([]RowResult, [][]RowError, error) {
	keys := make([]importKeys, len(rows))
	var locks [][2]string
	for i, row := range rows {
		if len(row.errs) > 0 {
			continue
		}
		var err error
		if keys[i], err = r.importKeys(ctx, row.contact); err != nil {
			return nil, nil, fmt.Errorf("crm: import contacts: %w", err)
		}
		if keys[i].email != "" {
			locks = append(locks, [2]string{"email", keys[i].email})
		}
		if len(keys[i].phones) > 0 {
			locks = append(locks, [2]string{"phone", keys[i].phones[0]})
		}
	}
	var results []RowResult
	var errs [][]RowError
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		results, errs = make([]RowResult, len(rows)), make([][]RowError, len(rows))
		err = r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			if err := r.s.lockIndexes(ctx, tx, locks); err != nil {
				return err
			}
			known, err := findByIndexes(ctx, tx, keys)
			if err != nil {
				return err
			}
			in := r.s.Using(tx).Contacts()
			for i, row := range rows {
				if results[i], errs[i], err = in.importRow(ctx, row, keys[i], known, o); err != nil {
					return err
				}
			}
			return nil
		})
		// errClaimTaken: a create that took no lock stored one of the
		// batch's addresses after the batch looked them up; the next
		// attempt finds it (create_pgclaim.go).
		if err == nil || !dberr.IsSerialization(err) && !errors.Is(err, errClaimTaken) {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return results, errs, nil
}

// importKeys are the blind indexes a row is matched by: its e-mail
// address's, and its phone number's (E.164 first, then as written).
type importKeys struct {
	email  string
	phones []string
}

func (r *Contacts) importKeys(ctx context.Context, c Contact) (importKeys, error) {
	var k importKeys
	var err error
	if e := normalizeEmail(c.Email); e != "" {
		if k.email, err = r.s.vault.Index(ctx, e, "email"); err != nil {
			return k, err
		}
	}
	k.phones, err = r.s.phoneIndexes(ctx, c.Phone)
	return k, err
}

// knownContacts maps blind indexes to the first contact (by id) that has
// them, in a batch's transaction.
type knownContacts struct{ email, phone map[string]string }

// findByIndexes finds the contacts with the e-mail addresses and phone
// numbers of keys, in one query.
func findByIndexes(ctx context.Context, tx bun.IDB, keys []importKeys) (knownContacts, error) {
	known := knownContacts{email: map[string]string{}, phone: map[string]string{}}
	var emails, phones []string
	for _, k := range keys {
		if k.email != "" {
			emails = append(emails, k.email)
		}
		phones = append(phones, k.phones...)
	}
	if len(emails) == 0 && len(phones) == 0 {
		return known, nil
	}
	var found []Contact
	q := tx.NewSelect().Model(&found).Column("id", "email_index", "phone_index")
	q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
		if len(emails) > 0 {
			q = q.WhereOr("?TableAlias.email_index IN (?)", bun.In(emails))
		}
		if len(phones) > 0 {
			q = q.WhereOr("?TableAlias.phone_index IN (?)", bun.In(phones))
		}
		return q
	})
	if err := q.OrderExpr("?TableAlias.id").Scan(ctx); err != nil {
		return known, fmt.Errorf("crm: import contacts: find existing: %w", err)
	}
	for _, c := range found {
		known.remember(c.ID, c.EmailIndex, c.PhoneIndex)
	}
	return known, nil
}

// remember records contact id under its indexes, unless an earlier
// contact has them.
func (k knownContacts) remember(id, email, phone string) {
	if _, ok := k.email[email]; email != "" && !ok {
		k.email[email] = id
	}
	if _, ok := k.phone[phone]; phone != "" && !ok {
		k.phone[phone] = id
	}
}

// importRow writes one row through r, a Contacts bound to the batch's
// transaction (each write runs in a savepoint of it).
func (r *Contacts) importRow(ctx context.Context, row importRow, keys importKeys, known knownContacts, o ImportOptions) (RowResult, []RowError, error) {
	res := RowResult{Row: row.line}
	reject := func(reason string, errs []RowError) (RowResult, []RowError, error) {
		res.Action, res.Reason, res.ContactID, res.MatchedBy = ImportRejected, reason, "", ""
		return res, errs, nil
	}
	if len(row.errs) > 0 {
		return reject("a value does not parse", row.errs)
	}
	c := row.contact
	if c.FirstName == "" && c.LastName == "" && c.Email == "" && c.Phone == "" {
		return reject("no name, e-mail address or phone number", []RowError{{Row: row.line, Field: "first_name",
			Problem: "a contact needs a name, an e-mail address or a phone number"}})
	}
	fromValidation := func(err error) ([]RowError, bool) {
		var verr *ValidationError
		if !errors.As(err, &verr) {
			return nil, false
		}
		out := make([]RowError, 0, len(verr.Fields))
		for _, f := range verr.Fields {
			out = append(out, RowError{Row: row.line, Field: f.Field, Problem: f.Message})
		}
		return out, true
	}
	cur, by, err := r.match(ctx, row.id, keys, known)
	if err != nil {
		return res, nil, err
	}
	if by == "" {
		created, err := r.Create(ctx, c.ContactInput, importClaim()) // checked by the batch, under its locks
		if errs, ok := fromValidation(err); ok {
			return reject("breaks a rule", errs)
		}
		if err != nil {
			return res, nil, err
		}
		phone := ""
		if len(keys.phones) > 0 {
			phone = keys.phones[0]
		}
		known.remember(created.ID, keys.email, phone)
		res.Action, res.ContactID = ImportCreated, created.ID
		return res, nil, nil
	}
	res.ContactID, res.MatchedBy = cur.ID, by
	if o.OnMatch == ImportSkip {
		res.Action, res.Reason = ImportSkipped, "names an existing contact"
		return res, nil, nil
	}
	next := applyRow(cur, c)
	if r.sameContent(cur, next) {
		res.Action = ImportUnchanged
		return res, nil, nil
	}
	if _, err := r.Update(ctx, next.ID, next.Version, next.ContactInput); err != nil {
		if errs, ok := fromValidation(err); ok {
			return reject("breaks a rule", errs)
		}
		return res, nil, err
	}
	res.Action = ImportUpdated
	return res, nil, nil
}

// match finds the existing contact a row names: by id, else e-mail
// address, else phone number. by is empty when there is none.
func (r *Contacts) match(ctx context.Context, id string, keys importKeys, known knownContacts) (cur Contact, by string, err error) {
	if id != "" && tenancy.ValidateID(id) == nil {
		cur, err = r.Get(ctx, id)
		if err == nil {
			return cur, "id", nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Contact{}, "", err
		}
	}
	found, by := known.email[keys.email], "email"
	for _, p := range keys.phones {
		if found != "" {
			break
		}
		found, by = known.phone[p], "phone"
	}
	if found == "" {
		return Contact{}, "", nil
	}
	if cur, err = r.Get(ctx, found); err != nil {
		return Contact{}, "", err
	}
	return cur, by, nil
}

// applyRow returns cur with the row's non-empty values written over it;
// tags and preferences are added to the contact's.
func applyRow(cur, row Contact) Contact {
	next := cur
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&next.FirstName, row.FirstName)
	set(&next.LastName, row.LastName)
	set(&next.Email, row.Email)
	set(&next.Phone, row.Phone)
	set((*string)(&next.Stage), string(row.Stage))
	set(&next.CompanyID, row.CompanyID)
	set(&next.OwnerID, row.OwnerID)
	if !row.Birthday.IsZero() {
		next.Birthday = row.Birthday
	}
	next.Tags = append(slices.Clone(cur.Tags), row.Tags...)
	next.Preferences = maps.Clone(cur.Preferences)
	if next.Preferences == nil {
		next.Preferences = map[string]string{}
	}
	maps.Copy(next.Preferences, row.Preferences)
	return next
}

// sameContent reports whether writing next over cur would change nothing
// an import writes.
func (r *Contacts) sameContent(cur, next Contact) bool {
	next.normalize()
	next.Phone = r.s.normalizePhone(next.Phone)
	return cur.FirstName == next.FirstName && cur.LastName == next.LastName && cur.Email == next.Email &&
		cur.Phone == next.Phone && cur.Stage == next.Stage && cur.CompanyID == next.CompanyID &&
		cur.OwnerID == next.OwnerID && cur.Birthday == next.Birthday && slices.Equal(cur.Tags, next.Tags) &&
		maps.Equal(cur.Preferences, next.Preferences)
}

func contactFromRow(get func(string) string, line int) (Contact, []RowError) {
	var errs []RowError
	c := Contact{ContactInput: ContactInput{
		FirstName: get("first_name"), LastName: get("last_name"), Email: get("email"), Phone: get("phone"),
		Stage: Stage(strings.ToLower(get("stage"))), Source: get("source"),
		UTM:       UTM{Source: get("utm_source"), Medium: get("utm_medium"), Campaign: get("utm_campaign"), Term: get("utm_term"), Content: get("utm_content")},
		CompanyID: get("company_id"), OwnerID: get("owner_id"),
	}}
	if full := strings.Join(strings.Fields(get("name")), " "); full != "" && c.FirstName == "" && c.LastName == "" {
		if last, first, ok := strings.Cut(full, ","); ok && strings.TrimSpace(last) != "" && strings.TrimSpace(first) != "" {
			c.FirstName, c.LastName = strings.TrimSpace(first), strings.TrimSpace(last)
		} else if i := strings.LastIndexByte(full, ' '); i > 0 {
			c.FirstName, c.LastName = full[:i], full[i+1:]
		} else {
			c.FirstName = full
		}
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
