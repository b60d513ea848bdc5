package crm

import (
	"reflect"
	"slices"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"

	"github.com/socialcrm/socialcrm/retention"
)

// mergeCovers reports whether Merge handles the contact rows of table.
func mergeCovers(table string) bool {
	if _, ok := mergeHandled[table]; ok {
		return true
	}
	return slices.ContainsFunc(mergeMoves, func(m struct{ table, column string }) bool { return m.table == table })
}

// TestMergeHandlesEveryContactTable fails when a table of the package
// holds a contact's rows — declared so to retention, or with a column
// contact_id, or owned by records of any kind (owner_kind/record_kind) —
// and Merge does not say what becomes of them.
func TestMergeHandlesEveryContactTable(t *testing.T) {
	for _, c := range Categories() {
		if _, ok := c.Subject[SubjectContact]; ok && !mergeCovers(c.Table) {
			t.Errorf("category %s finds a contact's rows in %s, which Merge does not handle", c.Name, c.Table)
		}
	}
	db := bun.NewDB(nil, sqlitedialect.New())
	for _, m := range Models() {
		table := db.Table(reflect.TypeOf(m).Elem())
		for _, col := range []string{"contact_id", "owner_kind", "record_kind"} {
			if _, ok := table.FieldMap[col]; ok && !mergeCovers(table.Name) {
				if col == "record_kind" && table.Name == TableFieldDefs {
					continue // definitions, not values
				}
				t.Errorf("table %s has a column %s, and Merge does not handle it", table.Name, col)
			}
		}
	}
	for _, m := range mergeMoves {
		if !slices.ContainsFunc(Categories(), func(c retention.Category) bool { return c.Table == m.table }) {
			t.Errorf("Merge moves rows of %s, which no category declares", m.table)
		}
	}
}
