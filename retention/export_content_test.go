package retention_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestExportContent pins the content of every file of an export, byte for
// byte: values that need escaping in JSON (quotes, <, >, &,
// control characters, U+2028) or quoting in CSV (commas, quotes, line
// breaks, leading spaces), NULLs, integers, timestamps with fractions, a
// category of several export batches and one that matches nobody. Both
// databases must give the same bytes; ids the database generates are
// replaced by placeholders.
func TestExportContent(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		tid, a := v.tenant(t, "alpha")
		p, ok := tenancy.FromContext(a)
		require.True(t, ok)

		tricky := "Ann \"the\" <first> & co, 東京\tTab\r\nCRLF \u2028 \x01 end"
		cs := []contact{
			{ID: "k1", Email: ptr("ann@example.com"), Name: tricky, UpdatedAt: epoch.Add(123456789 * time.Nanosecond)},
			{ID: "k2", Email: nil, Name: " leading space", UpdatedAt: epoch},
			{ID: "k3", Email: ptr("bob@example.com"), Name: "Bob", UpdatedAt: epoch},
		}
		insert(t, a, db, &cs)
		var ns []note
		for i := range 2006 { // k1 has 1,003: more than one export batch
			body := fmt.Sprintf("n%d", i)
			switch i % 100 {
			case 6:
				body = ""
			case 8:
				body = fmt.Sprintf("note %d, \"quoted\"\nsecond line", i)
			}
			ns = append(ns, note{ID: id("n", i), ContactID: []string{"k1", "k3"}[i%2], Body: body, CreatedAt: epoch.Add(time.Duration(i) * time.Millisecond)})
		}
		insert(t, a, db, &ns)
		ms := []metric{
			{ID: "m1", AccountID: "acct", Value: -9223372036854775808, Day: epoch},
			{ID: "m2", AccountID: "acct", Value: 9223372036854775807, Day: epoch.Add(24 * time.Hour)},
			{ID: "m3", AccountID: "other", Value: 1, Day: epoch},
		}
		insert(t, a, db, &ms)
		cn := []conn{{ID: "c1", AccountID: "acct", Token: "canary-token-must-not-be-exported", ConnectedAt: epoch}}
		insert(t, a, db, &cn)

		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindAccess,
			Subject: map[string]string{"email": "ann@example.com", "account_id": "acct", "member_id": p.MemberID}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		var buf bytes.Buffer
		m, err := v.e.Export(a, req.ID, &buf)
		require.NoError(t, err)

		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		require.NoError(t, err)
		var out bytes.Buffer
		for _, f := range zr.File {
			require.Equal(t, zip.Deflate, f.Method, f.Name)
			require.Equal(t, epoch, f.Modified.UTC(), f.Name)
			rc, err := f.Open()
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			fmt.Fprintf(&out, "=== %s (%d bytes)\n%s", f.Name, len(b), b)
		}
		got := strings.NewReplacer(tid, "TENANT", p.MemberID, "MEMBER", req.ID, "REQUEST").Replace(out.String())
		require.NotContains(t, got, "canary-token")
		golden(t, "export.golden", []byte(got)) // the same on every database

		var rows int64
		for _, c := range m.Categories {
			rows += c.Rows
		}
		require.EqualValues(t, 1+1003+2+1+1, rows) // contact, notes of k1, metrics, connection, member
	})
}
