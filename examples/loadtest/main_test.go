package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSmoke runs the load test for two seconds against a server it starts:
// every request must succeed and the summary must carry every figure.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	var out, errs bytes.Buffer
	err := run(t.Context(), []string{"-duration", "2s", "-concurrency", "4"}, &out, &errs)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out.String(), errs.String())
	for _, name := range []string{"requests_per_second:", "p50_ms:", "p99_ms:", "errors: 0", "server_peak_rss_kb:", "requests_webhook:", "requests_write:"} {
		require.Contains(t, out.String(), name)
	}
	require.False(t, strings.Contains(out.String(), "requests: 0\n"), "no request was made")
}

func TestLoopbackOnly(t *testing.T) {
	require.NoError(t, loopbackOnly("http://127.0.0.1:8080"))
	require.NoError(t, loopbackOnly("http://localhost:8080"))
	require.Error(t, loopbackOnly("http://example.com"))
	require.Error(t, loopbackOnly("http://10.0.0.1:80"))
}

// TestFlags: several targets must all be on loopback; several replicas
// need PostgreSQL.
func TestFlags(t *testing.T) {
	var out, errs bytes.Buffer
	err := run(t.Context(), []string{"-target", "http://127.0.0.1:1,http://example.com"}, &out, &errs)
	require.ErrorContains(t, err, "loopback")
	err = run(t.Context(), []string{"-replicas", "2"}, &out, &errs)
	require.ErrorContains(t, err, "PostgreSQL")
	err = run(t.Context(), []string{"-pid", "x"}, &out, &errs)
	require.ErrorContains(t, err, "-pid")
}
