package meta_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// The PostgreSQL pair of the webhook ingestion benchmark (SOCIALCRM_TEST_POSTGRES
// must be set; they fail without it): the same 10,000 events stored
// through the SDK as the application role, which row-level security
// binds, against a handler that verifies and decodes each delivery as the
// baseline above does and then stores its messages with one raw pgx
// batched INSERT (… ON CONFLICT DO NOTHING, the deduplication) into a table
// with the messages table's columns, keys and indexes, unsealed.
// scripts/bench divides the two.

func BenchmarkPostgresMessengerWebhook(b *testing.B) {
	w := newWorld(b, dbtest.Postgres(b, worldSetup))
	wh := w.inboxWebhook()
	before, _ := sqldb.RoundTrips(w.db.DB.DB)
	runBenchWebhook(b, wh)
	after, _ := sqldb.RoundTrips(w.db.DB.DB)
	b.ReportMetric(float64(after-before)/float64(benchEvents*b.N), "pg_webhook_round_trips_per_event-figure")
}

func BenchmarkPostgresMessengerRawInsert(b *testing.B) {
	runBenchWebhook(b, rawInsertHandler(b, dbtest.Postgres(b, worldSetup)))
}

// BenchmarkPostgresMessengerInterleaved hands each delivery of the
// benchmark to the SDK's webhook and the same delivery to the raw handler
// of BenchmarkPostgresMessengerRawInsert (its own table, the same
// database), timing each: the metric ratio:pg_webhook_vs_raw_insert is the
// median of the per-delivery ratios, which a busy machine disturbs far
// less than two benchmarks run one after the other. Each iteration runs
// interleavedRounds rounds of the benchmark's 100 deliveries, each round
// from 500 senders not seen before (so every round opens its
// conversations, as the first did when an iteration was one round) and
// from a checkpoint (see checkpoint), the two handlers taking turns going
// first, delivery by delivery; before the first round it waits for the
// drops of the databases of the runs before (dbtest.AwaitDrops). The
// checkpoints the server made while rounds ran, by anyone, are reported
// per round (pg_webhook_interleaved_checkpoints_per_round-figure). With
// one round per run and none of this, runs swung from 1.08 to 1.91 and
// medians of three runs from 1.42 to 1.79; with eight rounds, runs from
// 1.30 to 1.64 and medians of three from 1.41 to 1.62 (the two builds
// alternated, 18 and 17 runs, on a 2-core machine shared with other work
// at load average 7 to 18, 0.3 to 4 checkpoints per round made by
// others).
func BenchmarkPostgresMessengerInterleaved(b *testing.B) {
	w := newWorld(b, dbtest.Postgres(b, worldSetup))
	wh := w.inboxWebhook()
	raw := rawInsertHandler(b, w.db)
	var cpu [2]time.Duration // the process's CPU time in the SDK's deliveries, the raw handler's
	serve := func(h http.Handler, d benchDelivery, side int) time.Duration {
		req := httptest.NewRequest(http.MethodPost, "/meta/webhook", bytes.NewReader(d.body))
		req.Header.Set(meta.SignatureHeader, d.sig)
		rec := httptest.NewRecorder()
		cpu0 := processCPU(b)
		start := time.Now()
		h.ServeHTTP(rec, req)
		took := time.Since(start)
		cpu[side] += processCPU(b) - cpu0
		if rec.Code != http.StatusOK {
			b.Fatalf("delivery answered %d", rec.Code)
		}
		return took
	}
	var ratios []float64
	var took [2][]float64 // each side's times per delivery, µs
	var trips int64
	sdk := func(d benchDelivery) time.Duration {
		before, _ := sqldb.RoundTrips(w.db.DB.DB)
		t := serve(wh, d, 0)
		after, _ := sqldb.RoundTrips(w.db.DB.DB)
		trips += after - before
		return t
	}
	admin := w.db.Admin(b)
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	round := 0
	var checkpoints int64 // the server's checkpoints while rounds ran
	for b.Loop() {
		for range interleavedRounds {
			b.StopTimer()
			ds := benchDeliveries(round, round*benchPeople, start.Add(time.Duration(round)*time.Hour))
			if round == 0 {
				w.db.AwaitDrops() // a drop's checkpoint would land in the rounds
			}
			round++
			c0 := checkpoint(b, admin)
			b.StartTimer()
			for i, d := range ds {
				var s, r time.Duration
				if i%2 == 0 {
					s = sdk(d)
					r = serve(raw, d, 1)
				} else {
					r = serve(raw, d, 1)
					s = sdk(d)
				}
				ratios = append(ratios, float64(s)/float64(r))
				took[0] = append(took[0], float64(s.Microseconds()))
				took[1] = append(took[1], float64(r.Microseconds()))
			}
			b.StopTimer()
			checkpoints += checkpointsSoFar(b, admin) - c0
			b.StartTimer()
		}
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "ratio:pg_webhook_vs_raw_insert")
	b.ReportMetric(float64(trips)/float64(benchEvents*round), "pg_webhook_interleaved_round_trips_per_event-figure")
	b.ReportMetric(float64(checkpoints)/float64(round), "pg_webhook_interleaved_checkpoints_per_round-figure")
	// The CPU time this process spent per delivery on each side (the
	// handler, the driver, the garbage collector meanwhile), which the
	// load of other processes does not change as it changes the times.
	deliveries := float64(benchEvents / benchPerDelivery * round)
	b.ReportMetric(float64(cpu[0].Microseconds())/deliveries, "pg_webhook_cpu_us_per_delivery-figure")
	b.ReportMetric(float64(cpu[1].Microseconds())/deliveries, "pg_raw_insert_cpu_us_per_delivery-figure")
	for i, name := range []string{"pg_webhook_median_us_per_delivery-figure", "pg_raw_insert_median_us_per_delivery-figure"} {
		slices.Sort(took[i])
		b.ReportMetric(took[i][len(took[i])/2], name)
	}
}

// checkpoint makes the server checkpoint and returns checkpointsSoFar.
// After a checkpoint the first change of each page writes the whole page
// to the write-ahead log, and the SDK's delivery changes more pages than
// the raw INSERT (conversations, their locks, more indexes): every round
// starts from a checkpoint, rather than from wherever the server's last
// one (timed, or a drop's) left it.
func checkpoint(b *testing.B, admin *bun.DB) int64 {
	if _, err := admin.ExecContext(context.Background(), "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}
	return checkpointsSoFar(b, admin)
}

// checkpointsSoFar returns how many checkpoints the server has made.
func checkpointsSoFar(b *testing.B, admin *bun.DB) int64 {
	var n int64
	if err := admin.QueryRowContext(context.Background(),
		"SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// interleavedRounds is how many rounds of deliveries one iteration of
// BenchmarkPostgresMessengerInterleaved runs.
const interleavedRounds = 8

// processCPU returns the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawInsertHandler is the baseline of the PostgreSQL webhook benchmarks: a
// handler that verifies and decodes each delivery and stores its messages
// with one raw pgx batched INSERT into a table of db with the messages
// table's columns, keys and indexes, unsealed, each sender's messages in
// a conversation of its own whose id has the SDK's form.
func rawInsertHandler(b *testing.B, db *dbtest.DB) http.Handler {
	b.Helper()
	ctx := context.Background()
	if _, err := db.Owner.ExecContext(ctx, `CREATE TABLE bench_plain_messages (
		tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, version BIGINT NOT NULL,
		conversation_id TEXT NOT NULL, direction TEXT NOT NULL, external_id TEXT, text TEXT NOT NULL, attachments TEXT NOT NULL,
		sent_at TIMESTAMP NOT NULL, status TEXT NOT NULL, PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, conversation_id, external_id))`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Owner.ExecContext(ctx, `CREATE INDEX bench_plain_messages_sent ON bench_plain_messages (tenant_id, conversation_id, sent_at, id)`); err != nil {
		b.Fatal(err)
	}
	dbtest.GrantApp(b, db)
	conn, err := pgx.Connect(ctx, db.DSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	tid := tenancy.NewID()
	// Each sender's conversation has an id of the SDK's form (36
	// characters, as its conversations' ids): the rows, their keys and
	// their index entries have the sizes of the SDK's (ids of 11
	// characters, as "conv-" and the sender's, made the baseline's
	// entries of the keys by conversation smaller).
	convs := map[string]string{}
	secret := vault.NewSecret([]byte(appSecret))
	cols := "(tenant_id, id, created_at, updated_at, version, conversation_id, direction, external_id, text, attachments, sent_at, status)"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || meta.VerifySignature(r.Header.Get(meta.SignatureHeader), body, secret) != nil {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		var d struct {
			Entry []struct {
				Messaging []struct {
					Sender    struct{ ID string } `json:"sender"`
					Timestamp int64               `json:"timestamp"`
					Message   *struct {
						Mid  string `json:"mid"`
						Text string `json:"text"`
					} `json:"message"`
				} `json:"messaging"`
			} `json:"entry"`
		}
		if json.Unmarshal(body, &d) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		var sb strings.Builder
		var args []any
		now := time.Now().UTC()
		for _, e := range d.Entry {
			for _, m := range e.Messaging {
				if m.Message == nil {
					continue
				}
				if len(args) > 0 {
					sb.WriteString(", ")
				}
				n := len(args)
				sb.WriteString("(")
				for i := range 12 {
					if i > 0 {
						sb.WriteString(", ")
					}
					sb.WriteString("$" + strconv.Itoa(n+i+1))
				}
				sb.WriteString(")")
				conv, ok := convs[m.Sender.ID]
				if !ok {
					conv = tenancy.NewID()
					convs[m.Sender.ID] = conv
				}
				args = append(args, tid, tenancy.NewID(), now, now, 1, conv, "inbound", m.Message.Mid, m.Message.Text, "[]",
					time.UnixMilli(m.Timestamp).UTC(), "received")
			}
		}
		if len(args) > 0 {
			if _, err := conn.Exec(r.Context(), "INSERT INTO bench_plain_messages "+cols+" VALUES "+sb.String()+" ON CONFLICT DO NOTHING", args...); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
}
