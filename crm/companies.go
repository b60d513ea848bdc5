package crm

import (
	"context"
	"strings"

	"github.com/uptrace/bun"
)

// TableCompanies holds the companies.
const TableCompanies = TablePrefix + "companies"

// Company is an organization the tenant deals with; contacts, deals,
// activities and notes may refer to it.
type Company struct {
	bun.BaseModel `bun:"table:socialcrm_crm_companies,alias:co"`
	Record
	CompanyInput

	NameFold string `bun:"name_fold,notnull" json:"-"`
}

// CompanyInput is what Companies.Create and Companies.Update take: the
// fields of a company that its users set.
type CompanyInput struct {
	Name     string `bun:"name,notnull" json:"name" validate:"required,max=200"`
	Domain   string `bun:"domain,notnull" json:"domain,omitempty" validate:"omitempty,fqdn,max=253"`
	Industry string `bun:"industry,notnull" json:"industry,omitempty" validate:"max=100"`
	OwnerID  string `bun:"owner_id,nullzero" json:"owner_id,omitempty" validate:"omitempty,uuid"`
}

// CompanyFilter narrows Companies.List; the zero value lists every
// company.
type CompanyFilter struct {
	// NamePrefix keeps companies whose name starts with it, ignoring case.
	NamePrefix string `json:"name_prefix,omitempty"`
	OwnerID    string `json:"owner_id,omitempty"`
}

// Companies is the repository of companies, reached with Store.Companies.
type Companies struct{ s *Store }

// Companies returns the repository of companies.
func (s *Store) Companies() *Companies { return &Companies{s: s} }

const kindCompany = "company"

var companyOrder = keyset{name: "companies", cols: []string{"id"}}

func (in *CompanyInput) normalize() {
	in.Name, in.Domain = strings.TrimSpace(in.Name), strings.ToLower(strings.TrimSpace(in.Domain))
}

func newCompany(in CompanyInput) Company {
	in.normalize()
	return Company{CompanyInput: in, NameFold: fold(in.Name)}
}

// Create validates in and stores it as a new company.
func (r *Companies) Create(ctx context.Context, in CompanyInput) (Company, error) {
	c := newCompany(in)
	return createRecord(ctx, r.s, kindCompany, &c.CompanyInput, &c, nil, nil)
}

// Get returns company id.
func (r *Companies) Get(ctx context.Context, id string) (Company, error) {
	return getRecord[Company](ctx, r.s, kindCompany, id)
}

// Update writes in over company id if its stored version is still
// version (else a *ConflictError).
func (r *Companies) Update(ctx context.Context, id string, version int64, in CompanyInput) (Company, error) {
	c := newCompany(in)
	return updateRecord(ctx, r.s, kindCompany, id, version, &c.CompanyInput, &c, nil, nil)
}

// Delete removes company id. Records that refer to it keep the reference.
func (r *Companies) Delete(ctx context.Context, id string) error {
	return deleteRecord[Company](ctx, r.s, kindCompany, id, nil)
}

// List returns a page of the companies matching f, oldest first.
func (r *Companies) List(ctx context.Context, f CompanyFilter, o ListOptions) (Page[Company], error) {
	return listRecords(ctx, r.s, kindCompany, companyOrder, o, func(q *bun.SelectQuery) *bun.SelectQuery {
		if p := fold(f.NamePrefix); p != "" {
			q = q.Where(`?TableAlias.name_fold LIKE ? ESCAPE '\'`, escapeLike(p)+"%")
		}
		if f.OwnerID != "" {
			q = q.Where("?TableAlias.owner_id = ?", f.OwnerID)
		}
		return q
	}, byID[Company])
}
