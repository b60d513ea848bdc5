package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// FieldType is the type of a custom field's values.
type FieldType string

// Custom field types and the Go values that carry them: text is a string,
// number a float64 (finite), date a time.Time (the day, at midnight UTC;
// a "2006-01-02" string is accepted), bool a bool, select a string that is
// one of the definition's Options.
const (
	FieldText   FieldType = "text"
	FieldNumber FieldType = "number"
	FieldDate   FieldType = "date"
	FieldBool   FieldType = "bool"
	FieldSelect FieldType = "select"
)

// FieldDef defines a custom field of one record kind.
type FieldDef struct {
	bun.BaseModel `bun:"table:socialcrm_crm_field_defs,alias:fd"`
	Record
	FieldDefInput
}

// FieldDefInput is what Define takes.
type FieldDefInput struct {
	// RecordKind is the kind of record the field belongs to ("contact",
	// "campaign", "invoice"…): one of RecordKinds.
	RecordKind string `bun:"record_kind,notnull" json:"record_kind" validate:"required,max=40"`
	// Name is the field's key: lower-case letters, digits and '_', starting
	// with a letter, unique per record kind.
	Name  string    `bun:"name,notnull" json:"name" validate:"required,max=64"`
	Label string    `bun:"label,notnull" json:"label" validate:"max=200"`
	Type  FieldType `bun:"type,notnull" json:"type" validate:"required,oneof=text number date bool select"`
	// Options are the allowed values of a select field (required for,
	// and only for, select).
	Options []string `bun:"options" json:"options,omitempty" validate:"max=200,dive,required,max=200"`
	// Required fields must have a value once any value of the record is
	// set.
	Required bool `bun:"required,notnull" json:"required"`
}

// fieldValue is one stored custom field value of one record.
type fieldValue struct {
	bun.BaseModel `bun:"table:socialcrm_crm_field_values,alias:fv"`
	tenancy.Owned
	ID         string `bun:"id,pk"`
	RecordKind string `bun:"record_kind,notnull"`
	RecordID   string `bun:"record_id,notnull"`
	FieldID    string `bun:"field_id,notnull"`
	// Value is sealed: a custom value may hold anything about a person.
	Value       string       `bun:"-"`
	ValueSealed vault.Sealed `bun:"value_sealed"`
	UpdatedAt   time.Time    `bun:"updated_at,notnull"`
}

func (v *fieldValue) sealedFields() []sealedField {
	return []sealedField{{name: "value", sealed: &v.ValueSealed, text: &v.Value}}
}

// Fields is the repository of custom field definitions and values.
type Fields struct{ s *Store }

// Fields returns the repository of custom fields.
func (s *Store) Fields() *Fields { return &Fields{s} }

var fieldNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// recordTables maps each record kind that custom fields and attachments
// may belong to onto its table.
var recordTables = map[string]string{
	KindClient:   "socialcrm_crm_clients",
	KindCampaign: "socialcrm_crm_campaigns",
	KindProposal: "socialcrm_crm_proposals",
	KindInvoice:  "socialcrm_crm_invoices",
	kindContact:  TableContacts,
	kindCompany:  TableCompanies,
	kindDeal:     TableDeals,
	kindActivity: TableActivities,
	kindTask:     TableTasks,
	kindNote:     TableNotes,
}

// RecordKinds lists the record kinds custom fields and attachments may
// belong to.
func RecordKinds() []string {
	out := make([]string, 0, len(recordTables))
	for k := range recordTables {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// recordExists checks that the record id of kind exists in the context's
// tenant.
func (s *Store) recordExists(ctx context.Context, tx bun.IDB, kind, id string) error {
	table, ok := recordTables[kind]
	if !ok {
		return invalid("record", "record_kind", "oneof", "must be a record kind of crm")
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	ok, err = tx.NewSelect().TableExpr(table+" AS r").Where("r.tenant_id = ?", tid).Where("r.id = ?", id).Exists(ctx)
	if err != nil {
		return fmt.Errorf("crm: look up %s: %w", kind, err)
	}
	if !ok {
		return notFound(kind, id)
	}
	return nil
}

// fieldPerm is the perm of the custom field values of records of kind: on
// the client-shared kinds a client-portal member may read the values of its
// client's records (and write none); other kinds are for the tenant's own
// people only.
func fieldPerm(kind string, write bool) perm {
	return perm{kind: KindField, shared: sharedKind(kind), write: write}
}

// fieldRecord checks that the record id of kind exists and that the
// principal (a) may see it.
func (s *Store) fieldRecord(ctx context.Context, tx bun.IDB, a access, kind, id string) error {
	if sharedKind(kind) {
		return visible(ctx, tx, a, kind, id)
	}
	return s.recordExists(ctx, tx, kind, id)
}

// Define adds a custom field definition. Owners, admins and staff may.
func (f *Fields) Define(ctx context.Context, in FieldDefInput) (FieldDef, error) {
	s := f.s
	if _, err := s.access(ctx, nil, staffOnly(KindField)); err != nil {
		return FieldDef{}, err
	}
	if err := s.check(KindField, in); err != nil {
		return FieldDef{}, err
	}
	switch {
	case recordTables[in.RecordKind] == "":
		return FieldDef{}, invalid(KindField, "record_kind", "oneof", "must be a record kind of crm")
	case !fieldNameRE.MatchString(in.Name):
		return FieldDef{}, invalid(KindField, "name", "name", "must be lower-case letters, digits and _, starting with a letter")
	case (in.Type == FieldSelect) != (len(in.Options) > 0):
		return FieldDef{}, invalid(KindField, "options", "required_if", "are required for, and only for, a select field")
	}
	d := FieldDef{FieldDefInput: in}
	err := s.run(ctx, staffOnly(KindField), func(ctx context.Context, tx bun.Tx, _ access) error {
		if err := insert(ctx, tx, s.clock(), &d); err != nil {
			if dberr.IsUniqueViolation(err) {
				return invalid(KindField, "name", "unique", "is already defined for "+in.RecordKind)
			}
			return fmt.Errorf("crm: define field: %w", err)
		}
		return nil
	})
	if err != nil {
		return FieldDef{}, err
	}
	return d, nil
}

// FieldDefFilter narrows Fields.List; the zero value lists the
// definitions of every record kind.
type FieldDefFilter struct {
	// RecordKind keeps the definitions of one record kind (RecordKinds).
	RecordKind string `json:"record_kind,omitempty" validate:"max=64"`
}

var fieldDefKeys = keyset{name: "fields", cols: []string{"record_kind", "name", "id"}}

// List returns a page of the field definitions matching f, by record kind
// and name.
func (f *Fields) List(ctx context.Context, flt FieldDefFilter, o ListOptions) (Page[FieldDef], error) {
	s := f.s
	if err := s.check(KindField, flt); err != nil {
		return Page[FieldDef]{}, err
	}
	var defs []FieldDef
	err := s.run(ctx, staffOnly(KindField), func(ctx context.Context, tx bun.Tx, _ access) error {
		q := whereEq(tx.NewSelect().Model(&defs), "record_kind", flt.RecordKind)
		q, err := fieldDefKeys.apply(q, KindField, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("crm: list fields: %w", err)
		}
		return nil
	})
	if err != nil {
		return Page[FieldDef]{}, err
	}
	return page(fieldDefKeys, o, defs, func(d *FieldDef) []any { return []any{d.RecordKind, d.Name, d.ID} })
}

func (f *Fields) defs(ctx context.Context, tx bun.IDB, kind string) ([]FieldDef, error) {
	var defs []FieldDef
	if err := tx.NewSelect().Model(&defs).Where("?TableAlias.record_kind = ?", kind).Order("name").Scan(ctx); err != nil {
		return nil, fmt.Errorf("crm: list fields: %w", err)
	}
	return defs, nil
}

// Delete removes a field definition and every value of it.
func (f *Fields) Delete(ctx context.Context, id string) error {
	s := f.s
	return s.run(ctx, staffOnly(KindField), func(ctx context.Context, tx bun.Tx, _ access) error {
		if err := deleteIn[FieldDef](ctx, s, tx, KindField, id); err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model((*fieldValue)(nil)).Where("?TableAlias.field_id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("crm: delete field values: %w", err)
		}
		return nil
	})
}

// Set validates values against the record kind's definitions and stores
// them on the record: a nil value removes the field's value. A name that is
// not defined, a value of the wrong type or not among a select's options,
// and a required field left without a value fail with a *ValidationError
// naming the field ("fields.<name>"); then nothing is written. Set returns
// all of the record's values after the change. The audit log records the
// edit ("crm.<kind>.fields_updated", the record and the fields' names, no
// value).
func (f *Fields) Set(ctx context.Context, kind, recordID string, values map[string]any) (map[string]any, error) {
	s := f.s
	if err := s.ensureKeys(ctx); err != nil {
		return nil, err
	}
	var out map[string]any
	err := s.run(ctx, fieldPerm(kind, true), func(ctx context.Context, tx bun.Tx, a access) error {
		if err := lockRecord(ctx, tx, kind, recordID); err != nil { // repo.go
			return err
		}
		if err := s.fieldRecord(ctx, tx, a, kind, recordID); err != nil {
			return err
		}
		defs, err := f.defs(ctx, tx, kind)
		if err != nil {
			return err
		}
		byName := map[string]FieldDef{}
		for _, d := range defs {
			byName[d.Name] = d
		}
		verr := &ValidationError{Kind: KindField}
		encoded := map[string]*string{}
		for _, name := range sortedNames(values) {
			d, ok := byName[name]
			if !ok {
				verr.Fields = append(verr.Fields, FieldError{Field: "fields." + name, Rule: "defined", Message: "is not a field of " + kind})
				continue
			}
			if values[name] == nil {
				encoded[name] = nil
				continue
			}
			v, ferr := encodeValue(d, values[name])
			if ferr != nil {
				verr.Fields = append(verr.Fields, *ferr)
				continue
			}
			encoded[name] = &v
		}
		current, err := f.read(ctx, tx, kind, recordID)
		if err != nil {
			return err
		}
		for _, d := range defs {
			v, changed := encoded[d.Name]
			_, had := current[d.FieldID()]
			if d.Required && (changed && v == nil || !changed && !had) {
				verr.Fields = append(verr.Fields, FieldError{Field: "fields." + d.Name, Rule: "required", Message: "is required"})
			}
		}
		if len(verr.Fields) > 0 {
			return verr
		}
		now := s.clock()
		for _, name := range sortedNames(values) {
			d := byName[name]
			if _, err := tx.NewDelete().Model((*fieldValue)(nil)).Where("?TableAlias.record_kind = ?", kind).
				Where("?TableAlias.record_id = ?", recordID).Where("?TableAlias.field_id = ?", d.ID).Exec(ctx); err != nil {
				return fmt.Errorf("crm: set field: %w", err)
			}
			if v := encoded[name]; v != nil {
				row := fieldValue{ID: tenancy.NewID(), RecordKind: kind, RecordID: recordID, FieldID: d.ID, Value: *v, UpdatedAt: now}
				if err := s.sealFields(ctx, KindField, row.ID, row.sealedFields()); err != nil {
					return err
				}
				if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
					return fmt.Errorf("crm: set field: %w", err)
				}
			}
		}
		out, err = f.values(ctx, tx, kind, recordID, defs)
		if err != nil {
			return err
		}
		// An edit of the record: the fields' names, never their values.
		return s.writeAudit(ctx, tx, tenancy.AuditEvent{Action: "crm." + kind + ".fields_updated", Target: kind + ":" + recordID,
			Metadata: map[string]string{"fields": strings.Join(sortedNames(values), ",")}})
	})
	return out, err
}

// FieldID returns the definition's id, the key its values are stored by.
func (d FieldDef) FieldID() string { return d.ID }

func sortedNames(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// read returns the stored values of a record by field id.
func (f *Fields) read(ctx context.Context, tx bun.IDB, kind, recordID string) (map[string]string, error) {
	var rows []fieldValue
	if err := tx.NewSelect().Model(&rows).Where("?TableAlias.record_kind = ?", kind).
		Where("?TableAlias.record_id = ?", recordID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("crm: read fields: %w", err)
	}
	m := make(map[string]string, len(rows))
	for _, r := range rows {
		if err := f.s.openFields(ctx, KindField, r.ID, r.sealedFields()); err != nil {
			return nil, err
		}
		m[r.FieldID] = r.Value
	}
	return m, nil
}

func (f *Fields) values(ctx context.Context, tx bun.IDB, kind, recordID string, defs []FieldDef) (map[string]any, error) {
	raw, err := f.read(ctx, tx, kind, recordID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, d := range defs {
		if v, ok := raw[d.ID]; ok {
			out[d.Name] = decodeValue(d.Type, v)
		}
	}
	return out, nil
}

// Values returns a record's custom field values by field name, typed as
// FieldType says. A client-portal member may read those of its client's
// campaigns, proposals and invoices.
func (f *Fields) Values(ctx context.Context, kind, recordID string) (map[string]any, error) {
	s := f.s
	var out map[string]any
	err := s.run(ctx, fieldPerm(kind, false), func(ctx context.Context, tx bun.Tx, a access) error {
		if err := s.fieldRecord(ctx, tx, a, kind, recordID); err != nil {
			return err
		}
		defs, err := f.defs(ctx, tx, kind)
		if err != nil {
			return err
		}
		out, err = f.values(ctx, tx, kind, recordID, defs)
		return err
	})
	return out, err
}

// encodeValue checks v against d and returns its stored form.
func encodeValue(d FieldDef, v any) (string, *FieldError) {
	bad := func(rule, msg string) (string, *FieldError) {
		return "", &FieldError{Field: "fields." + d.Name, Rule: rule, Param: string(d.Type), Message: msg}
	}
	switch d.Type {
	case FieldText:
		s, ok := v.(string)
		if !ok {
			return bad("type", "must be text")
		}
		if len(s) > 10000 {
			return bad("max", "must be at most 10000 long")
		}
		return s, nil
	case FieldNumber:
		var x float64
		switch n := v.(type) {
		case float64:
			x = n
		case float32:
			x = float64(n)
		case int:
			x = float64(n)
		case int64:
			x = float64(n)
		case json.Number:
			var err error
			if x, err = n.Float64(); err != nil {
				return bad("type", "must be a number")
			}
		default:
			return bad("type", "must be a number")
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return bad("type", "must be a finite number")
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case FieldDate:
		switch t := v.(type) {
		case time.Time:
			return t.UTC().Format(time.DateOnly), nil
		case string:
			if _, err := time.Parse(time.DateOnly, t); err != nil {
				return bad("type", "must be a date (2006-01-02)")
			}
			return t, nil
		}
		return bad("type", "must be a date (2006-01-02)")
	case FieldBool:
		b, ok := v.(bool)
		if !ok {
			return bad("type", "must be true or false")
		}
		return strconv.FormatBool(b), nil
	case FieldSelect:
		s, ok := v.(string)
		if !ok || !slices.Contains(d.Options, s) {
			return bad("oneof", "must be one of the field's options")
		}
		return s, nil
	}
	return bad("type", "has an unknown field type")
}

func decodeValue(t FieldType, v string) any {
	switch t {
	case FieldNumber:
		x, _ := strconv.ParseFloat(v, 64)
		return x
	case FieldDate:
		d, _ := time.Parse(time.DateOnly, v)
		return d
	case FieldBool:
		return v == "true"
	}
	return v
}
