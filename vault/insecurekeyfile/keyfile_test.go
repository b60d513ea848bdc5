package insecurekeyfile_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

func TestKeyFileCreatedPrivateAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	kf, err := insecurekeyfile.Open(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "created with mode 0600")
	require.Equal(t, 1, kf.Versions())
	require.Equal(t, path, kf.Path())
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	ct, err := kf.Encrypt([]byte("data key"), []byte("ad"))
	require.NoError(t, err)
	again, err := insecurekeyfile.Open(path)
	require.NoError(t, err)
	pt, err := again.Decrypt(ct, []byte("ad"))
	require.NoError(t, err, "reopening uses the same key")
	require.Equal(t, "data key", string(pt))
	_, err = again.Decrypt(ct, []byte("other ad"))
	require.Error(t, err)

	// Group- or world-accessible files are refused.
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o666} {
		require.NoError(t, os.Chmod(path, mode))
		_, err := insecurekeyfile.Open(path)
		require.ErrorIs(t, err, insecurekeyfile.ErrNotPrivate, "mode %o", mode)
		require.ErrorIs(t, kf.Reload(), insecurekeyfile.ErrNotPrivate)
	}
	require.NoError(t, os.Chmod(path, 0o600))
	_, err = insecurekeyfile.Open(t.TempDir())
	require.ErrorIs(t, err, insecurekeyfile.ErrNotPrivate, "a directory is not a key file")

	_, err = insecurekeyfile.Open(filepath.Join(t.TempDir(), "missing-dir", "kek.json"))
	require.Error(t, err)
	garbage := filepath.Join(t.TempDir(), "garbage.json")
	require.NoError(t, os.WriteFile(garbage, []byte("{not a keyset"), 0o600))
	_, err = insecurekeyfile.Open(garbage)
	require.Error(t, err)
}

func TestKeyFileConcurrentCreation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	const n = 8
	kfs := make([]*insecurekeyfile.KeyFile, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kf, err := insecurekeyfile.Open(path)
			if err == nil {
				kfs[i] = kf
			}
		})
	}
	wg.Wait()
	ct, err := kfs[0].Encrypt([]byte("x"), nil)
	require.NoError(t, err)
	for i, kf := range kfs {
		require.NotNil(t, kf, "opener %d", i)
		_, err := kf.Decrypt(ct, nil)
		require.NoError(t, err, "every opener uses the one key that won the race")
	}
}

func TestKeyFileRotateAndRetire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	kf, err := insecurekeyfile.Open(path)
	require.NoError(t, err)
	otherProcess, err := insecurekeyfile.Open(path)
	require.NoError(t, err)
	old, err := kf.Encrypt([]byte("old"), nil)
	require.NoError(t, err)

	require.NoError(t, kf.Rotate())
	require.Equal(t, 2, kf.Versions())
	fresh, err := kf.Encrypt([]byte("new"), nil)
	require.NoError(t, err)
	require.NotEqual(t, old[1:5], fresh[1:5], "the new primary version encrypts")
	pt, err := kf.Decrypt(old, nil)
	require.NoError(t, err, "older versions still decrypt")
	require.Equal(t, "old", string(pt))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "rewritten with mode 0600")

	// Another process holding the file from before the rotation picks the
	// new version up when it meets it.
	require.Equal(t, 1, otherProcess.Versions())
	pt, err = otherProcess.Decrypt(fresh, nil)
	require.NoError(t, err)
	require.Equal(t, "new", string(pt))
	require.Equal(t, 2, otherProcess.Versions())

	require.NoError(t, kf.Retire())
	require.Equal(t, 1, kf.Versions())
	_, err = kf.Decrypt(old, nil)
	require.Error(t, err, "a retired version decrypts nothing")
	pt, err = kf.Decrypt(fresh, nil)
	require.NoError(t, err)
	require.Equal(t, "new", string(pt))
	reopened, err := insecurekeyfile.Open(path)
	require.NoError(t, err)
	require.Equal(t, 1, reopened.Versions())
	_, err = reopened.Decrypt(old, nil)
	require.Error(t, err, "the retired version is gone from the file")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1)
}
