package retention

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Category declares one kind of data the engine manages: a tenant-owned
// table (it must have a tenant_id column), how to find a data subject's rows
// in it, what ages it, and how it is erased. Declarations are plain struct
// literals; the zero value of each optional field is documented.
//
//	retention.Category{
//		Name:       "crm.contact",
//		Table:      "crm_contacts",
//		Subject:    map[string]string{"email": "email", "contact_id": "id"},
//		Time:       "updated_at",
//		Erase:      retention.Erase{Anonymize: map[string]any{"email": nil, "name": "erased"}},
//		LegalBasis: "contract",
//		Purpose:    "customer relationship",
//	}
type Category struct {
	// Name identifies the category, as "package.kind" ("crm.contact",
	// "social.raw_response"). Required and unique.
	Name string
	// Table is the tenant-owned table holding the data. Required.
	Table string
	// ID is the table's row id column (default "id"). Batches select and
	// erase rows by it.
	ID string
	// Subject maps an identifier kind ("email", "contact_id", "open_id") to
	// how a data subject's rows are found by it: either a column of Table
	// (a plain identifier: rows whose column equals the identifier), or an
	// SQL condition on the table (alias r) with the placeholders ?value
	// (the identifier) and ?tenant (the tenant id), for example a join:
	//
	//	"r.contact_id IN (SELECT c.id FROM crm_contacts c WHERE c.tenant_id = ?tenant AND c.email = ?value)"
	//
	// Qualify the table's own columns with r. A nil Subject means the
	// category holds no subject's data: requests skip it.
	Subject map[string]string
	// SubjectIndex, if set, returns for a database of dialect d, by
	// identifier kind of Subject, a condition on the table (alias r, with
	// Subject's placeholders ?value and ?tenant) that is true of every row
	// the kind's Subject condition finds, and that an index serves where
	// none serves Subject's: requests, event rules and subject holds AND
	// it to Subject's condition, so that the database reads the subject's
	// rows along that index instead of every row of the table (crm's name
	// index rows on PostgreSQL, whose contact_id is not indexed: their
	// token is). It must not narrow what Subject finds: a row it leaves
	// out is neither exported nor erased. A kind it does not name, or an
	// empty condition, adds none. Nil: Subject's condition alone.
	SubjectIndex func(d dialect.Name) map[string]string
	// Time is the column that ages a row (a TIMESTAMP). Required for age
	// and event rules and for legal-obligation keeps.
	Time string
	// TimeIndex, if set, returns for a database of dialect d a condition
	// on the table (alias r; "?" for each of args) that is true of every
	// row whose Time is at or before cutoff, and that an index serves
	// where none serves Time: a sweep adds it to Time's, so that the
	// database reads a tenant's due rows along that index instead of
	// every row of the tenant (crm's conversations on PostgreSQL, whose
	// exact time is not indexed: a coarse day column is). An empty
	// condition adds none. Nil: Time's condition alone.
	TimeIndex func(d dialect.Name, cutoff time.Time) (cond string, args []any)
	// Derived, if set, returns for a database of dialect d the columns
	// whose stored value may lag behind the row's data, each with an SQL
	// expression on the table (alias r; ?tenant for the tenant id) that
	// gives the exact value: Export writes that in the column's place, so
	// that an access request gets the data as the package's own reads
	// show it (crm's conversations' last message time on PostgreSQL).
	// Nil, or a column it does not name: the stored value.
	Derived func(d dialect.Name) map[string]string
	// Erase is how rows are erased (the zero value deletes them).
	Erase Erase
	// Lookup, if set, names a column of the table that an index serves and
	// that, with ID, tells one row from every other, for a table with no
	// index on ID (crm's name index rows: one per token of a contact's
	// name, indexed by token alone). A batch that deletes in one
	// statement (a category that deletes, without BeforeErase; in a tenant
	// purge, every category without BeforeErase) then deletes the rows
	// whose pair of Lookup and ID it selected — on PostgreSQL found again
	// through Lookup's index, where by ID alone the server would read
	// every row of the table — and only those: rows that share an ID with
	// them but were not selected (not due yet, held) stay. Only the
	// selection reads the table otherwise (a request's, through Subject
	// and SubjectIndex). Other batches (anonymizing, or with BeforeErase,
	// whose ids name the rows) erase every row of the ids they selected.
	// Empty: by ID.
	Lookup string
	// Omit names columns that Export leaves out: secrets that are not the
	// subject's data to take away (password hashes, sealed tokens).
	Omit []string
	// Sealed names columns that hold the subject's own data encrypted
	// (sealed) where the engine cannot read it: a contact's e-mail address
	// or phone number. Export writes each one opened, in clear, under its
	// As name and in its place among the columns, so that an access
	// request returns all of the subject's data; nothing else sees the
	// opened values. A sealed column must not be in Omit. Nil: none.
	Sealed []SealedColumn
	// Clear says which columns of a table with sealed columns stay in
	// clear, and why (ids, times, enums, amounts: what lookups, ordering
	// and retention need), for the data map. Empty: not stated.
	Clear string
	// LegalBasis and Purpose are free text for the data map ("contract",
	// "legitimate interest: fraud prevention").
	LegalBasis, Purpose string
	// Files, if set, hands Export the files a row stands for beyond its
	// columns (an attachment's bytes): for the row whose id column holds
	// id (ctx acts on the row's tenant), it calls add once per file with
	// the file's name and content, read through the declaring package's
	// own API. Export streams each one into the archive as
	// "<category>/<id>/<name>", after the category's JSON and CSV files,
	// and fails if Files or add fails: an access export without the
	// subject's files would be incomplete. Nil: the rows have no files.
	Files func(ctx context.Context, id string, add func(name string, content io.Reader) error) error
	// BeforeErase, if set, runs in each batch's transaction before the
	// batch is erased, with the ids of the batch (for example to revoke a
	// token at a platform). An error rolls the batch back and stops the
	// operation; the batch is retried by the next run, so the hook must be
	// idempotent. An *UnfinishedError instead keeps its IDs and erases
	// and commits the rest of the batch before the operation stops, so
	// that what the hook did for those rows outside the database (a
	// platform that acted) is not undone with the batch and done again.
	// Rows of other categories the hook erases with the batch (rows that
	// hang off the batch's) count in the receipt when it reports them
	// with CountErased.
	BeforeErase func(ctx context.Context, tx bun.Tx, ids []string) error
	// AfterErase, if set, runs after each batch's transaction commits, with
	// the ids of the rows the batch erased (ctx acts on their tenant): for
	// what cannot be rolled back, such as deleting an attachment's bytes
	// from storage, which must not happen for rows a rolled-back batch
	// keeps. The batch records the ids (in TablePending) in its own
	// transaction, and the hook's success removes them; after a crash or
	// a hook error between the two, the next Erase, Sweep, PurgeTenants or
	// ResumeErasures visiting the tenant runs the hook again for them
	// first. It must therefore be idempotent (deleting what is already
	// gone succeeds). An error stops the operation.
	AfterErase func(ctx context.Context, ids []string) error
	// Pending, if set, counts what the category still holds about the
	// subject of an erasure once the erasure is done, found by the
	// subject's keys (ctx acts on the tenant): work that outlives the
	// erasure because it waits on someone else, such as a platform revoke
	// queued with its sealed tokens until the platform accepts it. Erase
	// reports it in the receipt (CategoryReceipt.Pending) and in the
	// completion's audit entry, so that a completed erasure does not read
	// as if nothing were left.
	Pending func(ctx context.Context, keys Keys) (int64, error)
	// Truncate, if set, replaces the generic batched erase for the age rule
	// of a table that must not be deleted row by row (the audit log's hash
	// chain: tenancy.AuditLog.Truncate). It receives a context acting on
	// one tenant and removes that tenant's rows older than before.
	Truncate func(ctx context.Context, before time.Time) (int64, error)
	// HeldWith, if set, names the category whose rows this category's rows
	// go with: rows that exist only with a row of that category and are
	// erased with it (crm's name index rows, which triggers delete with
	// their contact). A record hold on HeldWith's row whose id equals this
	// category's ID column value (compared as text) holds this category's
	// rows too, in erasure requests, sweeps and tenant purges, and their
	// receipts count them held. Such rows cannot be held apart from their
	// owner: PlaceHold refuses a record hold on this category with a
	// *ValidationError naming HeldWith. Register requires HeldWith to be
	// a category registered before or with this one, other than Name,
	// that declares no HeldWith itself. Empty: record holds on this
	// category's own rows alone hold them.
	HeldWith string
	// Shreds marks a category whose rows keep the tenant's sealed data
	// readable (the vault's wrapped keys, and the list of tenants whose keys
	// a key-encryption-key rotation re-wraps): erasing them shreds every
	// value sealed for the tenant. A tenant purge erases these categories
	// last, and only when no legal hold kept any row, for held rows must stay
	// readable as long as the hold lasts.
	Shreds bool
	// Spare names rows that an erasure request finds but must not erase,
	// and why (the zero value spares none). Sweeps and tenant purges
	// ignore it.
	Spare Spare
}

// Spare is a condition under which an erasure request keeps a row it
// found: the row is left whole and counted as Kept in the request's
// receipt, whose Rule then ends with Reason. TenancyCategories spares a
// tenant's last owner this way.
type Spare struct {
	// Where is an SQL condition on the table (alias r) with the
	// placeholder ?tenant (the tenant id), true of the rows to keep.
	Where string
	// Reason says why, for the receipt and the audit log.
	Reason string
}

// SealedColumn declares one sealed column of a Category for Export. The
// engine knows nothing of how it was sealed: the declaring package opens
// it.
type SealedColumn struct {
	// Column holds the sealed bytes (NULL: no value, exported as null
	// without calling Open). Required.
	Column string
	// As is the name the opened value is exported under (default Column),
	// for example "email" for "email_sealed".
	As string
	// Open returns the plaintext of sealed, the value of Column in the row
	// whose id column holds id, in tenant tenantID (the context acts on
	// that tenant). Export calls it once per row that has a value, while
	// it reads the rows, and fails if it fails: an access export that
	// silently left out the subject's data would be incomplete. Open may
	// read the database (its own connection), but should be fast: it runs
	// once per row. Required.
	Open func(ctx context.Context, tenantID, id string, sealed []byte) (string, error)
	// Fields, when set, are the names of several values sealed together
	// in Column (a record sealed whole): the column is exported as one
	// column per name, in this order, in place of one named As, with the
	// values OpenFields returns (a string each, or nil for none); Open is
	// then not used.
	Fields     []string
	OpenFields func(ctx context.Context, tenantID, id string, sealed []byte) ([]any, error)
}

// name is the column's exported name.
func (s SealedColumn) name() string {
	if s.As == "" {
		return s.Column
	}
	return s.As
}

// names are the column's exported names: its Fields, or its name.
func (s SealedColumn) names() []string {
	if len(s.Fields) > 0 {
		return s.Fields
	}
	return []string{s.name()}
}

// Erase is a category's erase action. The zero value deletes rows.
type Erase struct {
	// Anonymize, when not empty, keeps rows and overwrites the named
	// columns with the stated replacement values (nil writes NULL) instead
	// of deleting the rows.
	Anonymize map[string]any
}

// String describes the action for the data map.
func (e Erase) String() string {
	if len(e.Anonymize) == 0 {
		return "delete"
	}
	return "anonymize " + strings.Join(e.columns(), ", ")
}

func (e Erase) columns() []string {
	cols := make([]string, 0, len(e.Anonymize))
	for c := range e.Anonymize {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	return cols
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func isIdent(s string) bool { return identRE.MatchString(s) }

func (c Category) idColumn() string {
	if c.ID == "" {
		return "id"
	}
	return c.ID
}

// validate checks the declaration without the database.
func (c Category) validate() error {
	bad := func(field, reason string) error {
		return &CategoryError{Category: c.Name, Field: field, Reason: reason}
	}
	switch {
	case c.Name == "":
		return bad("Name", "required")
	case !isIdent(c.Table):
		return bad("Table", "must be a plain table name")
	case !isIdent(c.idColumn()):
		return bad("ID", "must be a plain column name")
	case c.Time != "" && !isIdent(c.Time):
		return bad("Time", "must be a plain column name")
	case c.Lookup != "" && (!isIdent(c.Lookup) || c.Lookup == c.idColumn()):
		return bad("Lookup", "must be a plain column name other than ID")
	case c.HeldWith != "" && (c.HeldWith == c.Name || strings.TrimSpace(c.HeldWith) != c.HeldWith):
		return bad("HeldWith", "must name another category")
	}
	for kind, how := range c.Subject {
		if kind == "" {
			return bad("Subject", "empty identifier kind")
		}
		if isIdent(how) {
			continue
		}
		if _, _, err := expand(how, "?", "?", ""); err != nil {
			return bad("Subject", fmt.Sprintf("%s: %v", kind, err))
		}
		if !strings.Contains(how, "?value") {
			return bad("Subject", kind+": condition must use ?value")
		}
	}
	if c.SubjectIndex != nil {
		for _, d := range []dialect.Name{dialect.PG, dialect.SQLite} {
			for kind, how := range c.SubjectIndex(d) {
				if _, ok := c.Subject[kind]; !ok {
					return bad("SubjectIndex", fmt.Sprintf("%s: %s is not a kind of Subject", d, kind))
				}
				if _, _, err := expand(how, "?", "?", ""); err != nil {
					return bad("SubjectIndex", fmt.Sprintf("%s: %s: %v", d, kind, err))
				}
			}
		}
	}
	for _, col := range c.Omit {
		if !isIdent(col) {
			return bad("Omit", fmt.Sprintf("%q is not a plain column name", col))
		}
	}
	for _, sc := range c.Sealed {
		switch {
		case !isIdent(sc.Column):
			return bad("Sealed", fmt.Sprintf("%q is not a plain column name", sc.Column))
		case sc.As != "" && !isIdent(sc.As):
			return bad("Sealed", fmt.Sprintf("%s: exported name %q is not a plain name", sc.Column, sc.As))
		case len(sc.Fields) > 0 && sc.OpenFields == nil:
			return bad("Sealed", sc.Column+": OpenFields is required with Fields")
		case len(sc.Fields) > 0 && slices.ContainsFunc(sc.Fields, func(f string) bool { return !isIdent(f) }):
			return bad("Sealed", sc.Column+": a field name is not a plain name")
		case len(sc.Fields) == 0 && sc.Open == nil:
			return bad("Sealed", sc.Column+": Open is required")
		case slices.Contains(c.Omit, sc.Column):
			return bad("Sealed", sc.Column+" is also in Omit")
		}
	}
	for col := range c.Erase.Anonymize {
		if !isIdent(col) {
			return bad("Erase", fmt.Sprintf("anonymized column %q is not a plain column name", col))
		}
		if col == c.idColumn() || col == "tenant_id" {
			return bad("Erase", "cannot anonymize the id or tenant_id column")
		}
	}
	return nil
}

// heldWithRegistered checks each category's HeldWith against cats: it
// must name one of them, which declares no HeldWith itself (a record hold
// reaches one category further, no more).
func heldWithRegistered(cats []Category) error {
	byName := make(map[string]Category, len(cats))
	for _, c := range cats {
		byName[c.Name] = c
	}
	for _, c := range cats {
		if c.HeldWith == "" {
			continue
		}
		owner, ok := byName[c.HeldWith]
		switch {
		case !ok:
			return &CategoryError{Category: c.Name, Field: "HeldWith", Reason: fmt.Sprintf("%q is not registered", c.HeldWith)}
		case owner.HeldWith != "":
			return &CategoryError{Category: c.Name, Field: "HeldWith", Reason: fmt.Sprintf("%q is itself held with %q", c.HeldWith, owner.HeldWith)}
		}
	}
	return nil
}

// columns lists the columns the declaration names, for Check.
func (c Category) columns() []string {
	cols := []string{"tenant_id", c.idColumn()}
	if c.Lookup != "" {
		cols = append(cols, c.Lookup)
	}
	if c.Time != "" {
		cols = append(cols, c.Time)
	}
	for _, how := range c.Subject {
		if isIdent(how) {
			cols = append(cols, how)
		}
	}
	cols = append(cols, c.Omit...)
	for _, sc := range c.Sealed {
		cols = append(cols, sc.Column)
	}
	return append(cols, c.Erase.columns()...)
}

// subjectCond returns the SQL template of the subject condition for kind
// on a database of dialect d, with ?value and ?tenant placeholders: the
// Subject's, ANDed with the SubjectIndex's for d if it has one.
func (c Category) subjectCond(d dialect.Name, kind string) (string, bool) {
	how, ok := c.Subject[kind]
	if !ok {
		return "", false
	}
	if isIdent(how) {
		how = "r." + how + " = ?value"
	}
	if c.SubjectIndex != nil {
		if ix := c.SubjectIndex(d)[kind]; ix != "" {
			how = "(" + ix + ") AND (" + how + ")"
		}
	}
	return how, true
}

// expand replaces ?value with value and ?tenant with tenant in a subject
// condition; each placeholder replaced by "?" takes an argument, reported in
// order as "value" or "tenant". Any other "?" is an error.
func expand(tmpl, value, tenant, _ string) (string, []string, error) {
	var b strings.Builder
	var order []string
	for i := 0; i < len(tmpl); {
		if tmpl[i] != '?' {
			b.WriteByte(tmpl[i])
			i++
			continue
		}
		switch {
		case strings.HasPrefix(tmpl[i:], "?value"):
			b.WriteString(value)
			if value == "?" {
				order = append(order, "value")
			}
			i += len("?value")
		case strings.HasPrefix(tmpl[i:], "?tenant"):
			b.WriteString(tenant)
			if tenant == "?" {
				order = append(order, "tenant")
			}
			i += len("?tenant")
		default:
			return "", nil, fmt.Errorf("unknown placeholder at %q (only ?value and ?tenant)", tmpl[i:])
		}
	}
	return b.String(), order, nil
}

// bind expands a subject condition with the identifier and tenant as
// arguments.
func bind(tmpl, value, tid string) (string, []any) {
	sql, order, _ := expand(tmpl, "?", "?", "")
	args := make([]any, len(order))
	for i, o := range order {
		if o == "value" {
			args[i] = value
		} else {
			args[i] = tid
		}
	}
	return sql, args
}
