package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// config is the server's configuration, from flags with environment
// defaults. The zero configuration (no flags, no environment) runs on
// embedded SQLite with emulated platforms.
type config struct {
	Addr         string
	DSN          string
	OwnerDSN     string
	KEK          string
	PublicURL    string
	JobsInterval time.Duration
	ClosureGrace time.Duration
	SandboxURL   string
	SandboxOnly  bool
	LoginRate    int
	SessionKey   string
	PhoneRegion  string

	// MetricsAddr, when set, is the separate listener of /metrics (then
	// not served on Addr).
	MetricsAddr string
	// traces, when set (tests), records the server's spans.
	traces trace.TracerProvider

	TikTokKey, TikTokSecret string
	MetaAppID, MetaSecret   string
	MetaVerifyToken         string
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", envOr("SOCIALCRM_ADDR", "127.0.0.1:8080"), "listen address")
	fs.StringVar(&c.DSN, "db", envOr("DATABASE_URL", "socialcrm.db"), "SQLite file or postgres:// URL")
	fs.StringVar(&c.OwnerDSN, "owner-db", os.Getenv("SOCIALCRM_OWNER_DATABASE_URL"), "PostgreSQL: the owner role's postgres:// URL, which migrates; -db then connects as the application role (without it one role does everything: development only)")
	fs.StringVar(&c.KEK, "kek", envOr("SOCIALCRM_KEK", "socialcrm.keyset.json"), "key-encryption key: local key file or Tink KMS URI")
	fs.StringVar(&c.PublicURL, "public-url", os.Getenv("SOCIALCRM_PUBLIC_URL"), "URL the server is reached at, for OAuth redirects (default: http://<listen address>)")
	fs.DurationVar(&c.JobsInterval, "jobs-interval", envDuration("SOCIALCRM_JOBS_INTERVAL", time.Hour), "how often the retention sweeper and data-subject jobs run")
	fs.DurationVar(&c.ClosureGrace, "closure-grace", envDuration("SOCIALCRM_CLOSURE_GRACE", 0), "how long a closed tenant's data stays before its purge (0: the retention policy's, 30 days)")
	fs.StringVar(&c.SandboxURL, "sandbox-url", os.Getenv("SOCIALCRM_SANDBOX_URL"), "URL of a shared sandbox process (-sandbox-only) whose emulators every replica uses, instead of in-process ones")
	fs.BoolVar(&c.SandboxOnly, "sandbox-only", false, "serve only the platform emulators, for replicas started with -sandbox-url")
	fs.StringVar(&c.PhoneRegion, "phone-region", envOr("SOCIALCRM_PHONE_REGION", "US"), "region in which phone numbers without a country code are read (ISO 3166 code)")
	fs.IntVar(&c.LoginRate, "login-rate", envInt("SOCIALCRM_LOGIN_RATE", 20), "sign-in attempts allowed per client IP per minute (0: unlimited)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", os.Getenv("SOCIALCRM_METRICS_ADDR"), "separate listen address of the Prometheus-format /metrics (default: served on -addr)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.JobsInterval < time.Second {
		return c, fmt.Errorf("-jobs-interval must be at least 1s")
	}
	c.SessionKey = os.Getenv("SOCIALCRM_SESSION_KEY")
	c.TikTokKey, c.TikTokSecret = os.Getenv("TIKTOK_CLIENT_KEY"), os.Getenv("TIKTOK_CLIENT_SECRET")
	c.MetaAppID, c.MetaSecret = os.Getenv("META_APP_ID"), os.Getenv("META_APP_SECRET")
	c.MetaVerifyToken = os.Getenv("META_VERIFY_TOKEN")
	return c, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}
