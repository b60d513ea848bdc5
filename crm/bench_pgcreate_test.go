package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// BenchmarkPostgresContactCreateServer measures on the server what
// BenchmarkPostgresContactCreate measures at the client: the execution
// time and the WAL of Create's statement for benchContact (the name "Ada
// Lovelace <n>": 5 name index rows for "Ada Lovelace 1", one per keyed
// prefix), as the application's role under
// row-level security in a tenant's transaction, against the raw INSERT of
// the same row unsealed into bench_plain_contacts, at 1,000 contacts of
// each, by EXPLAIN (ANALYZE, WAL). Each statement runs in a transaction
// rolled back after it, so the same statement runs every time; the two
// alternate. It reports the medians: <side>_server_ms-figure,
// <side>_wal_bytes-figure and ratio:pg_contact_create_server_vs_raw.
// Without the commit's flush and the client's work, it isolates what the
// tables' shapes, their indexes and triggers cost.
func BenchmarkPostgresContactCreateServer(b *testing.B) {
	w := newPGBench(b)
	// Create's statement as the Store writes it, for a contact then
	// deleted (create_s15_bench_test.go).
	q, id := pgCreateStatement(b, w)
	app := w.db.Reopen(b)
	errRollback := errors.New("roll back")
	explain := func(run func(ctx context.Context, tx bun.Tx, out *[]byte) error) (ms, wal float64) {
		var out []byte
		err := tenancy.RunInTx(w.e.A, app, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := run(ctx, tx, &out); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			b.Fatal(err)
		}
		var plan []struct {
			Plan struct {
				Rows int     `json:"Actual Rows"`
				WAL  float64 `json:"WAL Bytes"`
			}
			Execution float64 `json:"Execution Time"`
		}
		if err := json.Unmarshal(out, &plan); err != nil || len(plan) != 1 {
			b.Fatal(err, string(out))
		}
		return plan[0].Execution, plan[0].Plan.WAL
	}
	sdk := func() (float64, float64) {
		return explain(func(ctx context.Context, tx bun.Tx, out *[]byte) error {
			var rows int
			if err := tx.NewRaw("EXPLAIN (ANALYZE, WAL, FORMAT JSON) "+q).Scan(ctx, out); err != nil {
				return err
			}
			if err := tx.NewRaw("SELECT count(*) FROM ? WHERE contact_id = ?", bun.Ident(crm.TableContactNames), id).Scan(ctx, &rows); err != nil {
				return err
			}
			if rows != crm.NameRows("ada", "lovelace", "1") {
				return fmt.Errorf("%d name index rows", rows)
			}
			return nil
		})
	}
	r := plainOf(w.e.A, 1)
	base := func() (float64, float64) {
		return explain(func(ctx context.Context, tx bun.Tx, out *[]byte) error {
			return tx.NewRaw("EXPLAIN (ANALYZE, WAL, FORMAT JSON) INSERT INTO bench_plain_contacts ("+plainColumns+
				") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
				r.TenantID, r.ID, r.CreatedAt, r.UpdatedAt, r.Version, r.FirstName, r.LastName, r.Email, r.Phone, r.Stage, r.Source,
				r.UTMSource, r.UTMMedium, r.UTMCampaign, r.UTMTerm, r.UTMContent, r.BirthYear, r.BirthMonth, r.BirthDay, `{"lang":"en"}`, nil, nil, "[]").
				Scan(ctx, out)
		})
	}
	var sms, swal, bms, bwal, ratios []float64
	b.ResetTimer()
	for b.Loop() {
		s, sw := sdk()
		bm, bw := base()
		sms, swal, bms, bwal = append(sms, s), append(swal, sw), append(bms, bm), append(bwal, bw)
		ratios = append(ratios, s/bm)
	}
	b.ReportMetric(median(sms), "sdk_server_ms-figure")
	b.ReportMetric(median(bms), "raw_server_ms-figure")
	b.ReportMetric(median(swal), "sdk_wal_bytes-figure")
	b.ReportMetric(median(bwal), "raw_wal_bytes-figure")
	b.ReportMetric(median(ratios), "ratio:pg_contact_create_server_vs_raw")
}

// BenchmarkCreateClientCPUPostgres creates contacts on PostgreSQL through
// the SDK alone, with no baseline between them: for a CPU profile of the
// client's work (-cpuprofile), whose share of the interleaved
// benchmark's samples is too small to read. (Its name keeps it out of
// scripts/bench's run of BenchmarkPostgresContact….) It reports the process's CPU
// time (user and system, the garbage collector's included) per create,
// client_cpu_us-figure, which the machine's load moves less than the
// wall time, and the same for one raw pgx INSERT of the row unsealed
// (raw_cpu_us-figure, timed in a loop of its own after).
func BenchmarkCreateClientCPUPostgres(b *testing.B) {
	w := newPGBench(b)
	contacts := w.sdk.Contacts()
	n := 0
	var cpu0 syscall.Rusage
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano() - cpu0.Utime.Nano() - cpu0.Stime.Nano())
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
	for b.Loop() {
		n++
		if _, err := contacts.Create(w.e.A, benchContact(n)); err != nil {
			b.Fatal(err)
		}
	}
	sdk := cpu()
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
	ctx := context.Background()
	for i := range n {
		if err := insertPlain(ctx, w.raw, plainOf(w.e.A, i)); err != nil {
			b.Fatal(err)
		}
	}
	raw := cpu()
	b.ReportMetric(float64(sdk.Microseconds())/float64(n), "client_cpu_us-figure")
	b.ReportMetric(float64(raw.Microseconds())/float64(n), "raw_cpu_us-figure")
}
