package retention_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestExportContent pins the content of every file of an export, byte for
// byte, per database: values that need escaping in JSON (quotes, <, >, &,
// control characters, U+2028) or quoting in CSV (commas, quotes, line
// breaks, leading spaces), NULLs, integers, timestamps with fractions, a
// category of several export batches and one that matches nobody. Ids the
// database generates are replaced by placeholders.
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
		for i := range 1003 { // more than one export batch
			body := fmt.Sprintf("note %d, \"quoted\"\nsecond line", i)
			if i%100 == 7 {
				body = ""
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
		golden(t, "export."+db.Name+".golden", []byte(got))

		var rows int64
		for _, c := range m.Categories {
			rows += c.Rows
		}
		require.EqualValues(t, 1+502+2+1+1, rows) // contact, notes of k1, metrics, connection, member
	})
}

// failingWriter fails once more than limit bytes were written to it.
type failingWriter struct{ n, limit int }

var errWriterFull = errors.New("writer full")

func (w *failingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n > w.limit {
		return 0, errWriterFull
	}
	return len(p), nil
}

// TestExportTempDir checks that the CSV spool lives in WithTempDir's
// directory and that nothing is left there, whether the export succeeds or
// fails half-way, and that WithTempDir refuses what is not a directory.
func TestExportTempDir(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		_, err := retention.New(db, retention.WithTempDir(filepath.Join(t.TempDir(), "missing")))
		require.ErrorIs(t, err, fs.ErrNotExist)
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		_, err = retention.New(db, retention.WithTempDir(file))
		require.ErrorContains(t, err, "not a directory")

		dir := t.TempDir()
		v := newEnv(t, db, retention.WithTempDir(dir))
		_, a := v.tenant(t, "alpha")
		var ns []note
		for i := range 3000 {
			ns = append(ns, note{ID: id("n", i), ContactID: "k1", Body: strings.Repeat("x", 100) + fmt.Sprint(i), CreatedAt: epoch})
		}
		insert(t, a, db, &ns)
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindExport, Subject: map[string]string{"contact_id": "k1"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		_, err = v.e.Export(a, req.ID, &failingWriter{limit: 1000})
		require.ErrorIs(t, err, errWriterFull)
		left, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, left, "a failed export leaves no spool file")
		require.Empty(t, receipts(t, a, db, "retention.exported"), "a failed export is not receipted")

		m, err := v.e.Export(a, req.ID, io.Discard)
		require.NoError(t, err)
		require.EqualValues(t, 3000, m.Categories[1].Rows)
		left, err = os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, left)
	})
}
