package sqldb_test

import (
	"context"
	"testing"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestNumberLiteralsKeepTheirType: the PostgreSQL connection turns bun's
// literals into parameters, and a parameter took the type of the other
// side of its comparison, where the literal kept its own: i = 1.0 (an
// integer compared as numeric, true for 1) failed once rewritten with
// "invalid input syntax for type integer", i = 3000000000 (false for every
// integer) with "out of range", and s IN (1, 70000) on a smallint column
// likewise. Each statement finds on PostgreSQL what it finds as written,
// which is what SQLite finds.
func TestNumberLiteralsKeepTheirType(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		if _, err := db.Owner.ExecContext(ctx, `CREATE TABLE numbers_s9 (i INTEGER NOT NULL, s SMALLINT NOT NULL, b BIGINT NOT NULL, n NUMERIC(10, 2) NOT NULL, r REAL NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		dbtest.GrantApp(t, db)
		if _, err := db.ExecContext(ctx, `INSERT INTO numbers_s9 (i, s, b, n, r) VALUES (1, 2, 3000000000, 1.50, 0.5), (2, 3, 4, 2, 2)`); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			where string
			want  []int
		}{
			{"i = 1.0", []int{1}},
			{"i = 1.5", nil},
			{"i < 1.5", []int{1}},
			{"i IN (1.0, 2)", []int{1, 2}},
			{"i = 3000000000", nil},
			{"i <> 3000000000", []int{1, 2}},
			{"s IN (2, 70000)", []int{1}},
			{"s < 70000", []int{1, 2}},
			{"b = 3000000000", []int{1}},
			{"b > 99999999999999999999", nil},
			{"n = 1.5", []int{1}},
			{"n = 2", []int{2}},
			{"r = 0.5", []int{1}},
			{"i = 2", []int{2}},
		} {
			var got []int
			err := db.NewSelect().Table("numbers_s9").Column("i").Where(c.where).Order("i").Scan(ctx, &got)
			if err != nil {
				t.Errorf("WHERE %s: %v", c.where, err)
				continue
			}
			if len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] || len(got) > 1 && got[1] != c.want[1] {
				t.Errorf("WHERE %s found %v, want %v", c.where, got, c.want)
			}
		}
		// An update and a delete with a decimal: as written.
		res, err := db.NewUpdate().Table("numbers_s9").Set("n = n + 1").Where("i = 2.0").Exec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Errorf("UPDATE … WHERE i = 2.0 changed %d rows, want 1", n)
		}
		if _, err := db.NewDelete().Table("numbers_s9").Where("i = 1.0").Exec(ctx); err != nil {
			t.Fatal(err)
		}
		var left []int
		if err := db.NewSelect().Table("numbers_s9").Column("i").Scan(ctx, &left); err != nil || len(left) != 1 || left[0] != 2 {
			t.Errorf("after DELETE … WHERE i = 1.0: %v, %v, want [2]", left, err)
		}
	})
}
