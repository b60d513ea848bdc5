package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConfigRefusesBadValues: each malformed flag or environment variable
// is an error at start naming it, never a silent default.
func TestConfigRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"-addr", "8080"}, want: "-addr"},
		{env: map[string]string{"SOCIALCRM_ADDR": "nohostport"}, want: "-addr (SOCIALCRM_ADDR)"},
		{args: []string{"-db", ""}, want: "-db"},
		{args: []string{"-owner-db", "owner.db"}, want: "-owner-db"},
		{args: []string{"-kek", ""}, want: "-kek"},
		{args: []string{"-kek", "azure-kv://vault/key"}, want: "unknown KMS URI scheme"},
		{args: []string{"-public-url", "crm.example"}, want: "-public-url"},
		{env: map[string]string{"SOCIALCRM_PUBLIC_URL": "ftp://crm.example"}, want: "-public-url (SOCIALCRM_PUBLIC_URL)"},
		{args: []string{"-jobs-interval", "10ms"}, want: "-jobs-interval"},
		{env: map[string]string{"SOCIALCRM_JOBS_INTERVAL": "hourly"}, want: "SOCIALCRM_JOBS_INTERVAL: invalid value \"hourly\""},
		{args: []string{"-phone-region", "usa"}, want: "-phone-region"},
		{env: map[string]string{"SOCIALCRM_PHONE_REGION": "12"}, want: "-phone-region (SOCIALCRM_PHONE_REGION)"},
		{args: []string{"-login-rate", "-1"}, want: "-login-rate"},
		{env: map[string]string{"SOCIALCRM_LOGIN_RATE": "many"}, want: "SOCIALCRM_LOGIN_RATE: invalid value"},
		{env: map[string]string{"SOCIALCRM_SESSION_KEY": "short"}, want: "SOCIALCRM_SESSION_KEY: must be at least 32 bytes"},
		{env: map[string]string{"TIKTOK_CLIENT_KEY": "key-only"}, want: "TIKTOK_CLIENT_SECRET together"},
		{env: map[string]string{"META_APP_SECRET": "secret-only"}, want: "META_APP_SECRET together"},
		{args: []string{"stray"}, want: "unexpected arguments"},
		{args: []string{"-no-such-flag"}, want: "flag provided but not defined"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		_, err := parseConfig(tc.args, io.Discard)
		require.ErrorContains(t, err, tc.want, "args %v env %v", tc.args, tc.env)
		for k := range tc.env {
			t.Setenv(k, "")
		}
	}
	// A flag wins over its variable; a database URL's password stays out
	// of the error.
	t.Setenv("SOCIALCRM_LOGIN_RATE", "5")
	c, err := parseConfig([]string{"-login-rate", "7"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 7, c.LoginRate)
	t.Setenv("SOCIALCRM_LOGIN_RATE", "")
	t.Setenv("SOCIALCRM_OWNER_DATABASE_URL", "mysql://u:hunter2@h/db")
	_, err = parseConfig(nil, io.Discard)
	require.ErrorContains(t, err, "-owner-db")
	require.NotContains(t, err.Error(), "hunter2")
}

// TestHelpListsEnvironment: -h names every flag's variable and the
// variables without a flag.
func TestHelpListsEnvironment(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, env := range flagEnv {
		require.Contains(t, out.String(), "["+env+"]")
	}
	for _, e := range envOnly {
		require.Contains(t, out.String(), e.Name)
	}
}

// TestDefaultPublicURL: listening on every interface defaults the public
// URL to loopback and says how to change it; -public-url wins.
func TestDefaultPublicURL(t *testing.T) {
	u, note := defaultPublicURL("", &net.TCPAddr{IP: net.IPv4zero, Port: 8098})
	require.Equal(t, "http://127.0.0.1:8098", u)
	require.Contains(t, note, "-public-url")
	u, note = defaultPublicURL("", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8098})
	require.Equal(t, "http://127.0.0.1:8098", u)
	require.NotEmpty(t, note)
	u, note = defaultPublicURL("", &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 8080})
	require.Equal(t, "http://192.168.1.5:8080", u)
	require.Empty(t, note)
	u, _ = defaultPublicURL("https://crm.example/", &net.TCPAddr{IP: net.IPv4zero, Port: 8098})
	require.Equal(t, "https://crm.example", u)
}

// TestListenOnEveryInterface: -addr 0.0.0.0:0 starts (the emulators'
// redirect URIs take the loopback public URL), says what to set for other
// machines, and answers on loopback.
func TestListenOnEveryInterface(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeMigrated(t, dir, "t.db")
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "0.0.0.0:0", "-db", filepath.Join(dir, "t.db"), "-kek", filepath.Join(dir, "kek.json")}, stdout, stderr)
	}()
	var port string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`listening on http://\S*:(\d+)`).FindStringSubmatch(stdout.String())
		if m != nil {
			port = m[1]
		}
		return m != nil
	}, 2*time.Minute, 20*time.Millisecond, "stderr: %s", stderr.String())
	require.Contains(t, stderr.String(), "set -public-url")
	resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	require.NoError(t, <-done)
}
