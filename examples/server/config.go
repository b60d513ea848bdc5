package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
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
	// PublishLease is how long a TikTok publish being sent stays its
	// sender's without a heartbeat (see publish.go).
	PublishLease time.Duration
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
	// passwordCost, when set (tests), is the bcrypt cost of stored
	// passwords (socialcrm.Config.InsecurePasswordCost).
	passwordCost int
	// formWait, when set (tests), is how long a console form sent again
	// waits for its first sending to end (formKeyWait otherwise).
	formWait time.Duration

	TikTokKey, TikTokSecret string
	MetaAppID, MetaSecret   string
	MetaVerifyToken         string

	// KMS reaches the KEK's KMS elsewhere than its public endpoint (tests).
	KMS kmsOptions
}

// flagEnv names the environment variable of each flag.
var flagEnv = map[string]string{
	"addr":          "SOCIALCRM_ADDR",
	"db":            "DATABASE_URL",
	"owner-db":      "SOCIALCRM_OWNER_DATABASE_URL",
	"kek":           "SOCIALCRM_KEK",
	"public-url":    "SOCIALCRM_PUBLIC_URL",
	"jobs-interval": "SOCIALCRM_JOBS_INTERVAL",
	"publish-lease": "SOCIALCRM_PUBLISH_LEASE",
	"phone-region":  "SOCIALCRM_PHONE_REGION",
	"login-rate":    "SOCIALCRM_LOGIN_RATE",
	"metrics-addr":  "SOCIALCRM_METRICS_ADDR",
	"closure-grace": "SOCIALCRM_CLOSURE_GRACE",
	"sandbox-url":   "SOCIALCRM_SANDBOX_URL",
	"sandbox-only":  "SOCIALCRM_SANDBOX_ONLY",
}

// envOnly are the variables without a flag (secrets stay out of the
// process's arguments).
var envOnly = []struct{ Name, Usage string }{
	{"SOCIALCRM_SESSION_KEY", "key (32 bytes or more) that signs access tokens; set it to keep sessions across restarts and replicas (default: drawn at start)"},
	{"TIKTOK_CLIENT_KEY", "TikTok app's client key; with TIKTOK_CLIENT_SECRET switches TikTok from the emulator to its real hosts"},
	{"TIKTOK_CLIENT_SECRET", "TikTok app's client secret"},
	{"META_APP_ID", "Meta app id; with META_APP_SECRET switches Meta from the emulator to the Graph API"},
	{"META_APP_SECRET", "Meta app secret"},
	{"META_VERIFY_TOKEN", "token entered with the webhook URL in Meta's App Dashboard"},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP endpoint to export traces and metrics to (and the other standard OTEL_EXPORTER_OTLP_* variables); unset: no export"},
}

// kmsSchemes are the Tink KMS URI schemes -kek accepts.
var kmsSchemes = []string{"aws-kms://", "gcp-kms://", "hcvault://"}

var regionRE = regexp.MustCompile(`^[A-Z]{2}$`)

// parseConfig reads flags, with environment variables as their defaults.
// A malformed value, in a flag or a variable, is an error naming it.
func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen `address` (host:port; 0.0.0.0:port listens on every interface)")
	fs.StringVar(&c.DSN, "db", "socialcrm.db", "SQLite `file` or postgres:// URL")
	fs.StringVar(&c.OwnerDSN, "owner-db", "", "PostgreSQL: the owner role's postgres:// `URL`, which migrates; -db then connects as the application role (without it one role does everything: development only)")
	fs.StringVar(&c.KEK, "kek", "socialcrm.keyset.json", "key-encryption key: local key `file`, or a Tink KMS URI: aws-kms://arn:aws:kms:…, gcp-kms://projects/…/cryptoKeys/…, hcvault://host:port/transit/keys/…")
	fs.StringVar(&c.PublicURL, "public-url", "", "`URL` the server is reached at, for OAuth redirects and webhooks (default: http://<listen address>; http://127.0.0.1:<port> when listening on every interface)")
	fs.DurationVar(&c.JobsInterval, "jobs-interval", time.Hour, "how often the retention sweeper and data-subject jobs run (at least 1s)")
	fs.DurationVar(&c.PublishLease, "publish-lease", 30*time.Second, "how long a TikTok publish being sent is left to its replica without a heartbeat, as another replica measures it on its own clock, before that replica may look it up and declare it in doubt (at least 100ms)")
	fs.DurationVar(&c.ClosureGrace, "closure-grace", 0, "how long a closed tenant's data stays before its purge (0: the retention policy's, 30 days)")
	fs.StringVar(&c.SandboxURL, "sandbox-url", "", "`URL` of a shared sandbox process (-sandbox-only) whose emulators every replica uses, instead of in-process ones")
	fs.BoolVar(&c.SandboxOnly, "sandbox-only", false, "serve only the platform emulators, for replicas started with -sandbox-url")
	fs.StringVar(&c.PhoneRegion, "phone-region", "US", "`region` in which phone numbers without a country code are read (ISO 3166 code)")
	fs.IntVar(&c.LoginRate, "login-rate", 20, "sign-in attempts allowed per client IP per minute (0: unlimited)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "separate listen `address` of the Prometheus-format /metrics (default: served on -addr)")
	fs.Usage = func() { usage(fs) }
	// Environment first, as defaults a flag overrides.
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := flagEnv[f.Name]
		if v, ok := os.LookupEnv(env); ok && v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q: %w", env, redactValue(f.Name, v), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.SessionKey = os.Getenv("SOCIALCRM_SESSION_KEY")
	c.TikTokKey, c.TikTokSecret = os.Getenv("TIKTOK_CLIENT_KEY"), os.Getenv("TIKTOK_CLIENT_SECRET")
	c.MetaAppID, c.MetaSecret = os.Getenv("META_APP_ID"), os.Getenv("META_APP_SECRET")
	c.MetaVerifyToken = os.Getenv("META_VERIFY_TOKEN")
	return c, c.validate()
}

// validate checks every value, naming each bad one (flag and variable).
func (c config) validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		name := "-" + flagName
		if env := flagEnv[flagName]; env != "" {
			name += " (" + env + ")"
		} else {
			name = flagName
		}
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		bad("addr", "%q is not host:port", c.Addr)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			bad("metrics-addr", "%q is not host:port", c.MetricsAddr)
		}
	}
	if c.DSN == "" {
		bad("db", "empty")
	}
	if c.OwnerDSN != "" && !strings.HasPrefix(c.OwnerDSN, "postgres://") && !strings.HasPrefix(c.OwnerDSN, "postgresql://") {
		bad("owner-db", "must be a postgres:// URL")
	}
	switch {
	case c.KEK == "":
		bad("kek", "empty")
	case strings.Contains(c.KEK, "://") && !hasAnyPrefix(c.KEK, kmsSchemes):
		bad("kek", "unknown KMS URI scheme: use a key file or one of %s", strings.Join(kmsSchemes, ", "))
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("public-url", "%q must be an absolute http:// or https:// URL without query", c.PublicURL)
		}
	}
	if c.PublishLease < 100*time.Millisecond {
		bad("publish-lease", "must be at least 100ms")
	}
	if c.JobsInterval < time.Second {
		bad("jobs-interval", "must be at least 1s")
	}
	if !regionRE.MatchString(c.PhoneRegion) {
		bad("phone-region", "%q must be a two-letter ISO 3166 code such as US or DE", c.PhoneRegion)
	}
	if c.LoginRate < 0 {
		bad("login-rate", "must be 0 (unlimited) or more")
	}
	if c.SessionKey != "" && len(c.SessionKey) < 32 {
		bad("SOCIALCRM_SESSION_KEY", "must be at least 32 bytes")
	}
	if (c.TikTokKey == "") != (c.TikTokSecret == "") {
		bad("TIKTOK_CLIENT_KEY", "set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET together (neither: the TikTok emulator)")
	}
	if (c.MetaAppID == "") != (c.MetaSecret == "") {
		bad("META_APP_ID", "set META_APP_ID and META_APP_SECRET together (neither: the Meta emulator)")
	}
	return errors.Join(errs...)
}

// usage prints every flag with its environment variable, then the
// variables without a flag.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: server [flags]\n\nThe socialcrm example server. Each flag's default may be set by the environment\nvariable named after it; a flag given wins over its variable.\n\nFlags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, use := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s %s\n    \t[%s] %s", f.Name, name, flagEnv[f.Name], use)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "\nEnvironment only:\n")
	for _, e := range envOnly {
		fmt.Fprintf(w, "  %s\n    \t%s\n", e.Name, e.Usage)
	}
}

// redactValue hides the password of a database URL in an error.
func redactValue(flagName, v string) string {
	if flagName == "db" || flagName == "owner-db" {
		return redactDSN(v)
	}
	return v
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
