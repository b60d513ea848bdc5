package crm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Stage is a contact's lifecycle stage, from lead to customer.
type Stage string

// Lifecycle stages, in order.
const (
	StageLead        Stage = "lead"
	StageQualified   Stage = "qualified"
	StageOpportunity Stage = "opportunity"
	StageCustomer    Stage = "customer"
	StageInactive    Stage = "inactive"
)

// Table names of the contacts.
const (
	TableContacts    = TablePrefix + "contacts"
	TableContactTags = TablePrefix + "contact_tags"
	// TableContactNames holds one row per blind index of a contact's name
	// prefixes (see ContactFilter.NamePrefix), kept by triggers from the
	// contact's name_index column on every insert, rename and delete.
	TableContactNames = TablePrefix + "contact_names"
)

// UTM holds the campaign parameters a contact arrived with.
type UTM struct {
	Source   string `bun:"source,notnull" json:"source,omitempty" validate:"max=200"`
	Medium   string `bun:"medium,notnull" json:"medium,omitempty" validate:"max=200"`
	Campaign string `bun:"campaign,notnull" json:"campaign,omitempty" validate:"max=200"`
	Term     string `bun:"term,notnull" json:"term,omitempty" validate:"max=200"`
	Content  string `bun:"content,notnull" json:"content,omitempty" validate:"max=200"`
}

// Birthday is a day of the year, with the year when known. The zero value
// means unknown.
type Birthday struct {
	// Year is 0 when unknown.
	Year  int `bun:"year,notnull" json:"year,omitempty"`
	Month int `bun:"month,notnull" json:"month,omitempty"`
	Day   int `bun:"day,notnull" json:"day,omitempty"`
}

// IsZero reports whether the birthday is unknown.
func (b Birthday) IsZero() bool { return b.Month == 0 && b.Day == 0 && b.Year == 0 }

func (b Birthday) valid() bool {
	if b.IsZero() {
		return true
	}
	y := b.Year
	if y == 0 {
		y = 2000 // a leap year: 29 February is a valid birthday
	} else if y < 1800 || y > 2200 {
		return false
	}
	if b.Month < 1 || b.Month > 12 || b.Day < 1 {
		return false
	}
	t := time.Date(y, time.Month(b.Month), b.Day, 0, 0, 0, 0, time.UTC)
	return t.Day() == b.Day
}

// Contact is a person the tenant deals with. Every personal field —
// names, e-mail address, phone number, UTM values, birthday, preferences
// and tags — is stored only sealed by the vault, all of them together as
// the contact's profile (one sealed value bound to the tenant, the contact
// and the field "profile"). Beside it the table keeps blind indexes (keyed
// hashes) that find a contact by exact e-mail address, phone number, tag or
// birthday (month and day), and by the prefixes of the words of its name
// (see ContactFilter.NamePrefix). Stage, Source, the ids and the times stay
// in clear: they are the tenant's own vocabulary, not the person's.
type Contact struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contacts,alias:ct"`
	Record
	ContactInput

	// ProfileSealed holds the personal fields of ContactInput, sealed.
	ProfileSealed vault.Sealed `bun:"profile_sealed" json:"-"`
	// EmailIndex, PhoneIndex and BirthIndex are the blind indexes that
	// Create and Update compute and write; Get and List do not read them
	// back (they serve the database's look-ups, and a page reads faster
	// without them), so they are empty in what those return.
	EmailIndex string `bun:"email_index,nullzero" json:"-"`
	PhoneIndex string `bun:"phone_index,nullzero" json:"-"`
	BirthIndex string `bun:"birth_index,nullzero" json:"-"`

	nameTokens []string // blind indexes of the name's word prefixes, set by seal
	// nameIndex is the value of the name_index column: nameTokens as a
	// PostgreSQL text[] literal ({t1,t2,…}), from which triggers keep the
	// rows of TableContactNames (migration 20261123000570), or on SQLite
	// as the words of TableContactNameFTS, which triggers index (migration
	// 20261123000590); "" (NULL) without a name. The column is
	// written by Create and Update and never read back: it is not a field
	// of the model.
	nameIndex  string
	tagIndexes []string // blind indexes of Tags, set by seal
}

// ContactInput is what Contacts.Create and Contacts.Update take: the
// fields of a contact that its users set.
type ContactInput struct {
	FirstName string `bun:"-" json:"first_name" validate:"max=100"`
	LastName  string `bun:"-" json:"last_name" validate:"max=100"`
	// Email and Phone are the plaintext, never stored as such. Email is
	// stored trimmed and lower-cased; Phone must be in E.164 form.
	Email string `bun:"-" json:"email,omitempty" validate:"omitempty,email,max=254"`
	Phone string `bun:"-" json:"phone,omitempty" validate:"omitempty,e164"`

	Stage Stage `bun:"stage,notnull" json:"stage" validate:"omitempty,oneof=lead qualified opportunity customer inactive"`
	// Source says where the contact came from ("website", "instagram",
	// "import", "referral"…). Source and UTM are captured on creation and
	// kept as they were: Update does not change them. Source is stored in
	// clear: it names a channel of the tenant, not something of the person.
	Source string `bun:"source,notnull" json:"source,omitempty" validate:"max=100"`
	UTM    UTM    `bun:"-" json:"utm,omitzero"`
	// Birthday drives birthday greetings (with consent; see Scheduler).
	Birthday Birthday `bun:"-" json:"birthday,omitzero"`
	// Preferences are free key/value settings (language, sizes, …).
	Preferences map[string]string `bun:"-" json:"preferences,omitempty" validate:"max=50,dive,keys,min=1,max=64,endkeys,max=1000"`
	// CompanyID links the contact to the company it works for.
	CompanyID string `bun:"company_id,nullzero" json:"company_id,omitempty" validate:"max=64"`
	// OwnerID is the id of the member responsible for the contact.
	OwnerID string `bun:"owner_id,nullzero" json:"owner_id,omitempty" validate:"omitempty,uuid"`
	// Tags label the contact; each is trimmed, at most 50 bytes, and kept
	// once, in order of first appearance.
	Tags []string `bun:"-" json:"tags" validate:"max=50,dive,required,max=50"`
}

// contactTag indexes a contact's tags for filtering, by blind index.
type contactTag struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contact_tags,alias:ctt"`
	Record
	ContactID string `bun:"contact_id,notnull"`
	TagIndex  string `bun:"tag_index,notnull"`
}

// contactName indexes the prefixes of the words of a contact's name, by
// blind index, for ContactFilter.NamePrefix.
type contactName struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contact_names,alias:ctn"`
	tenancy.Owned
	ContactID string `bun:"contact_id,pk"`
	Token     string `bun:"token,pk"`
}

// nameTokenLen is the length a name prefix's blind index is cut to: 128
// bits, ample to tell a tenant's name prefixes apart, and small rows.
const nameTokenLen = 22

// ContactFilter narrows Contacts.List. The zero value lists every contact;
// set fields combine with AND.
type ContactFilter struct {
	Stage   Stage  `json:"stage,omitempty" validate:"omitempty,oneof=lead qualified opportunity customer inactive"`
	OwnerID string `json:"owner_id,omitempty" validate:"omitempty,max=64"`
	Tag     string `json:"tag,omitempty" validate:"max=50"`
	// UpdatedSince keeps contacts updated at or after it.
	UpdatedSince time.Time `json:"updated_since,omitzero"`
	// NamePrefix keeps contacts whose name has, for each word of
	// NamePrefix, a word that starts with it, ignoring case and accents of
	// case ("an" and "Ann" find Ann Lee, "lee an" too). Names are sealed:
	// the match goes through blind indexes of each name word's prefixes of
	// up to MaxNamePrefix characters; a longer query word is compared on
	// its first MaxNamePrefix characters.
	NamePrefix string `json:"name_prefix,omitempty" validate:"max=100"`
	// Email and Phone keep the contacts with exactly that address or
	// number (the e-mail address compared trimmed and lower-cased). Sealed
	// values are found by their blind index: no prefix search.
	Email string `json:"email,omitempty" validate:"omitempty,max=254"`
	Phone string `json:"phone,omitempty" validate:"omitempty,max=32"`
}

// Contacts is the repository of contacts, reached with Store.Contacts.
type Contacts struct{ s *Store }

// Contacts returns the repository of contacts.
func (s *Store) Contacts() *Contacts { return &Contacts{s: s} }

const kindContact = "contact"

var contactOrder = keyset{name: "contacts", cols: []string{"id"}}

func fold(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// MaxNamePrefix is the longest prefix of a name word that is indexed for
// ContactFilter.NamePrefix, in characters.
const MaxNamePrefix = 20

// namePrefixes returns the prefixes of each word of names, folded, of 1 to
// MaxNamePrefix characters, each once.
func namePrefixes(names ...string) []string {
	out := make([]string, 0, 24)
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, n := range names {
		for _, w := range strings.Fields(fold(n)) {
			if !utf8.ValidString(w) { // the runes of invalid bytes are U+FFFD
				r := []rune(w)
				for i := 1; i <= len(r) && i <= MaxNamePrefix; i++ {
					add(string(r[:i]))
				}
				continue
			}
			// Each prefix a slice of w: no copy.
			i := 0
			for end := range w {
				if end > 0 {
					add(w[:end])
				}
				if i++; i > MaxNamePrefix {
					break
				}
			}
			if i <= MaxNamePrefix {
				add(w)
			}
		}
	}
	return out
}

// queryWords returns the words of a NamePrefix query, folded and cut to
// MaxNamePrefix characters, each once.
func queryWords(q string) []string {
	var out []string
	for _, w := range strings.Fields(fold(q)) {
		if r := []rune(w); len(r) > MaxNamePrefix {
			w = string(r[:MaxNamePrefix])
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// Blind index fields of contacts: each keys the vault's index apart.
const (
	indexEmail    = "email"
	indexPhone    = "phone"
	indexTag      = "tag"
	indexBirthday = "birthday"
	indexName     = "name_prefix"
)

// birthIndexValue is what a birthday's blind index is computed over: its
// month and day, which the Scheduler looks birthdays up by.
func birthIndexValue(month, day int) string { return fmt.Sprintf("%02d-%02d", month, day) }

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normalize trims and folds the contact's input fields.
func (c *ContactInput) normalize() {
	c.FirstName, c.LastName = strings.TrimSpace(c.FirstName), strings.TrimSpace(c.LastName)
	c.Email, c.Phone = normalizeEmail(c.Email), strings.TrimSpace(c.Phone)
	c.Source = strings.TrimSpace(c.Source)
	if c.Stage == "" {
		c.Stage = StageLead
	}
	var tags []string
	for _, t := range c.Tags {
		if t = strings.TrimSpace(t); !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if tags == nil {
		tags = []string{}
	}
	c.Tags = tags
	if c.Preferences == nil {
		c.Preferences = map[string]string{}
	}
}

// validate checks a normalized contact.
func (r *Contacts) validate(c *ContactInput) error {
	var err error
	if !plainlyValid(c) { // validate_fast.go: the validator only when needed
		err = r.s.check(kindContact, c)
	}
	var verr *ValidationError
	if err != nil && !errors.As(err, &verr) {
		return err
	}
	add := func(field, rule, msg string) {
		if verr == nil {
			verr = &ValidationError{Kind: kindContact}
		}
		verr.Fields = append(verr.Fields, FieldError{Field: field, Rule: rule, Message: msg})
	}
	if c.FirstName == "" && c.LastName == "" && c.Email == "" && c.Phone == "" {
		add("first_name", "required_without_all", "a contact needs a name, an e-mail address or a phone number")
	}
	if !c.Birthday.valid() {
		add("birthday", "date", "must be a valid date (year optional)")
	}
	if verr != nil {
		return verr
	}
	return nil
}

// seal seals c's personal fields and computes its blind indexes. It runs
// outside the write transaction: a tenant's first seal creates its keys
// (see the vault's Concurrency section).
func (r *Contacts) seal(ctx context.Context, c *Contact) error {
	if err := r.s.sealProfile(ctx, c); err != nil {
		return err
	}
	return r.index(ctx, c)
}

// sealProfile seals c's personal fields into c.ProfileSealed.
func (s *Store) sealProfile(ctx context.Context, c *Contact) error {
	var buf [256]byte
	b := appendProfile(buf[:0], &c.ContactInput)
	sealed, err := s.vault.Seal(ctx, b, vault.Binding{Record: c.ID, Field: profileField})
	wipe(b)
	if err != nil {
		return fmt.Errorf("crm: seal contact profile: %w", err)
	}
	c.ProfileSealed = sealed
	return nil
}

// index computes c's blind indexes.
func (r *Contacts) index(ctx context.Context, c *Contact) error {
	index := func(value, field string) (string, error) {
		if value == "" {
			return "", nil
		}
		idx, err := r.s.vault.Index(ctx, value, field)
		if err != nil {
			return "", fmt.Errorf("crm: seal contact %s: %w", field, err)
		}
		return idx, nil
	}
	var err error
	if c.EmailIndex, err = index(c.Email, indexEmail); err != nil {
		return err
	}
	if c.PhoneIndex, err = index(c.Phone, indexPhone); err != nil {
		return err
	}
	c.BirthIndex = ""
	if c.Birthday.Month != 0 {
		if c.BirthIndex, err = index(birthIndexValue(c.Birthday.Month, c.Birthday.Day), indexBirthday); err != nil {
			return err
		}
	}
	c.tagIndexes = make([]string, len(c.Tags))
	for i, t := range c.Tags {
		if c.tagIndexes[i], err = index(t, indexTag); err != nil {
			return err
		}
	}
	prefixes := namePrefixes(c.FirstName, c.LastName)
	c.nameTokens = make([]string, len(prefixes))
	for i, p := range prefixes {
		if c.nameTokens[i], err = index(p, indexName); err != nil {
			return err
		}
		c.nameTokens[i] = c.nameTokens[i][:nameTokenLen]
	}
	if r.s.db.Dialect().Name() == dialect.PG {
		c.nameIndex = pgNameIndexValue(prefixes, c.nameTokens, pgNameSingles(c.FirstName, c.LastName)) // nameindex_pgcreate2.go
	} else {
		c.nameIndex = nameIndexValue(r.s.db.Dialect().Name(), c.nameTokens)
	}
	return nil
}

// nameIndexValue is the name_index column's value of tokens: a PostgreSQL
// text[] literal (cut blind indexes in base64url need no quoting), or on
// SQLite the words of the FTS5 name index (ftsTokens); "" (NULL) for none.
func nameIndexValue(d dialect.Name, tokens []string) string {
	if len(tokens) == 0 {
		return ""
	}
	if d == dialect.PG {
		return "{" + strings.Join(tokens, ",") + "}"
	}
	return ftsTokens(tokens) // nameindex_sqlite.go
}

// openWith opens c's profile with op (shared by a page) into its
// personal fields; a contact without one reads with them empty.
func (r *Contacts) openWith(op *vault.Opener, c *Contact) error {
	return openProfile(op, c)
}

// openProfile opens c's profile with op into its personal fields.
func openProfile(op *vault.Opener, c *Contact) error {
	if c.ProfileSealed.IsZero() {
		clearProfile(&c.ContactInput)
		return nil
	}
	sec, err := op.Open(c.ProfileSealed, vault.Binding{Record: c.ID, Field: profileField})
	if err != nil {
		return fmt.Errorf("crm: open %s %s %s: %w", kindContact, c.ID, profileField, err)
	}
	err = decodeProfile(sec.Reveal(), &c.ContactInput)
	sec.Wipe()
	if err != nil {
		return fmt.Errorf("crm: open %s %s %s: %w", kindContact, c.ID, profileField, err)
	}
	return nil
}

// Create validates in and stores it as a new contact, with a new ID.
// Stage defaults to lead. A contact that
// fails validation returns a *ValidationError and stores nothing. A
// contact whose e-mail address or phone number another contact of the
// tenant has returns a *DuplicateError naming that contact, and stores
// nothing, unless opts include AllowDuplicate.
func (r *Contacts) Create(ctx context.Context, in ContactInput, opts ...CreateOption) (Contact, error) {
	c := Contact{ContactInput: in}
	c.normalize()
	c.Phone = r.s.normalizePhone(c.Phone) // phone.go
	o := createOptionsOf(opts)            // merge.go
	checkDup := !o.allowDuplicate
	// On PostgreSQL the contact is marked as the holder of its address
	// and number (create_pgclaim.go) unless it may be a duplicate; an
	// import marks its creates too (it checked them under its locks).
	claim := checkDup || o.claim
	if err := r.validate(&c.ContactInput); err != nil {
		return Contact{}, err
	}
	now := r.s.clock()
	c.stamp(now)
	if err := r.seal(ctx, &c); err != nil {
		return Contact{}, err
	}
	err := r.createAttempt(ctx, &c, checkDup, claim)
	for try := 1; try < 4 && errors.Is(err, errClaimTaken) && !claim; try++ {
		// An AllowDuplicate create met a holder that committed after its
		// trigger looked (create_pgclaim.go): the trigger sees it now.
		err = r.createAttempt(ctx, &c, checkDup, claim)
	}
	if errors.Is(err, errClaimTaken) && checkDup {
		// Another contact holds the address or the number: say which.
		orig := err
		err = r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
			if err := r.s.checkDuplicate(ctx, db, &c); err != nil {
				return err
			}
			return orig
		})
	}
	if err != nil {
		return Contact{}, err
	}
	return c, nil
}

// createAttempt stores c, sealed and indexed, once: createOne, or with
// its tags in a transaction.
func (r *Contacts) createAttempt(ctx context.Context, c *Contact, checkDup, claim bool) error {
	var err error
	if len(c.tagIndexes) == 0 {
		err = r.createOne(ctx, c, checkDup, claim)
	} else {
		err = r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			if checkDup {
				if err := r.s.checkDuplicate(ctx, tx, c); err != nil {
					return err
				}
			}
			if err := mustExist(ctx, tx, (*Company)(nil), kindContact, "company_id", c.CompanyID); err != nil {
				return err
			}
			// Checked above, in this transaction; the company's check runs
			// again in the statement, and on PostgreSQL the holders'
			// index (create_pgclaim.go) sees a create that took no lock.
			n, err := r.insertChecked(ctx, tx, c, claim, false)
			if err != nil {
				return err
			}
			if n != 1 {
				if err := mustExist(ctx, tx, (*Company)(nil), kindContact, "company_id", c.CompanyID); err != nil {
					return err
				}
				return fmt.Errorf("crm: create contact: %w", errors.New("not inserted, and no check says why"))
			}
			return r.writeTags(ctx, tx, c, false)
		})
	}
	return err
}

// inTx reports whether db is a transaction (a Store from Store.Using(tx)).
func inTx(db bun.IDB) bool {
	switch db.(type) {
	case bun.Tx, *bun.Tx:
		return true
	}
	return false
}

// createOne inserts c, with its name index and after the checks of
// Create, in one statement: INSERT … SELECT with the duplicate and company
// checks as its WHERE clause. The name index travels in the row's
// name_index column, from which a trigger writes TableContactNames' rows.
//
// On SQLite one statement needs no explicit transaction: no statement
// journal, BEGIN or COMMIT; SQLite runs one write at a time, so the check
// and the insert cannot interleave with another write. It runs as a
// statement each connection prepares once, its values bound
// (sqldb.PreparedLiterals), after the Guard has checked it as bun wrote
// it: parsing and compiling it (and the name index's trigger) anew cost
// about an eighth of the create, measured as the create's ratio to a raw
// bun insert falling from 2.62 to 2.27 (medians of 6 alternated runs). On
// PostgreSQL the duplicate check is the unique index of the holders of
// each e-mail address and phone number (create_pgclaim.go): the statement
// marks c as the holder of its own (claim) and fails on the index when
// another contact holds either, waiting first for a create of the same
// address that has not committed; Create then looks the holder up to name
// it. Through socialcrm.OpenDB it travels in one round trip with the
// tenant setting when the connection does not hold it already. In a
// caller's transaction (Store.Using) the statement calls
// socialcrm_crm_contact_unclaimed first (migrateUnclaimedPG: advisory
// locks, then the look-ups), so that a duplicate inserts nothing rather
// than failing unless it raced a create that had not committed; the locks
// are held until that transaction ends.
//
// When nothing was inserted, the checks are run again, alone, to say why.
func (r *Contacts) createOne(ctx context.Context, c *Contact, checkDup, claim bool) error {
	return r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
		lookup := checkDup
		if db.Dialect().Name() == dialect.PG && !inTx(r.s.db) {
			lookup = false
		}
		n, err := r.insertChecked(ctx, db, c, claim, lookup)
		if err != nil || n == 1 {
			return err
		}
		if err := mustExist(ctx, db, (*Company)(nil), kindContact, "company_id", c.CompanyID); err != nil {
			return err
		}
		if err := r.s.checkDuplicate(ctx, db, c); err != nil {
			return err
		}
		return fmt.Errorf("crm: create contact: %w", errors.New("not inserted, and no check says why"))
	})
}

// insertChecked runs createOne's statement on db and returns the number of
// contacts it inserted: 1, or 0 when a check failed. checkDup looks the
// duplicates up; claim (PostgreSQL) marks c as the holder of its
// identifiers (insertStatementPG).
func (r *Contacts) insertChecked(ctx context.Context, db bun.IDB, c *Contact, claim, checkDup bool) (int64, error) {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return 0, err
	}
	c.TenantID = tid
	if db.Dialect().Name() == dialect.PG {
		return execInsertPG(ctx, db, c, claim, checkDup) // create_pg.go
	}
	t := db.Dialect().Tables().Get(reflect.TypeFor[Contact]())
	vals := rowValues{fields: t.Fields, v: reflect.ValueOf(c).Elem(), casts: db.Dialect().Name() == dialect.PG}
	pg := db.Dialect().Name() == dialect.PG
	nameIndex := "?"
	if pg {
		nameIndex = "?::text[]"
	}
	q := "INSERT INTO ? (?, name_index) SELECT ?, " + nameIndex
	args := []any{bun.Ident(TableContacts), columnList(t.Fields), vals, nullIfEmpty(c.nameIndex)}
	var conds []string
	exists := func(neg string, sub *bun.SelectQuery) {
		conds = append(conds, neg+"EXISTS (?)")
		args = append(args, sub.ColumnExpr("1").Apply(tenancy.Scope(ctx)))
	}
	if checkDup {
		for _, f := range [][2]string{{"email_index", c.EmailIndex}, {"phone_index", c.PhoneIndex}} {
			if f[1] != "" {
				exists("NOT ", db.NewSelect().Model((*Contact)(nil)).Where("?TableAlias.? = ?", bun.Ident(f[0]), f[1]))
			}
		}
	}
	if c.CompanyID != "" {
		exists("", db.NewSelect().Model((*Company)(nil)).Where("?TableAlias.id = ?", c.CompanyID))
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	if !pg {
		// Every literal of the statement is a value: run it prepared once
		// per connection (internal/sqldb).
		ctx = sqldb.PreparedLiterals(ctx)
	}
	res, err := db.NewRaw(q, args...).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("crm: create contact: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("crm: create contact: %w", err)
	}
	return n, nil
}

// columnList appends the names of fields, comma-separated.
type columnList []*schema.Field

func (l columnList) AppendQuery(_ schema.QueryGen, b []byte) ([]byte, error) {
	for i, f := range l {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, f.SQLName...)
	}
	return b, nil
}

// rowValues appends the values of fields in the struct v, comma-separated,
// as bun's INSERT writes them. With casts (PostgreSQL), each text, time
// and sealed value but tenant_id is cast to its column's type: in a
// SELECT list, unlike in VALUES, nothing else gives the server the type,
// and a cast literal is sent as a parameter (internal/sqldb), so that the
// statement's text, prepared once per connection, does not change with
// the values. tenant_id stays a plain literal, which the Guard checks.
type rowValues struct {
	fields []*schema.Field
	v      reflect.Value
	casts  bool
}

func (r rowValues) AppendQuery(gen schema.QueryGen, b []byte) ([]byte, error) {
	for i, f := range r.fields {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = f.AppendValue(gen, b, r.v)
		if r.casts && f.Name != "tenant_id" {
			switch t := f.IndirectType; {
			case t == reflect.TypeFor[time.Time]():
				b = append(b, "::timestamptz"...)
			case t == reflect.TypeFor[vault.Sealed]():
				b = append(b, "::bytea"...)
			case t.Kind() == reflect.String:
				b = append(b, "::text"...)
			}
		}
	}
	return b, nil
}

// writeTags replaces the tag index rows of c.
func (r *Contacts) writeTags(ctx context.Context, tx bun.IDB, c *Contact, replace bool) error {
	if replace {
		if _, err := tx.NewDelete().Model((*contactTag)(nil)).Where("?TableAlias.contact_id = ?", c.ID).Exec(ctx); err != nil {
			return fmt.Errorf("crm: write contact tags: %w", err)
		}
	}
	if len(c.tagIndexes) == 0 {
		return nil
	}
	rows := make([]contactTag, len(c.tagIndexes))
	for i, t := range c.tagIndexes {
		rows[i] = contactTag{ContactID: c.ID, TagIndex: t}
		rows[i].stamp(c.UpdatedAt)
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("crm: write contact tags: %w", err)
	}
	return nil
}

// Get returns contact id, with its e-mail address and phone number opened.
func (r *Contacts) Get(ctx context.Context, id string) (Contact, error) {
	var c Contact
	if err := checkText(kindContact, "id", id); err != nil { // validate_values.go
		return c, err
	}
	err := r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
		found := false
		tid, err := tenancy.TenantID(ctx)
		if err == nil {
			found, err = readContact(ctx, db, id, tid, &c)
		}
		if err != nil {
			return fmt.Errorf("crm: get %s: %w", kindContact, err)
		}
		if !found {
			return notFound(kindContact, id)
		}
		return nil
	})
	if err != nil {
		return Contact{}, err
	}
	op := r.s.vault.Opener(ctx)
	if err := r.openWith(&op, &c); err != nil {
		return Contact{}, err
	}
	return c, nil
}

// contactColumns are the columns a read of contacts selects, in the order
// scanContacts scans them, as one column expression (one append to the
// query instead of one per column). tenant_id is not read: the query is
// confined to the context's tenant, which scanContacts sets. Nor are the
// blind indexes: three 43-byte keyed hashes per row, which nothing that
// reads a contact needs, cost a page of 100 on PostgreSQL about a sixth
// of the time of a raw query of the same rows.
var contactColumns = func() string {
	cols := []string{"id", "created_at", "updated_at", "version", "stage", "source", "company_id", "owner_id",
		"profile_sealed"}
	for i, c := range cols {
		cols[i] = `"ct"."` + c + `"`
	}
	return strings.Join(cols, ", ")
}()

// getContactQuery is Get's statement, written once rather than built by
// bun's SelectQuery on every call: the same text bun builds for
// NewSelect().Model((*Contact)(nil)).ColumnExpr(contactColumns).Where(id)
// with tenancy.Scope — confined to the tenant by a literal that the Guard
// checks against the context's, row-level security binding it on
// PostgreSQL — without the query builder, which was a fifth of what the
// SDK's client side added to one raw pgx query of the row (CPU profile of
// BenchmarkPostgresContactGet).
var getContactQuery = "SELECT " + contactColumns + ` FROM "` + TableContacts + `" AS "ct" WHERE ("ct".id = ?) AND ("ct".tenant_id = ?)`

// readContact reads contact id of tenant tid into c with Get's statement
// and reports whether there is one. bun formats the statement: its hooks
// see getContactQuery with its placeholders, not the values, so that
// what they record (a span's statement) names no contact and no tenant
// (TestTelemetryCarriesNoPersonalData).
func readContact(ctx context.Context, db bun.IDB, id, tid string, c *Contact) (bool, error) {
	found := false
	next := func() *Contact {
		found = true
		return c
	}
	rows, err := db.QueryContext(sqldb.ReadRows(ctx, readContactRows(tid, next)), getContactQuery, id, tid)
	if err == nil {
		err = scanContactRows(rows, tid, next)
	}
	return found, err
}

// scanContacts runs q, a select of contacts with its conditions, order
// and limit set, confined to the context's tenant (tenancy.Scope: Rows
// runs no model hooks, and the Guard refuses it unscoped), and scans each
// row into the contact next returns (scanContactRows).
func scanContacts(ctx context.Context, q *bun.SelectQuery, next func() *Contact) error {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	rows, err := q.ColumnExpr(contactColumns).Apply(tenancy.Scope(ctx)).Rows(sqldb.ReadRows(ctx, readContactRows(tid, next)))
	if err != nil {
		return err
	}
	return scanContactRows(rows, tid, next)
}

// readContactRows returns the reader (sqldb.ReadRows) of contacts of
// tenant tid selected as contactColumns: it scans each row, straight from
// the driver, into the contact next returns, as scanContactRows does
// through database/sql. On PostgreSQL through internal/sqldb the rows
// reach the reader and database/sql returns none; on any other handle
// database/sql returns them to scanContactRows and the reader never runs.
func readContactRows(tid string, next func() *Contact) func(sqldb.Rows) error {
	return func(rows sqldb.Rows) error {
		dest := make([]any, 9)
		for rows.Next() {
			c := next()
			c.TenantID = tid
			dest[0], dest[1], dest[2], dest[3] = textCol{&c.ID}, &c.CreatedAt, &c.UpdatedAt, &c.Version
			dest[4], dest[5], dest[6], dest[7] = textCol{(*string)(&c.Stage)}, textCol{&c.Source}, textCol{&c.CompanyID}, textCol{&c.OwnerID}
			dest[8] = sealedCol{&c.ProfileSealed}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
		}
		return nil
	}
}

// scanContactRows scans each row of rows, contacts of tenant tid selected
// as contactColumns, into the contact next returns, and closes rows.
// Contacts are read by hand rather than by bun's Scan: bun's reflection
// per column cost more than the query on a page.
func scanContactRows(rows *sql.Rows, tid string, next func() *Contact) error {
	defer rows.Close()
	for rows.Next() {
		c := next()
		c.TenantID = tid
		if err := rows.Scan(textCol{&c.ID}, timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, &c.Version,
			textCol{(*string)(&c.Stage)}, textCol{&c.Source}, textCol{&c.CompanyID}, textCol{&c.OwnerID},
			&c.ProfileSealed); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// Update validates in and writes it over the stored contact id, if the
// stored version is still version (else a *ConflictError; re-read and
// reapply). Source and UTM keep their stored values. It returns the
// contact as stored, with its new Version. A failed update changes
// nothing.
func (r *Contacts) Update(ctx context.Context, id string, version int64, in ContactInput) (Contact, error) {
	c := Contact{Record: Record{ID: id, Version: version}, ContactInput: in}
	c.normalize()
	c.Phone = r.s.normalizePhone(c.Phone) // phone.go
	if err := joinInvalid(kindContact, r.validate(&c.ContactInput), checkID(kindContact, id), checkVersion(kindContact, version)); err != nil {
		return Contact{}, err
	}
	// The blind indexes and the tenant's keys outside the transaction;
	// the profile is sealed inside it, with the stored UTM values.
	if err := r.index(ctx, &c); err != nil {
		return Contact{}, err
	}
	if err := r.s.ensureKeys(ctx); err != nil {
		return Contact{}, err
	}
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		cur, err := get[Contact](ctx, tx, kindContact, c.ID)
		if err != nil {
			return err
		}
		if err := mustExist(ctx, tx, (*Company)(nil), kindContact, "company_id", c.CompanyID); err != nil {
			return err
		}
		// Source and UTM keep their stored values.
		op := r.s.vault.Opener(ctx)
		if err := openProfile(&op, &cur); err != nil {
			return err
		}
		c.Source, c.UTM, c.CreatedAt = cur.Source, cur.UTM, cur.CreatedAt
		if err := r.s.sealProfile(ctx, &c); err != nil {
			return err
		}
		if err := updateRow(ctx, tx, r.s.clock(), kindContact, &c); err != nil {
			return err
		}
		// The name index follows the name (by trigger).
		if _, err := tx.NewUpdate().Model((*Contact)(nil)).Set("name_index = ?", nullIfEmpty(c.nameIndex)).
			Where("?TableAlias.id = ?", c.ID).Exec(ctx); err != nil {
			return fmt.Errorf("crm: update contact: %w", err)
		}
		if err := r.writeTags(ctx, tx, &c, true); err != nil {
			return err
		}
		// Appended after the transaction's rows (auditLast).
		return r.s.audit(ctx, tx, kindContact, "updated", c.ID)
	})
	if err != nil {
		return Contact{}, err
	}
	return c, nil
}

// Delete removes contact id, its name index (by trigger), its tag index
// and the records of the contacts merged into it (Merge). Records that
// refer to the
// contact keep their contact_id; erase a data subject through retention
// instead, which reaches every record kind. On SQLite, once the delete
// has committed, the write-ahead log is cut (a TRUNCATE checkpoint, as
// after an erasure), so that the deleted row's sealed profile and blind
// indexes do not linger on disk; a Store bound to the caller's
// transaction (Store.Using) leaves that cut to the caller.
func (r *Contacts) Delete(ctx context.Context, id string) error {
	var gone []string
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*Contact)(nil)).Where("?TableAlias.id = ?", id).Exec(ctx)
		if err != nil {
			return fmt.Errorf("crm: delete contact: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(kindContact, id)
		}
		if _, err := tx.NewDelete().Model((*contactTag)(nil)).Where("?TableAlias.contact_id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("crm: delete contact: %w", err)
		}
		if err := deleteMergesInto(ctx, tx, id); err != nil { // merge.go
			return err
		}
		if gone, err = r.s.deleteDependents(ctx, tx, kindContact, []string{id}); err != nil { // files and custom fields (commerce.go)
			return err
		}
		return r.s.audit(ctx, tx, kindContact, "deleted", id)
	})
	if err != nil {
		return err
	}
	if err := r.s.dropBytes(ctx, gone); err != nil {
		return err
	}
	// The deleted row's sealed profile and blind indexes leave SQLite's
	// write-ahead log too, as after an erasure (Store.cutLog).
	if err := r.s.cutLog(ctx); err != nil {
		return fmt.Errorf("crm: delete contact: committed, but %w", err)
	}
	return nil
}

// List returns a page of the contacts matching f, oldest first, with their
// e-mail addresses and phone numbers opened.
func (r *Contacts) List(ctx context.Context, f ContactFilter, o ListOptions) (Page[Contact], error) {
	return r.list(ctx, f, o, nil)
}

// list is List with extra conditions added by more (if set).
func (r *Contacts) list(ctx context.Context, f ContactFilter, o ListOptions, more func(ctx context.Context, q *bun.SelectQuery) *bun.SelectQuery) (Page[Contact], error) {
	if err := r.s.check(kindContact, f); err != nil {
		return Page[Contact]{}, err
	}
	var emailIdx, tagIdx string
	var phoneIdx []string
	var err error
	index := func(value, field string) (string, error) {
		if value == "" {
			return "", nil
		}
		idx, err := r.s.vault.Index(ctx, value, field)
		if err != nil {
			return "", fmt.Errorf("crm: list contacts: %w", err)
		}
		return idx, nil
	}
	if emailIdx, err = index(normalizeEmail(f.Email), indexEmail); err != nil {
		return Page[Contact]{}, err
	}
	if f.Phone != "" {
		if phoneIdx, err = r.s.phoneIndexes(ctx, f.Phone); err != nil { // any format (phone.go)
			return Page[Contact]{}, fmt.Errorf("crm: list contacts: %w", err)
		}
	}
	if tagIdx, err = index(strings.TrimSpace(f.Tag), indexTag); err != nil {
		return Page[Contact]{}, err
	}
	words := queryWords(f.NamePrefix)
	nameIdx := make([]string, len(words))
	// On PostgreSQL, the tokens looked up for each word, and the word's own
	// token where that is a shorter prefix's (nameindex_pgcreate2.go).
	var nameKeys [][]string
	var nameOwn []string
	pgNames := r.s.db.Dialect().Name() == dialect.PG
	for i, w := range words {
		if nameIdx[i], err = index(w, indexName); err != nil {
			return Page[Contact]{}, err
		}
		nameIdx[i] = nameIdx[i][:nameTokenLen]
		if !pgNames {
			nameKeys = append(nameKeys, nameIdx[i:i+1])
			continue
		}
		if utf8.RuneCountInString(w) == 1 {
			// Its own token and those of its two-character prefixes.
			keys := pgNameShortKeys(w)
			toks := make([]string, len(keys))
			toks[0] = nameIdx[i]
			for j := 1; j < len(keys); j++ {
				k, err := index(keys[j], indexName)
				if err != nil {
					return Page[Contact]{}, err
				}
				toks[j] = k[:nameTokenLen]
			}
			nameKeys = append(nameKeys, toks)
			continue
		}
		key, exact := pgNameLookup(w)
		if exact {
			nameKeys = append(nameKeys, nameIdx[i:i+1])
			continue
		}
		k, err := index(key, indexName)
		if err != nil {
			return Page[Contact]{}, err
		}
		nameKeys = append(nameKeys, []string{k[:nameTokenLen]})
		nameOwn = append(nameOwn, nameIdx[i])
	}
	var p Page[Contact]
	err = r.s.one(ctx, func(ctx context.Context, tx bun.IDB) error {
		var cs []Contact
		q := tx.NewSelect().Model((*Contact)(nil))
		if f.Stage != "" {
			q = q.Where("?TableAlias.stage = ?", f.Stage)
		}
		if f.OwnerID != "" {
			q = q.Where("?TableAlias.owner_id = ?", f.OwnerID)
		}
		if !f.UpdatedSince.IsZero() {
			q = q.Where("?TableAlias.updated_at >= ?", f.UpdatedSince.UTC())
		}
		if emailIdx != "" {
			q = q.Where("?TableAlias.email_index = ?", emailIdx)
		}
		if len(phoneIdx) > 0 {
			q = q.Where("?TableAlias.phone_index IN (?)", bun.In(phoneIdx))
		}
		if tagIdx != "" {
			// Subqueries run no model hooks: scope this one by hand.
			tagged := tx.NewSelect().Model((*contactTag)(nil)).Column("ctt.contact_id").
				Where("ctt.tag_index = ?", tagIdx).Apply(tenancy.Scope(ctx))
			q = q.Where("ct.id IN (?)", tagged) // ?TableAlias here would take the subquery's alias
		}
		// The name index table's b-tree, by equality: a GIN index of the
		// rows' arrays would be cheaper to write, but PostgreSQL never uses
		// it under row-level security (no GIN operator is leakproof).
		// On SQLite, one look-up of the FTS5 name index (nameindex_sqlite.go).
		named := nameKeys
		if len(nameIdx) > 0 && tx.Dialect().Name() == dialect.SQLite {
			q, named = nameMatchSQLite(q, nameIdx), nil
		}
		for _, toks := range named {
			named := tx.NewSelect().Model((*contactName)(nil)).Column("ctn.contact_id")
			if len(toks) == 1 {
				named = named.Where("ctn.token = ?", toks[0])
			} else {
				named = named.Where("ctn.token IN (?)", bun.In(toks))
			}
			q = q.Where("ct.id IN (?)", named.Apply(tenancy.Scope(ctx)))
		}
		for _, idx := range nameOwn {
			// A filter of the candidates, after the look-ups: the array's
			// operators serve no index under row-level security.
			q = q.Where("?::text = ANY(ct.name_index)", idx)
		}
		if more != nil {
			q = more(ctx, q)
		}
		q, err := contactOrder.apply(q, kindContact, o)
		if err != nil {
			return err
		}
		cs = make([]Contact, 0, o.limit()+1)
		err = scanContacts(ctx, q, func() *Contact {
			cs = append(cs, Contact{})
			return &cs[len(cs)-1]
		})
		if err != nil {
			return fmt.Errorf("crm: list contacts: %w", err)
		}
		p, err = page(contactOrder, o, cs, func(c *Contact) []any { return []any{c.ID} })
		return err
	})
	if err != nil {
		return Page[Contact]{}, err
	}
	op := r.s.vault.Opener(ctx)
	for i := range p.Items {
		if err := r.openWith(&op, &p.Items[i]); err != nil {
			return Page[Contact]{}, err
		}
	}
	return p, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
