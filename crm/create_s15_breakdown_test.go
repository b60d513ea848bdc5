package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// BenchmarkS15CreateBreakdown (temporary) measures variants of Create's statement on the server.
func BenchmarkS15CreateBreakdown(b *testing.B) {
	w := newPGBench(b)
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
	owner, err := pgx.Connect(ctx, w.db.OwnerDSN())
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close(ctx)
	for _, q := range []string{"ANALYZE bench_plain_contacts", "ANALYZE " + crm.TableContacts, "ANALYZE " + crm.TableContactNames,
		`CREATE OR REPLACE FUNCTION s15_nolock(p_keys bigint[], p_tenant text, p_email text, p_phone text)
	RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
	BEGIN
		RETURN NOT (p_email <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
			WHERE ct.email_index = p_email AND ct.tenant_id = p_tenant))
		AND NOT (p_phone <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct_1
			WHERE ct_1.phone_index = p_phone AND ct_1.tenant_id = p_tenant));
	END $f$`,
		`CREATE OR REPLACE FUNCTION s15_unnest(p_keys bigint[], p_tenant text, p_email text, p_phone text)
	RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
	BEGIN
		PERFORM pg_advisory_xact_lock(k) FROM unnest(p_keys) AS k;
		RETURN NOT (p_email <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
			WHERE ct.email_index = p_email AND ct.tenant_id = p_tenant))
		AND NOT (p_phone <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct_1
			WHERE ct_1.phone_index = p_phone AND ct_1.tenant_id = p_tenant));
	END $f$`,
		`CREATE OR REPLACE FUNCTION s15_sql(p_keys bigint[], p_tenant text, p_email text, p_phone text)
	RETURNS boolean LANGUAGE sql VOLATILE AS $f$
		SELECT count(pg_advisory_xact_lock(k)) FROM unnest(p_keys) AS k;
		SELECT NOT (p_email <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
			WHERE ct.email_index = p_email AND ct.tenant_id = p_tenant))
		AND NOT (p_phone <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct_1
			WHERE ct_1.phone_index = p_phone AND ct_1.tenant_id = p_tenant));
	$f$`,
		`CREATE OR REPLACE FUNCTION s15_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		`CREATE TRIGGER s15_noop BEFORE INSERT ON socialcrm_crm_contacts FOR EACH ROW WHEN (NEW.name_index[1] = '' AND NEW.name_index[2] = '') EXECUTE FUNCTION s15_noop()`,
		`CREATE OR REPLACE FUNCTION s15_one(p_keys bigint[], p_tenant text, p_email text, p_phone text)
	RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
	BEGIN
		PERFORM pg_advisory_xact_lock(k) FROM unnest(p_keys) AS k;
		RETURN NOT EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
			WHERE ct.tenant_id = p_tenant AND (ct.email_index = nullif(p_email, '') OR ct.phone_index = nullif(p_phone, '')));
	END $f$`,
		`CREATE OR REPLACE FUNCTION s15_assign(p_keys bigint[], p_tenant text, p_email text, p_phone text)
	RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
	DECLARE
		k bigint;
		v text;
	BEGIN
		FOREACH k IN ARRAY p_keys LOOP
			v := pg_advisory_xact_lock(k)::text;
		END LOOP;
		RETURN NOT (p_email <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
			WHERE ct.email_index = p_email AND ct.tenant_id = p_tenant))
		AND NOT (p_phone <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct_1
			WHERE ct_1.phone_index = p_phone AND ct_1.tenant_id = p_tenant));
	END $f$`,
		`GRANT EXECUTE ON FUNCTION s15_assign TO PUBLIC`,
		`GRANT EXECUTE ON FUNCTION s15_one TO PUBLIC`,
		`GRANT EXECUTE ON FUNCTION s15_nolock, s15_unnest, s15_sql TO PUBLIC`,
		`DROP TRIGGER socialcrm_crm_contact_name_index_insert ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_name_index_insert BEFORE INSERT ON socialcrm_crm_contacts
			FOR EACH ROW WHEN (NEW.name_index[1] <> '') EXECUTE FUNCTION socialcrm_crm_contact_name_index_new()`,
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			b.Fatal(q, err)
		}
	}
	if os.Getenv("S15_COLLC") != "" {
		for _, q := range []string{`ALTER TABLE socialcrm_crm_contact_names ALTER COLUMN token TYPE text COLLATE "C"`, "ANALYZE " + crm.TableContactNames} {
			if _, err := owner.Exec(ctx, q); err != nil {
				b.Fatal(q, err)
			}
		}
	}
	if os.Getenv("S15_COLLC2") != "" {
		for _, q := range []string{`ALTER TABLE socialcrm_crm_contacts ALTER COLUMN email_index TYPE text COLLATE "C", ALTER COLUMN phone_index TYPE text COLLATE "C", ALTER COLUMN birth_index TYPE text COLLATE "C"`, "ANALYZE " + crm.TableContacts} {
			if _, err := owner.Exec(ctx, q); err != nil {
				b.Fatal(q, err)
			}
		}
	}
	h := &captureHook{}
	w.h.AddQueryHook(h)
	c, err := w.sdk.Contacts().Create(w.e.A, benchContact(1))
	if err != nil {
		b.Fatal(err)
	}
	q := h.last("INSERT INTO", crm.TableContacts, "email_index")
	if err := w.sdk.Contacts().Delete(w.e.A, c.ID); err != nil {
		b.Fatal(err)
	}
	arr := regexp.MustCompile(`'\{[^']*\}'::text\[\]`).FindString(q)
	toks := strings.Split(strings.Trim(strings.TrimSuffix(arr, "::text[]"), "'{}"), ",")
	var keyed []string
	for _, t := range toks {
		if t == `""` {
			break
		}
		keyed = append(keyed, t)
	}
	unc := regexp.MustCompile(` WHERE socialcrm_crm_contact_unclaimed\([^)]*\)`).FindString(q)
	if arr == "" || unc == "" {
		b.Fatal(q)
	}
	b.Logf("%d keyed of %d; %s", len(keyed), len(toks), q)
	marked := `'{"",` + strings.Join(toks, ",") + `}'::text[]`
	cte := "WITH c AS (" + strings.Replace(q, arr, marked, 1) + " RETURNING tenant_id, id) INSERT INTO " + crm.TableContactNames +
		" (tenant_id, token, contact_id) SELECT c.tenant_id, t, c.id FROM c, unnest('{" + strings.Join(keyed, ",") + "}'::text[]) AS t"
	variants := map[string]string{
		"full":      q,
		"notrigger": strings.Replace(q, arr, "NULL::text[]", 1),
		"markedarr": strings.Replace(q, arr, marked, 1),
		"nounclaim": strings.Replace(q, unc, "", 1),
		"nolock":    strings.Replace(q, "socialcrm_crm_contact_unclaimed(", "s15_nolock(", 1),
		"unnestlk":  strings.Replace(q, "socialcrm_crm_contact_unclaimed(", "s15_unnest(", 1),
		"sqlfunc":   strings.Replace(q, "socialcrm_crm_contact_unclaimed(", "s15_sql(", 1),
		"cte":       cte,
		"cteunnest": strings.Replace(cte, "socialcrm_crm_contact_unclaimed(", "s15_unnest(", 1),
		"nooptrig":  strings.Replace(q, arr, `'{"","",`+strings.Join(toks, ",")+`}'::text[]`, 1),
		"onequery":  strings.Replace(q, "socialcrm_crm_contact_unclaimed(", "s15_one(", 1),
		"assign":    strings.Replace(q, "socialcrm_crm_contact_unclaimed(", "s15_assign(", 1),
		"bare":      strings.Replace(strings.Replace(q, unc, "", 1), arr, "NULL::text[]", 1),
	}
	names := []string{"full", "notrigger", "markedarr", "nounclaim", "nolock", "unnestlk", "sqlfunc", "cte", "cteunnest", "nooptrig", "onequery", "assign", "bare"}
	app := w.db.Reopen(b)
	errRollback := errors.New("roll back")
	explain := func(stmt string) (ms, wal, trig float64) {
		var out []byte
		err := tenancy.RunInTx(w.e.A, app, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := tx.NewRaw("EXPLAIN (ANALYZE, TIMING OFF, WAL, FORMAT JSON) "+stmt).Scan(ctx, &out); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			b.Fatal(err, stmt)
		}
		var plan []struct {
			Plan struct {
				WAL   float64 `json:"WAL Bytes"`
				Plans []struct {
					WAL float64 `json:"WAL Bytes"`
				}
			}
			Triggers []struct {
				Time float64 `json:"Time"`
			}
			Execution float64 `json:"Execution Time"`
		}
		if err := json.Unmarshal(out, &plan); err != nil || len(plan) != 1 {
			b.Fatal(err, string(out))
		}
		for _, t := range plan[0].Triggers {
			trig += t.Time
		}
		wal = plan[0].Plan.WAL
		return plan[0].Execution, wal, trig
	}
	r := plainOf(w.e.A, 1)
	raw := func() float64 {
		var out []byte
		err := tenancy.RunInTx(w.e.A, app, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := tx.NewRaw("EXPLAIN (ANALYZE, TIMING OFF, WAL, FORMAT JSON) INSERT INTO bench_plain_contacts ("+plainColumns+
				") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
				r.TenantID, r.ID, r.CreatedAt, r.UpdatedAt, r.Version, r.FirstName, r.LastName, r.Email, r.Phone, r.Stage, r.Source,
				r.UTMSource, r.UTMMedium, r.UTMCampaign, r.UTMTerm, r.UTMContent, r.BirthYear, r.BirthMonth, r.BirthDay, `{"lang":"en"}`, nil, nil, "[]").
				Scan(ctx, &out); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			b.Fatal(err)
		}
		var plan []struct {
			Execution float64 `json:"Execution Time"`
		}
		_ = json.Unmarshal(out, &plan)
		return plan[0].Execution
	}
	ms := map[string][]float64{}
	wals := map[string][]float64{}
	trig := map[string][]float64{}
	var raws []float64
	b.ResetTimer()
	for b.Loop() {
		raws = append(raws, raw())
		for _, n := range names {
			m, wl, tr := explain(variants[n])
			ms[n], wals[n], trig[n] = append(ms[n], m), append(wals[n], wl), append(trig[n], tr)
		}
	}
	b.ReportMetric(median(raws)*1000, "raw_us")
	for _, n := range names {
		b.ReportMetric(median(ms[n])*1000, n+"_us")
		b.ReportMetric(median(wals[n]), n+"_wal")
		b.ReportMetric(median(trig[n])*1000, n+"_trig_us")
	}
}
