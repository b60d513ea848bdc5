package retention_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// sealedConnections is the test connection table declared with its token
// as a sealed column that "opens" by stripping a prefix naming the tenant
// and row, so that the test sees which row and tenant Open was asked for.
func sealedConnections(open func(ctx context.Context, tenantID, id string, sealed []byte) (string, error)) retention.Category {
	return retention.Category{Name: "test.sealed_connection", Table: "test_connections", Time: "connected_at",
		Subject:    map[string]string{"account_id": "account_id"},
		Sealed:     []retention.SealedColumn{{Column: "token", As: "token_clear", Open: open}},
		LegalBasis: "contract", Purpose: "connections with a sealed value"}
}

// TestExportOpensSealedColumns: Export writes a category's sealed columns
// opened by the declaring package, under their exported names, in the JSON
// and CSV files; Open is asked for the request's tenant and each row's id;
// an Open failure fails the export; bad declarations are refused.
func TestExportOpensSealedColumns(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		tidA, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		insert(t, a, db, &[]conn{
			{ID: "c1", AccountID: "acct", Token: "sealed:" + tidA + ":c1:first, \"clear\"", ConnectedAt: epoch},
			{ID: "c2", AccountID: "acct", Token: "sealed:" + tidA + ":c2:second", ConnectedAt: epoch},
			{ID: "c3", AccountID: "other", Token: "sealed:" + tidA + ":c3:not hers", ConnectedAt: epoch},
		})
		insert(t, b, db, &[]conn{{ID: "c1", AccountID: "acct", Token: "sealed:beta:c1:other tenant", ConnectedAt: epoch}})

		var calls int
		fail := false
		open := func(ctx context.Context, tenantID, id string, sealed []byte) (string, error) {
			calls++
			if fail {
				return "", errors.New("key gone")
			}
			got, err := tenancy.TenantID(ctx)
			if err != nil || got != tenantID {
				return "", errors.New("context acts on another tenant")
			}
			rest, ok := strings.CutPrefix(string(sealed), "sealed:"+tenantID+":"+id+":")
			if !ok {
				return "", errors.New("wrong binding")
			}
			return rest, nil
		}
		e, err := retention.New(db, retention.WithClock(v.clock.Now), retention.WithStore(v.store))
		require.NoError(t, err)
		require.NoError(t, e.Register(sealedConnections(open)))
		require.NoError(t, e.Check(a))
		require.Equal(t, []string{"token as token_clear"}, e.DataMap().Categories[0].Sealed, "the data map says it")

		files := export(t, a, e, map[string]string{"account_id": "acct"})
		require.Equal(t, 2, calls, "one Open per row of the subject")
		require.Equal(t, `[
{"tenant_id":"`+tidA+`","id":"c1","account_id":"acct","token_clear":"first, \"clear\"","connected_at":"2026-11-23T12:00:00Z"},
{"tenant_id":"`+tidA+`","id":"c2","account_id":"acct","token_clear":"second","connected_at":"2026-11-23T12:00:00Z"}
]
`, files["test.sealed_connection.json"])
		require.Equal(t, "tenant_id,id,account_id,token_clear,connected_at\n"+
			tidA+",c1,acct,\"first, \"\"clear\"\"\",2026-11-23T12:00:00Z\n"+
			tidA+",c2,acct,second,2026-11-23T12:00:00Z\n", files["test.sealed_connection.csv"])
		for _, f := range files {
			require.NotContains(t, f, "sealed:", "no ciphertext")
			require.NotContains(t, f, "not hers")
			require.NotContains(t, f, "other tenant")
		}

		// No rows: the header still uses the exported name.
		files = export(t, a, e, map[string]string{"account_id": "nobody"})
		require.Equal(t, "tenant_id,id,account_id,token_clear,connected_at\n", files["test.sealed_connection.csv"])

		// A failure to open fails the export.
		fail = true
		r := verified(t, a, e, map[string]string{"account_id": "acct"})
		_, err = e.Export(a, r.ID, io.Discard)
		require.ErrorContains(t, err, "key gone")

		// Bad declarations.
		for _, c := range []retention.Category{
			func() retention.Category { c := sealedConnections(nil); return c }(),
			func() retention.Category { c := sealedConnections(open); c.Omit = []string{"token"}; return c }(),
			func() retention.Category { c := sealedConnections(open); c.Sealed[0].As = "a b"; return c }(),
		} {
			e2, err := retention.New(db)
			require.NoError(t, err)
			var ce *retention.CategoryError
			require.ErrorAs(t, e2.Register(c), &ce)
			require.Equal(t, "Sealed", ce.Field)
		}
	})
}

func verified(t *testing.T, ctx context.Context, e *retention.Engine, subject map[string]string) retention.Request {
	t.Helper()
	r, err := e.Submit(ctx, retention.Request{Kind: retention.KindAccess, Subject: subject})
	require.NoError(t, err)
	r, err = e.SetVerification(ctx, r.ID, retention.VerificationVerified)
	require.NoError(t, err)
	return r
}

// export runs an access export for subject and returns its files by name.
func export(t *testing.T, ctx context.Context, e *retention.Engine, subject map[string]string) map[string]string {
	t.Helper()
	r := verified(t, ctx, e, subject)
	var buf bytes.Buffer
	_, err := e.Export(ctx, r.ID, &buf)
	require.NoError(t, err)
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		files[f.Name] = string(b)
	}
	return files
}

// TestExportOpensSealedFields: a column that seals several fields together
// (SealedColumn.Fields) is exported as one column per field, in order, in
// the JSON and CSV files and in the header of an empty export, with the
// values OpenFields returns (nil as null); the data map names the fields;
// OpenFields without Fields, or Fields without OpenFields, is refused.
func TestExportOpensSealedFields(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		tidA, a := v.tenant(t, "alpha")
		insert(t, a, db, &[]conn{
			{ID: "c1", AccountID: "acct", Token: "sealed:" + tidA + ":c1:Ada|ada@example.com", ConnectedAt: epoch},
			{ID: "c2", AccountID: "acct", Token: "sealed:" + tidA + ":c2:Bo|", ConnectedAt: epoch},
		})
		openFields := func(ctx context.Context, tenantID, id string, sealed []byte) ([]any, error) {
			rest, ok := strings.CutPrefix(string(sealed), "sealed:"+tenantID+":"+id+":")
			if !ok {
				return nil, errors.New("wrong binding")
			}
			name, email, _ := strings.Cut(rest, "|")
			out := []any{name, email}
			if email == "" {
				out[1] = nil
			}
			return out, nil
		}
		c := sealedConnections(nil)
		c.Sealed[0] = retention.SealedColumn{Column: "token", Fields: []string{"name", "email"}, OpenFields: openFields}
		e, err := retention.New(db, retention.WithClock(v.clock.Now), retention.WithStore(v.store))
		require.NoError(t, err)
		require.NoError(t, e.Register(c))
		require.Equal(t, []string{"token as name, email"}, e.DataMap().Categories[0].Sealed)

		files := export(t, a, e, map[string]string{"account_id": "acct"})
		require.Equal(t, `[
{"tenant_id":"`+tidA+`","id":"c1","account_id":"acct","name":"Ada","email":"ada@example.com","connected_at":"2026-11-23T12:00:00Z"},
{"tenant_id":"`+tidA+`","id":"c2","account_id":"acct","name":"Bo","email":null,"connected_at":"2026-11-23T12:00:00Z"}
]
`, files["test.sealed_connection.json"])
		require.Equal(t, "tenant_id,id,account_id,name,email,connected_at\n"+
			tidA+",c1,acct,Ada,ada@example.com,2026-11-23T12:00:00Z\n"+
			tidA+",c2,acct,Bo,,2026-11-23T12:00:00Z\n", files["test.sealed_connection.csv"])
		files = export(t, a, e, map[string]string{"account_id": "nobody"})
		require.Equal(t, "tenant_id,id,account_id,name,email,connected_at\n", files["test.sealed_connection.csv"])

		for _, sc := range []retention.SealedColumn{
			{Column: "token", Fields: []string{"name"}},
			{Column: "token", Fields: []string{"a b"}, OpenFields: openFields},
			{Column: "token", OpenFields: openFields},
		} {
			bad := sealedConnections(nil)
			bad.Sealed[0] = sc
			e2, err := retention.New(db)
			require.NoError(t, err)
			var ce *retention.CategoryError
			require.ErrorAs(t, e2.Register(bad), &ce)
			require.Equal(t, "Sealed", ce.Field)
		}
	})
}
