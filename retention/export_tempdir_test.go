package retention_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

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
