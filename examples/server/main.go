// Command server is the socialcrm example server: a JSON API, a small web
// console and the platform emulators, over the SDK. With no configuration it
// runs on an embedded SQLite file in the working directory, in sandbox mode:
//
//	go run ./examples/server
//
// Flags (and environment variables): -addr (SOCIALCRM_ADDR, default
// 127.0.0.1:8080), -db (DATABASE_URL, default socialcrm.db; a postgres://
// URL switches to PostgreSQL), -owner-db (SOCIALCRM_OWNER_DATABASE_URL: on
// PostgreSQL, the owner role that migrates, with -db the application role
// that owns nothing; without it one role does everything, which Open allows
// here for development only), -kek (SOCIALCRM_KEK, default
// socialcrm.keyset.json: a local key-encryption-key file created on first
// run with mode 0600; a Tink KMS URI such as gcp-kms://… switches to a KMS,
// which protects more than a file beside the database), -public-url
// (SOCIALCRM_PUBLIC_URL, the address OAuth redirects come back to),
// -jobs-interval (SOCIALCRM_JOBS_INTERVAL, default 1h: the retention sweeper,
// tenant purges, revocation retries and data-subject deadline checks),
// -login-rate (SOCIALCRM_LOGIN_RATE, sign-in attempts per IP per minute,
// counted in the database: shared by every replica),
// -metrics-addr (SOCIALCRM_METRICS_ADDR: a separate listener for the
// Prometheus-format /metrics, served on -addr by default), -publish-lease
// (SOCIALCRM_PUBLISH_LEASE, default 30s: how long a TikTok publish being
// sent stays its replica's without a heartbeat). The standard
// OTEL_EXPORTER_OTLP_* variables export traces and metrics over OTLP.
// Every answer carries an X-Request-Id, repeated in error bodies and in
// the request's log lines. -h lists every variable; a malformed value stops
// the server at start. -kek takes aws-kms://, gcp-kms:// and hcvault:// key
// URIs (see kms.go for where each finds its credentials).
//
// Replicas: any number of processes may serve one PostgreSQL database.
// Background work (the jobs above) runs as River jobs, each run once across
// the replicas and retried with backoff; set SOCIALCRM_SESSION_KEY to the
// same value on every replica. Processes on one machine may also share one
// SQLite file: started together, they migrate one after the other, and
// each periodic job is enqueued once per interval across them.
//
// Sandbox mode: the TikTok and Meta emulators (tiktok/tiktoktest,
// meta/metatest) run in-process and every response and page says
// "sandbox". Replicas share one sandbox instead: start one process with
// -sandbox-only -public-url <the replicas' public URL> and every replica
// with -sandbox-url <its URL> (SOCIALCRM_SANDBOX_URL). TIKTOK_CLIENT_KEY
// and TIKTOK_CLIENT_SECRET switch TikTok to its real hosts; META_APP_ID and META_APP_SECRET do the same for Meta
// (META_VERIFY_TOKEN is the token entered with the webhook URL in the App
// Dashboard).
// SOCIALCRM_SESSION_KEY (32+ bytes) keeps access tokens valid across
// restarts and replicas; by default a random key is drawn at start.
//
// The API is described by the OpenAPI document served at /openapi.yaml; the
// console is at /console/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/retention/retentionriver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// app is the server: the SDK, the platforms and the HTTP handlers.
type app struct {
	cfg config
	log *slog.Logger
	db  *bun.DB
	// publishing holds the TikTok publishes this process is sending, by
	// tenant and idempotency key.
	publishing sync.Map
	// leases is what this process saw of other replicas' publish leases,
	// and leaseTicks the ticks of its own publishes' lease heartbeat (nil:
	// every PublishLease/3); see publish.go.
	leases      leaseWatch
	leaseTicks  <-chan time.Time
	owner       *bun.DB // the owner role's handle; nil when db does everything
	sdk         *socialcrm.SDK
	plat        *platforms
	tokens      *tokens
	logins      *limiter
	now         func() time.Time
	publicURL   string
	mux         *http.ServeMux
	routes      []route
	callbacks   *meta.Callbacks
	crossOrigin *http.CrossOriginProtection // guards the console's forms
	consoleTmpl *template.Template
	started     time.Time

	jobs    *jobs // nil until run starts River (in-process tests run without)
	jobsMu  sync.Mutex
	lastJob jobReport

	tel *telemetry // traces and metrics (telemetry.go)
}

// run starts the server and blocks until ctx ends, then shuts down
// gracefully. It prints the address it listens on to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(requestLogHandler{slog.NewJSONHandler(stderr, nil)})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.SandboxOnly {
		return runSandbox(ctx, cfg, ln, stdout, log)
	}
	publicURL, note := defaultPublicURL(cfg.PublicURL, ln.Addr())
	if note != "" {
		fmt.Fprintln(stderr, "server:", note)
	}
	a, err := newApp(ctx, cfg, log, publicURL)
	if err != nil {
		ln.Close()
		return err
	}
	defer a.close()
	if cfg.MetricsAddr != "" {
		stopMetrics, err := a.serveMetrics(cfg.MetricsAddr, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	srv := &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "socialcrm example server listening on http://%s (database: %s; tiktok: %s, meta: %s)\n",
		ln.Addr(), redactDSN(cfg.DSN), mode(a.plat.tiktokSandbox), mode(a.plat.metaSandbox))
	log.Info("listening", "addr", ln.Addr().String(), "public_url", publicURL)

	// Background work runs as River jobs in the database, each once across
	// the replicas.
	if a.jobs, err = a.startJobs(context.WithoutCancel(ctx), cfg.JobsInterval); err != nil {
		ln.Close()
		return fmt.Errorf("jobs: %w", err)
	}
	defer a.jobs.close()
	// Erasures a killed process left half done resume now, not at the next
	// period: the periodic resumption is unique within its period, and the
	// dead process may have run this period's before it died. Safe beside
	// other replicas' runs: a request completes once.
	if err := a.jobs.insert(ctx, retentionriver.ResumeArgs{}, nil); err != nil {
		log.Warn("could not enqueue the resumption of open erasures", "err", err)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	log.Info("shutting down")
	jctx, jcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if jerr := a.jobs.stop(jctx); jerr != nil {
		log.Warn("jobs did not stop cleanly", "err", jerr)
	}
	jcancel()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// defaultPublicURL is -public-url, or the listen address's URL: on every
// interface (0.0.0.0, ::) that is the loopback address of the port, and
// note says so, and what to set for other machines.
func defaultPublicURL(flagURL string, addr net.Addr) (publicURL, note string) {
	if flagURL != "" {
		return strings.TrimSuffix(flagURL, "/"), ""
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return "http://" + addr.String(), ""
	}
	publicURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	return publicURL, "listening on every interface; OAuth redirects and webhooks use " + publicURL +
		": set -public-url (SOCIALCRM_PUBLIC_URL) to the address other machines reach this server at"
}

// newApp opens the database and the SDK, starts the platforms (the
// emulators in sandbox mode) and builds the routes. publicURL is where the
// server is reached, for OAuth redirects and webhooks. Close it when done.
func newApp(ctx context.Context, cfg config, log *slog.Logger, publicURL string) (_ *app, err error) {
	db, err := socialcrm.OpenDB(cfg.DSN)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, db: db, now: time.Now, publicURL: publicURL, started: time.Now()}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	kek, err := openKEK(ctx, cfg.KEK, cfg.KMS)
	if err != nil {
		return nil, err
	}
	// Two roles when an owner is given: it migrates and grants, db only
	// reads and writes rows. One role otherwise, for development.
	migrator := db
	if cfg.OwnerDSN != "" {
		if a.owner, err = socialcrm.OpenDB(cfg.OwnerDSN); err != nil {
			return nil, err
		}
		migrator = a.owner
	}
	// The server's own tables migrate with socialcrm's, under its lock.
	if err := socialcrm.Migrate(ctx, migrator, serverMigrations()); err != nil {
		return nil, err
	}
	if a.owner != nil {
		if err := grantSessions(ctx, a.owner, db); err != nil {
			return nil, err
		}
	}
	policy := examplePolicy()
	if cfg.ClosureGrace > 0 {
		policy.ClosureGrace = cfg.ClosureGrace
	}
	cats := []retention.Category{sessionCategory(), publishCategory(), formKeyCategory()}
	if a.plat, err = startPlatforms(cfg, publicURL, log); err != nil {
		return nil, err
	}
	if a.tel, err = newTelemetry(ctx, cfg.traces); err != nil {
		return nil, err
	}
	if err := a.plat.instrument(a.tel); err != nil {
		return nil, err
	}
	if a.sdk, err = socialcrm.Open(ctx, socialcrm.Config{DB: db, Owner: a.owner, AllowPrivilegedRole: a.owner == nil,
		KEK: kek, Logger: log, Policy: &policy, Models: []any{(*session)(nil), (*publishRecord)(nil)}, Categories: cats,
		PhoneRegion: cfg.PhoneRegion, Providers: a.plat.providers(),
		TracerProvider: a.tel.tp, MeterProvider: a.tel.mp, InsecurePasswordCost: cfg.passwordCost}); err != nil {
		return nil, err
	}
	// River's jobs name every tenant and act for every tenant, and the
	// sign-in attempts of every address limit everyone's sign-ins (the
	// sign-up keys are no tenant's either): no
	// tenant's statement on the SDK's handle may reach their tables.
	a.sdk.Guard.Unreachable(append(retentionriver.Tables(), tableLoginAttempts, tableSignupKeys)...)
	if err := keyFingerprints(ctx, a.sdk); err != nil { // publish.go
		return nil, err
	}
	if err := a.plat.makeFlows(a.sdk.Social); err != nil {
		return nil, err
	}
	key := []byte(cfg.SessionKey)
	if len(key) < 32 {
		key = []byte(randomToken())
	}
	a.tokens = &tokens{db: db, key: key, now: a.now}
	// The addresses are counted under a keyed hash whose key every
	// replica shares, whether or not they share a session key.
	limiterKey, err := sharedKey(ctx, db, kek, "login-limiter")
	if err != nil {
		return nil, err
	}
	a.logins = newLimiter(db, cfg.LoginRate, time.Minute, a.now, keyedHash(limiterKey))
	// Forms must come from the console's own origin: the request's Host,
	// or the public URL's (behind a proxy that rewrites Host).
	a.crossOrigin = http.NewCrossOriginProtection()
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
		if err := a.crossOrigin.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("-public-url: %w", err)
		}
	}
	if err := a.buildRoutes(); err != nil {
		return nil, err
	}
	return a, nil
}

// handler is the server's whole HTTP handler.
func (a *app) handler() http.Handler {
	return a.tel.handler(withRequestID(a.middleware(routeNamed(http.HandlerFunc(a.serve)))))
}

// close stops the emulators and closes the database.
func (a *app) close() {
	if a.plat != nil {
		a.plat.close()
	}
	if a.tel != nil {
		_ = a.tel.close(context.Background())
	}
	a.db.Close()
	if a.owner != nil {
		a.owner.Close()
	}
}

// examplePolicy is the SDK's default policy for the categories this
// server registers, plus the sessions' rule.
func examplePolicy() retention.Policy {
	p := socialcrm.DefaultPolicy(socialcrm.Categories(nil))
	p.Rules = append(p.Rules, sessionRule(), publishRule(), formKeyRule())
	return p
}

// redactDSN hides a password in a database URL.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
	}
	return dsn
}
