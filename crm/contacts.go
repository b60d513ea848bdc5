package crm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

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

// Contact is a person the tenant deals with. Email and Phone are stored
// only sealed by the vault (bound to the tenant, the contact and the
// field), beside a blind index that finds them by exact match; the other
// fields are stored as they are.
type Contact struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contacts,alias:ct"`
	Record

	FirstName string `bun:"first_name,notnull" json:"first_name" validate:"max=100"`
	LastName  string `bun:"last_name,notnull" json:"last_name" validate:"max=100"`
	// Email and Phone are the plaintext, never stored as such. Email is
	// stored trimmed and lower-cased; Phone must be in E.164 form.
	Email string `bun:"-" json:"email,omitempty" validate:"omitempty,email,max=254"`
	Phone string `bun:"-" json:"phone,omitempty" validate:"omitempty,e164"`

	Stage Stage `bun:"stage,notnull" json:"stage" validate:"omitempty,oneof=lead qualified opportunity customer inactive"`
	// Source says where the contact came from ("website", "instagram",
	// "import", "referral"…). Source and UTM are captured on creation and
	// kept as they were: Update does not change them.
	Source string `bun:"source,notnull" json:"source,omitempty" validate:"max=100"`
	UTM    UTM    `bun:"embed:utm_" json:"utm,omitzero"`
	// Birthday drives birthday greetings (with consent; see Scheduler).
	Birthday Birthday `bun:"embed:birth_" json:"birthday,omitzero"`
	// Preferences are free key/value settings (language, sizes, …).
	Preferences map[string]string `bun:"preferences,type:text,notnull" json:"preferences,omitempty" validate:"max=50,dive,keys,min=1,max=64,endkeys,max=1000"`
	// CompanyID links the contact to the company it works for.
	CompanyID string `bun:"company_id,nullzero" json:"company_id,omitempty"`
	// OwnerID is the id of the member responsible for the contact.
	OwnerID string `bun:"owner_id,nullzero" json:"owner_id,omitempty" validate:"omitempty,uuid"`
	// Tags label the contact; each is trimmed, at most 50 bytes, and kept
	// once, in order of first appearance.
	Tags []string `bun:"tags,type:text,notnull" json:"tags" validate:"max=50,dive,required,max=50"`

	EmailSealed vault.Sealed `bun:"email_sealed" json:"-"`
	EmailIndex  string       `bun:"email_index,nullzero" json:"-"`
	PhoneSealed vault.Sealed `bun:"phone_sealed" json:"-"`
	PhoneIndex  string       `bun:"phone_index,nullzero" json:"-"`
	NameFold    string       `bun:"name_fold,notnull" json:"-"`
	LastFold    string       `bun:"last_fold,notnull" json:"-"`
}

// contactTag indexes a contact's tags for filtering.
type contactTag struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contact_tags,alias:ctt"`
	Record
	ContactID string `bun:"contact_id,notnull"`
	Tag       string `bun:"tag,notnull"`
}

// ContactFilter narrows Contacts.List. The zero value lists every contact;
// set fields combine with AND.
type ContactFilter struct {
	Stage   Stage  `json:"stage,omitempty" validate:"omitempty,oneof=lead qualified opportunity customer inactive"`
	OwnerID string `json:"owner_id,omitempty" validate:"omitempty,max=64"`
	Tag     string `json:"tag,omitempty" validate:"max=50"`
	// UpdatedSince keeps contacts updated at or after it.
	UpdatedSince time.Time `json:"updated_since,omitzero"`
	// NamePrefix keeps contacts whose full name ("first last") or last
	// name starts with it, ignoring case.
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

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normalize trims and folds the contact's input fields.
func (c *Contact) normalize() {
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
	c.NameFold = fold(c.FirstName + " " + c.LastName)
	c.LastFold = fold(c.LastName)
}

// validate checks a normalized contact.
func (r *Contacts) validate(c *Contact) error {
	err := r.s.check(kindContact, c)
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

// seal computes the sealed values and blind indexes of c's email and
// phone. It runs outside the write transaction: a tenant's first seal
// creates its keys (see the vault's Concurrency section).
func (r *Contacts) seal(ctx context.Context, c *Contact) error {
	seal := func(value, field string, sealed *vault.Sealed, index *string) error {
		if value == "" {
			*sealed, *index = vault.Sealed{}, ""
			return nil
		}
		var err error
		if *index, err = r.s.vault.Index(ctx, value, field); err != nil {
			return fmt.Errorf("crm: seal contact %s: %w", field, err)
		}
		if *sealed, err = r.s.vault.Seal(ctx, []byte(value), vault.Binding{Record: c.ID, Field: field}); err != nil {
			return fmt.Errorf("crm: seal contact %s: %w", field, err)
		}
		return nil
	}
	if err := seal(c.Email, "email", &c.EmailSealed, &c.EmailIndex); err != nil {
		return err
	}
	return seal(c.Phone, "phone", &c.PhoneSealed, &c.PhoneIndex)
}

// open fills c's Email and Phone from their sealed values.
func (r *Contacts) open(ctx context.Context, c *Contact) error {
	open := func(s vault.Sealed, field string, dst *string) error {
		if s.IsZero() {
			*dst = ""
			return nil
		}
		sec, err := r.s.vault.Open(ctx, s, vault.Binding{Record: c.ID, Field: field})
		if err != nil {
			return fmt.Errorf("crm: open contact %s %s: %w", c.ID, field, err)
		}
		*dst = string(sec.Reveal())
		return nil
	}
	if err := open(c.EmailSealed, "email", &c.Email); err != nil {
		return err
	}
	return open(c.PhoneSealed, "phone", &c.Phone)
}

// Create validates c and stores it as a new contact, with a new ID; the
// fields of its Record are ignored. Stage defaults to lead. A contact that
// fails validation returns a *ValidationError and stores nothing. A
// contact whose e-mail address or phone number another contact of the
// tenant has returns a *DuplicateError naming that contact, and stores
// nothing, unless opts include AllowDuplicate.
func (r *Contacts) Create(ctx context.Context, c Contact, opts ...CreateOption) (Contact, error) {
	c.Record = Record{}
	c.normalize()
	c.Phone = r.s.normalizePhone(c.Phone)             // phone.go
	checkDup := !createOptionsOf(opts).allowDuplicate // merge.go
	if err := r.validate(&c); err != nil {
		return Contact{}, err
	}
	now := r.s.clock()
	c.stamp(now)
	if err := r.seal(ctx, &c); err != nil {
		return Contact{}, err
	}
	insert := func(ctx context.Context, db bun.IDB) error {
		if _, err := db.NewInsert().Model(&c).Exec(ctx); err != nil {
			return fmt.Errorf("crm: create contact: %w", err)
		}
		return nil
	}
	var err error
	if len(c.Tags) == 0 && c.CompanyID == "" && (!checkDup || c.EmailIndex == "" && c.PhoneIndex == "") {
		// The common case is one INSERT: no transaction needed.
		err = r.s.one(ctx, insert)
	} else {
		err = r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			if checkDup {
				if err := r.s.checkDuplicate(ctx, tx, &c); err != nil {
					return err
				}
			}
			if err := mustExist(ctx, tx, (*Company)(nil), kindContact, "company_id", c.CompanyID); err != nil {
				return err
			}
			if err := insert(ctx, tx); err != nil {
				return err
			}
			return r.writeTags(ctx, tx, &c, false)
		})
	}
	if err != nil {
		return Contact{}, err
	}
	return c, nil
}

// writeTags replaces the tag index rows of c.
func (r *Contacts) writeTags(ctx context.Context, tx bun.IDB, c *Contact, replace bool) error {
	if replace {
		if _, err := tx.NewDelete().Model((*contactTag)(nil)).Where("?TableAlias.contact_id = ?", c.ID).Exec(ctx); err != nil {
			return fmt.Errorf("crm: write contact tags: %w", err)
		}
	}
	if len(c.Tags) == 0 {
		return nil
	}
	rows := make([]contactTag, len(c.Tags))
	for i, t := range c.Tags {
		rows[i] = contactTag{ContactID: c.ID, Tag: t}
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
	err := r.s.one(ctx, func(ctx context.Context, tx bun.IDB) error {
		var err error
		c, err = get[Contact](ctx, tx, kindContact, id)
		return err
	})
	if err != nil {
		return Contact{}, err
	}
	if err := r.open(ctx, &c); err != nil {
		return Contact{}, err
	}
	return c, nil
}

// Update validates c and writes it over the stored contact c.ID, if the
// stored Version is still c.Version (else a *ConflictError; re-read and
// reapply). Source, UTM and CreatedAt keep their stored values. It returns
// the contact as stored, with its new Version. A failed update changes
// nothing.
func (r *Contacts) Update(ctx context.Context, c Contact) (Contact, error) {
	c.normalize()
	c.Phone = r.s.normalizePhone(c.Phone) // phone.go
	if err := r.validate(&c); err != nil {
		return Contact{}, err
	}
	if c.ID == "" {
		return Contact{}, invalid(kindContact, "id", "required", "is required")
	}
	if err := r.seal(ctx, &c); err != nil {
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
		c.Source, c.UTM, c.CreatedAt = cur.Source, cur.UTM, cur.CreatedAt
		if err := update(ctx, tx, r.s.clock(), kindContact, &c); err != nil {
			return err
		}
		if !slices.Equal(c.Tags, cur.Tags) {
			return r.writeTags(ctx, tx, &c, true)
		}
		return nil
	})
	if err != nil {
		return Contact{}, err
	}
	return c, nil
}

// Delete removes contact id and its tag index. Records that refer to the
// contact keep their contact_id; erase a data subject through retention
// instead, which reaches every record kind.
func (r *Contacts) Delete(ctx context.Context, id string) error {
	return r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
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
		return r.s.deleteDependents(ctx, tx, kindContact, []string{id}) // files and custom fields (commerce.go)
	})
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
	var emailIdx string
	var phoneIdx []string
	var err error
	if f.Email != "" {
		if emailIdx, err = r.s.vault.Index(ctx, normalizeEmail(f.Email), "email"); err != nil {
			return Page[Contact]{}, fmt.Errorf("crm: list contacts: %w", err)
		}
	}
	if f.Phone != "" {
		if phoneIdx, err = r.s.phoneIndexes(ctx, f.Phone); err != nil { // any format (phone.go)
			return Page[Contact]{}, fmt.Errorf("crm: list contacts: %w", err)
		}
	}
	var p Page[Contact]
	err = r.s.one(ctx, func(ctx context.Context, tx bun.IDB) error {
		var cs []Contact
		q := tx.NewSelect().Model(&cs)
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
		if f.Tag != "" {
			// Subqueries run no model hooks: scope this one by hand.
			tagged := tx.NewSelect().Model((*contactTag)(nil)).Column("ctt.contact_id").
				Where("ctt.tag = ?", strings.TrimSpace(f.Tag)).Apply(tenancy.Scope(ctx))
			q = q.Where("ct.id IN (?)", tagged) // ?TableAlias here would take the subquery's alias
		}
		if p := fold(f.NamePrefix); p != "" {
			like := escapeLike(p) + "%"
			q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where(`?TableAlias.name_fold LIKE ? ESCAPE '\'`, like).WhereOr(`?TableAlias.last_fold LIKE ? ESCAPE '\'`, like)
			})
		}
		if more != nil {
			q = more(ctx, q)
		}
		q, err := contactOrder.apply(q, kindContact, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("crm: list contacts: %w", err)
		}
		p, err = page(contactOrder, o, cs, func(c *Contact) []any { return []any{c.ID} })
		return err
	})
	if err != nil {
		return Page[Contact]{}, err
	}
	for i := range p.Items {
		if err := r.open(ctx, &p.Items[i]); err != nil {
			return Page[Contact]{}, err
		}
	}
	return p, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
