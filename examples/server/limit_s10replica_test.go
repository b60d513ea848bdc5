package main

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestLoginLimitSharedWithoutSessionKeyS10: two replicas on one database
// that were given no SOCIALCRM_SESSION_KEY (each draws its own) still
// share one count of sign-in attempts per address.
func TestLoginLimitSharedWithoutSessionKeyS10(t *testing.T) {
	check := func(t *testing.T, args ...string) {
		t.Helper()
		var as []*testApp
		for range 2 {
			as = append(as, startTestApp(t, slog.New(slog.DiscardHandler), func(cfg *config) {
				cfg.SessionKey = ""
			}, append([]string{"-login-rate", "2"}, args...)...))
		}
		login := map[string]string{"tenant_id": tenancy.NewID(), "email": "a@b.example", "password": "whatever password"}
		newClient(t, as[0].URL).call("POST", "/v1/login", login, http.StatusUnauthorized)
		newClient(t, as[1].URL).call("POST", "/v1/login", login, http.StatusUnauthorized)
		newClient(t, as[0].URL).call("POST", "/v1/login", login, http.StatusTooManyRequests)
		newClient(t, as[1].URL).call("POST", "/v1/login", login, http.StatusTooManyRequests)
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		check(t, "-db", filepath.Join(dir, "shared.db"), "-kek", filepath.Join(dir, "kek.json"))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		check(t, "-db", db.DSN(), "-owner-db", db.OwnerDSN(), "-kek", filepath.Join(t.TempDir(), "kek.json"))
	})
}
