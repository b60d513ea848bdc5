package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// BenchmarkCreateStatementPartsPostgres breaks the server time of
// Create's statement down (the package documentation's "What a contact
// create costs"): it runs variants of the statement for benchContact(1)
// (the name "Ada Lovelace 1": 5 name index rows), each by EXPLAIN
// (ANALYZE, TIMING OFF, WAL) — without the per-node timing of
// BenchmarkPostgresContactCreateServer, which costs a plan of more nodes
// more — as the application's role under row-level security in a
// tenant's transaction rolled back after it, at 1,000 contacts, all
// alternating in one loop with the raw INSERT of the row unsealed into
// bench_plain_contacts (each round beginning with the next of them). It reports each variant's median execution time
// (<variant>_us-figure) and WAL (<variant>_wal_bytes-figure):
//
//   - full: the statement as Create sends it (the contact marked as the
//     holder of its e-mail address and phone number: create_pgclaim.go);
//   - nonames: with no name_index, so that the trigger writes no name
//     index rows (the row is smaller by the array, about 330 bytes);
//   - noclaim: the contact marked as holding neither (false: no entry
//     in the holders' unique indexes, no duplicate check at all);
//   - allowdup: the contact not marked, as an AllowDuplicate create
//     sends it (a trigger marks it: holder when no contact holds the
//     address);
//   - unclaimed: marked false, with the previous release's check instead:
//     the call of socialcrm_crm_contact_unclaimed (advisory locks and
//     the two look-ups), which a create in a caller's transaction still
//     makes;
//   - onerow: with name_index's keyed tokens but the first moved after
//     its empty element, so that the trigger writes one row (the fixed
//     cost of the trigger and its insert against the rows' own);
//   - bare: neither the name index rows nor the check;
//   - cte: the name index rows written by the statement itself, a
//     data-modifying WITH, the trigger skipped (by a condition the owner
//     adds to it in this benchmark's database: name_index not beginning
//     with an empty element, which this variant's array does).
//
// (Its name keeps it out of scripts/bench's run of
// BenchmarkPostgresContact….)
func BenchmarkCreateStatementPartsPostgres(b *testing.B) {
	w := newPGBench(b)
	ctx := context.Background()
	q, _ := pgCreateStatement(b, w)
	owner, err := pgx.Connect(ctx, w.db.OwnerDSN())
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close(ctx)
	for _, q := range []string{
		`DROP TRIGGER socialcrm_crm_contact_name_index_insert ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_name_index_insert BEFORE INSERT ON socialcrm_crm_contacts
			FOR EACH ROW WHEN (NEW.name_index[1] <> '') EXECUTE FUNCTION socialcrm_crm_contact_name_index_new()`,
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			b.Fatal(q, err)
		}
	}
	arr := regexp.MustCompile(`'\{[^']*\}'::text\[\]`).FindString(q)
	ids := regexp.MustCompile(` SELECT ('[^']*'), .*'([^']*)'::text, '([^']*)'::text, '[^']*'::text, '\{`).FindStringSubmatch(q)
	claim := ", email_claim, phone_claim) SELECT"
	if arr == "" || len(ids) != 4 || !strings.Contains(q, claim) || !strings.Contains(q, arr+", true, true") {
		b.Fatal("no name_index, identifiers or holder marks in ", q)
	}
	noclaim := strings.Replace(q, arr+", true, true", arr+", false, false", 1)
	allowdup := strings.Replace(strings.Replace(q, claim, ") SELECT", 1), arr+", true, true", arr, 1)
	call := crm.PgUnclaimedCall(strings.Trim(ids[1], "'"), ids[2], ids[3])
	tokens := strings.Split(strings.Trim(strings.TrimSuffix(arr, "::text[]"), "'{}"), ",")
	keyed := tokens[:0:0]
	for _, t := range tokens {
		if t == `""` {
			break
		}
		keyed = append(keyed, t)
	}
	variants := []struct{ name, stmt string }{
		{"full", q},
		{"nonames", strings.Replace(q, arr, "NULL::text[]", 1)},
		{"noclaim", noclaim},
		{"allowdup", allowdup},
		{"unclaimed", noclaim + " WHERE " + call},
		{"onerow", strings.Replace(q, arr, "'{"+keyed[0]+`,"",`+strings.Join(keyed[1:], ",")+","+strings.Join(tokens[len(keyed)+1:], ",")+"}'::text[]", 1)},
		{"bare", strings.Replace(noclaim, arr, "NULL::text[]", 1)},
		{"cte", "WITH c AS (" + strings.Replace(q, arr, `'{"",`+strings.Join(tokens, ",")+`}'::text[]`, 1) +
			" RETURNING tenant_id, id) INSERT INTO " + crm.TableContactNames + " (tenant_id, token, contact_id)" +
			" SELECT c.tenant_id, t, c.id FROM c, unnest('{" + strings.Join(keyed, ",") + "}'::text[]) AS t"},
	}
	app := w.db.Reopen(b)
	errRollback := errors.New("roll back")
	explain := func(stmt string, args ...any) (us, wal float64) {
		var out []byte
		err := tenancy.RunInTx(w.e.A, app, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := tx.NewRaw("EXPLAIN (ANALYZE, TIMING OFF, WAL, FORMAT JSON) "+stmt, args...).Scan(ctx, &out); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			b.Fatal(err, stmt)
		}
		var plan []struct {
			Plan struct {
				WAL float64 `json:"WAL Bytes"`
			}
			Execution float64 `json:"Execution Time"`
		}
		if err := json.Unmarshal(out, &plan); err != nil || len(plan) != 1 {
			b.Fatal(err, string(out))
		}
		return plan[0].Execution * 1000, plan[0].Plan.WAL
	}
	r := plainOf(w.e.A, 1)
	raw := func() (float64, float64) {
		return explain("INSERT INTO bench_plain_contacts ("+plainColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			r.TenantID, r.ID, r.CreatedAt, r.UpdatedAt, r.Version, r.FirstName, r.LastName, r.Email, r.Phone, r.Stage, r.Source,
			r.UTMSource, r.UTMMedium, r.UTMCampaign, r.UTMTerm, r.UTMContent, r.BirthYear, r.BirthMonth, r.BirthDay, `{"lang":"en"}`, nil, nil, "[]")
	}
	us := map[string][]float64{}
	wal := map[string][]float64{}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Each iteration begins with another of them: none always runs
		// first, or always after the same one.
		for j := range len(variants) + 1 {
			k := (i + j) % (len(variants) + 1)
			if k == len(variants) {
				t, w := raw()
				us["raw"], wal["raw"] = append(us["raw"], t), append(wal["raw"], w)
				continue
			}
			v := variants[k]
			t, w := explain(v.stmt)
			us[v.name], wal[v.name] = append(us[v.name], t), append(wal[v.name], w)
		}
	}
	for name := range us {
		b.ReportMetric(median(us[name]), name+"_us-figure")
		b.ReportMetric(median(wal[name]), name+"_wal_bytes-figure")
	}
}

// pgCreateStatement seeds w with 1,000 contacts and as many rows of
// bench_plain_contacts, analyzes their tables, and returns Create's
// statement for benchContact(1) as the Store writes it and the id of the
// contact it creates, which it creates and deletes again (the address
// must not be a duplicate when the statement runs).
func pgCreateStatement(b *testing.B, w *pgBench) (stmt, id string) {
	ctx := context.Background()
	seeded := w.e.store.Contacts()
	for i := range 1000 {
		if _, err := seeded.Create(w.e.A, benchContact(100000+i)); err != nil {
			b.Fatal(err)
		}
		if err := insertPlain(ctx, w.raw, plainOf(w.e.A, 100000+i)); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{"ANALYZE bench_plain_contacts", "ANALYZE " + crm.TableContacts, "ANALYZE " + crm.TableContactNames} {
		if _, err := w.db.Owner.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	h := &captureHook{}
	w.h.AddQueryHook(h)
	c, err := w.sdk.Contacts().Create(w.e.A, benchContact(1))
	if err != nil {
		b.Fatal(err)
	}
	stmt = h.last("INSERT INTO", crm.TableContacts, "email_index")
	if err := w.sdk.Contacts().Delete(w.e.A, c.ID); err != nil {
		b.Fatal(err)
	}
	return stmt, c.ID
}
