package retention_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

// leakCanary starts the body of every note of TestExportSpoolLeaks.
const leakCanary = "SPOOLCANARY"

// openFiles returns the bytes of the files this process holds open under
// dir, read through their descriptors: what the disk holds of them, even
// unlinked.
func openFiles(t *testing.T, dir string) [][]byte {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var out [][]byte
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || !strings.HasPrefix(link, dir+string(filepath.Separator)) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil {
			out = append(out, b)
		}
	}
	return out
}

// readable returns what b shows of its content to one who reads it with
// no key: its bytes as they are, and the text of every deflate stream
// that starts at its beginning or after a zip local file header.
func readable(b []byte) [][]byte {
	out := [][]byte{b}
	starts := []int{0}
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("PK\x03\x04"))
		if j < 0 || i+j+30 > len(b) {
			break
		}
		h := b[i+j:]
		starts = append(starts, i+j+30+int(binary.LittleEndian.Uint16(h[26:]))+int(binary.LittleEndian.Uint16(h[28:])))
		i += j + 4
	}
	for _, s := range starts {
		if s < len(b) {
			text, _ := io.ReadAll(flate.NewReader(bytes.NewReader(b[s:]))) // a cut stream gives what it has
			out = append(out, text)
		}
	}
	return out
}

// spoolSpy is the client of an export: on each write it reads the spool
// files the export holds open under dir; after limit bytes it hangs up,
// cancelling the export's context.
type spoolSpy struct {
	t      *testing.T
	dir    string
	cancel context.CancelFunc
	limit  int
	n      int
	seen   [][]byte // the spools' bytes, as read at each write
}

var errSpyHungUp = errors.New("client hung up")

func (s *spoolSpy) Write(p []byte) (int, error) {
	s.seen = append(s.seen, openFiles(s.t, s.dir)...)
	s.n += len(p)
	if s.n > s.limit {
		s.cancel()
		return 0, errSpyHungUp
	}
	return len(p), nil
}

// TestExportSpoolLeaks: the CSV spool of a data-subject export holds no
// personal data readable without the export's key, which lives in memory
// only. The spool's bytes are read through the export's own descriptor
// while the archive streams (what a disk image taken then, or the blocks a
// crash leaves, would hold), inflated where they look like deflate, and
// searched for the canary every row holds; the export is then stopped by
// a client that hangs up. Nothing is left in the directory, and the audit
// log has the export's start and its interruption.
func TestExportSpoolLeaks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads open files through /proc/self/fd")
	}
	each(t, func(t *testing.T, db *dbtest.DB) {
		dir := t.TempDir()
		v := newEnv(t, db, retention.WithTempDir(dir))
		_, a := v.tenant(t, "alpha")
		var ns []note
		for i := range 3000 {
			noise := make([]byte, 100)
			_, _ = rand.Read(noise) // rows that do not compress away
			ns = append(ns, note{ID: id("n", i), ContactID: "k1", Body: leakCanary + hex.EncodeToString(noise), CreatedAt: epoch})
		}
		insert(t, a, db, &ns)
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindExport, Subject: map[string]string{"contact_id": "k1"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(a)
		defer cancel()
		spy := &spoolSpy{t: t, dir: dir, cancel: cancel, limit: 400 << 10}
		_, err = v.e.Export(ctx, req.ID, spy)
		require.ErrorIs(t, err, errSpyHungUp)

		var spooled int
		for _, b := range spy.seen {
			spooled = max(spooled, len(b))
			for _, text := range readable(b) {
				require.False(t, bytes.Contains(text, []byte(leakCanary)), "the spool holds personal data in clear")
			}
		}
		require.Greater(t, spooled, 64<<10, "the spool was read while in use")
		left, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, left, "nothing left in the temporary directory")
		require.Len(t, receipts(t, a, db, "retention.export_started"), 1)
		require.Len(t, receipts(t, a, db, "retention.export_interrupted"), 1)
		require.Empty(t, receipts(t, a, db, "retention.exported"))

		// A client that takes nothing: the begun export still ends in
		// the log, with 0 bytes.
		_, err = v.e.Export(a, req.ID, &failingWriter{limit: 0})
		require.ErrorIs(t, err, errWriterFull)
		require.Len(t, receipts(t, a, db, "retention.export_started"), 2)
		es := receipts(t, a, db, "retention.export_interrupted")
		require.Len(t, es, 2)
		require.Equal(t, "0", es[1].Metadata["bytes"])
	})
}
