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

	Name     string `bun:"name,notnull" json:"name" validate:"required,max=200"`
	Domain   string `bun:"domain,notnull" json:"domain,omitempty" validate:"omitempty,fqdn,max=253"`
	Industry string `bun:"industry,notnull" json:"industry,omitempty" validate:"max=100"`
	OwnerID  string `bun:"owner_id,nullzero" json:"owner_id,omitempty" validate:"omitempty,uuid"`
	NameFold string `bun:"name_fold,notnull" json:"-"`
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

func (c *Company) normalize() {
	c.Name, c.Domain = strings.TrimSpace(c.Name), strings.ToLower(strings.TrimSpace(c.Domain))
	c.NameFold = fold(c.Name)
}

// Create validates c and stores it as a new company.
func (r *Companies) Create(ctx context.Context, c Company) (Company, error) {
	c.normalize()
	return createRecord(ctx, r.s, kindCompany, &c, nil, nil)
}

// Get returns company id.
func (r *Companies) Get(ctx context.Context, id string) (Company, error) {
	return getRecord[Company](ctx, r.s, kindCompany, id)
}

// Update writes c over company c.ID if its Version is current.
func (r *Companies) Update(ctx context.Context, c Company) (Company, error) {
	c.normalize()
	return updateRecord(ctx, r.s, kindCompany, &c, nil, nil)
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
