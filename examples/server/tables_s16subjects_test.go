package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS16LoginAttemptsHoldNoAddress: the sign-in attempts table, outside
// the data map (s15ServerUnmapped), holds after a failed sign-in over
// HTTP neither the client's address nor an unkeyed hash of it (hex or
// base64 SHA-256, which a dictionary of the addresses reverses): only a
// hash keyed by a key the key-encryption key seals.
func TestS16LoginAttemptsHoldNoAddress(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := newClient(t, a.URL)
		login := map[string]string{"tenant_id": tenancy.NewID(), "email": "a@b.example", "password": "whatever password"}
		c.call("POST", "/v1/login", login, http.StatusUnauthorized)
		const addr = "127.0.0.1" // the test client's
		sum := sha256.Sum256([]byte(addr))
		var cells []string
		rows, err := a.db.QueryContext(context.Background(), "SELECT * FROM "+tableLoginAttempts)
		require.NoError(t, err)
		defer rows.Close()
		cols, err := rows.Columns()
		require.NoError(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				cells = append(cells, fmt.Sprint(v))
			}
		}
		require.NoError(t, rows.Err())
		require.NotEmpty(t, cells, "the attempt was counted")
		for _, cell := range cells {
			for _, leak := range []string{addr, hex.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:])} {
				require.False(t, strings.Contains(cell, leak), "%s holds the address or an unkeyed hash of it: %q", tableLoginAttempts, cell)
			}
		}
		var n int
		require.NoError(t, a.db.NewRaw("SELECT count(*) FROM ?", bun.Ident(tableLoginAttempts)).Scan(context.Background(), &n))
		require.Equal(t, 1, n)
	})
}
