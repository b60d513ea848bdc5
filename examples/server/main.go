// Command server is the socialcrm example server. With no configuration it
// runs on an embedded SQLite file in the working directory:
//
//	go run ./examples/server
//
// Flags (and environment variables): -addr (SOCIALCRM_ADDR, default
// 127.0.0.1:8080), -db (DATABASE_URL, default socialcrm.db; a postgres://
// URL switches to PostgreSQL), -kek (SOCIALCRM_KEK, default
// socialcrm.keyset.json: a local key-encryption-key file created on first
// run with mode 0600; a Tink KMS URI such as gcp-kms://… switches to a KMS,
// which protects more than a file beside the database).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// run starts the server and blocks until ctx ends, then shuts down
// gracefully. It prints the address it listens on to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("SOCIALCRM_ADDR", "127.0.0.1:8080"), "listen address")
	dsn := fs.String("db", envOr("DATABASE_URL", "socialcrm.db"), "SQLite file or postgres:// URL")
	kekRef := fs.String("kek", envOr("SOCIALCRM_KEK", "socialcrm.keyset.json"), "key-encryption key: local key file or Tink KMS URI")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	db, err := socialcrm.OpenDB(*dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	kek, err := openKEK(*kekRef)
	if err != nil {
		return err
	}
	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db, KEK: kek, Logger: log})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           routes(db, sdk.Tenants, sdk.Vault, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "socialcrm example server listening on http://%s (database: %s)\n", ln.Addr(), redactDSN(*dsn))
	log.Info("listening", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
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

func routes(db *bun.DB, store *tenancy.Store, keys *vault.Vault, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.PingContext(ctx); err != nil {
			log.Warn("not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("POST /v1/signup", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			TenantName string `json:"tenant_name"`
			Email      string `json:"email"`
			Name       string `json:"name"`
			Password   string `json:"password"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		t, m, err := store.CreateTenant(r.Context(), tenancy.SignUp{TenantName: req.TenantName,
			Owner: tenancy.NewMember{Email: req.Email, Name: req.Name, Password: req.Password}})
		if err != nil {
			writeError(w, log, err)
			return
		}
		// Create the tenant's data key now, outside any request transaction.
		if _, err := keys.EnsureKey(tenancy.WithPrincipal(r.Context(), m.Principal())); err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"tenant": t, "owner": m})
	})
	mux.HandleFunc("POST /v1/login", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			TenantID string `json:"tenant_id"`
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		p, err := store.Authenticate(r.Context(), req.TenantID, req.Email, req.Password,
			tenancy.RequestInfo{IP: clientIP(r), UserAgent: r.UserAgent()})
		if err != nil {
			writeError(w, log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"tenant_id": p.TenantID, "member_id": p.MemberID, "role": p.Role})
	})
	return mux
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid JSON body", "detail": err.Error()})
		return false
	}
	return true
}

// writeError maps SDK errors to HTTP statuses with a JSON body naming the
// problem; unexpected errors are logged and answered without detail.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	var verr *tenancy.ValidationError
	var locked *tenancy.LockedError
	switch {
	case errors.As(err, &verr):
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid input", "field": verr.Field, "reason": verr.Reason})
	case errors.As(err, &locked):
		w.Header().Set("Retry-After", fmt.Sprint(int(time.Until(locked.Until).Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "account locked", "until": locked.Until})
	case errors.Is(err, tenancy.ErrInvalidCredentials):
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid credentials"})
	case errors.Is(err, tenancy.ErrDuplicate):
		writeJSON(w, http.StatusConflict, map[string]any{"error": "already exists"})
	case errors.Is(err, tenancy.ErrForbidden):
		writeJSON(w, http.StatusForbidden, map[string]any{"error": "forbidden"})
	default:
		log.Error("request failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
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

// openKEK opens a Tink KMS key URI (scheme://…) or a local key file.
func openKEK(ref string) (tink.AEAD, error) {
	if strings.Contains(ref, "://") {
		return vault.KMS(ref)
	}
	return vault.OpenKeyFile(ref)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
