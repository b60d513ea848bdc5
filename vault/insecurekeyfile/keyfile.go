// Package insecurekeyfile keeps a key-encryption key in a local file, in
// clear: a Tink keyset of AES-256-GCM keys that whoever reads the file can
// use. It is quarantined here, under a name that says what it is, as
// tink-go quarantines cleartext keysets in insecurecleartextkeyset: prefer
// a key-management service (vault.KMS). Use it for development, tests and
// single-machine installations that keep the file off the database's disk
// and out of its backups.
//
//	kek, err := insecurekeyfile.Open("/etc/socialcrm/kek.json")
//	if err != nil { … }
//	v, err := vault.New(db, kek)
//
// # Errors
//
// Open and Reload refuse, with ErrNotPrivate, a file that is not a regular
// file or that group or others may access.
package insecurekeyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// ErrNotPrivate is returned by Open and Reload for a key file that is not
// a regular file private to its owner.
var ErrNotPrivate = errors.New("insecurekeyfile: key file is not private to its owner")

// KeyFile is a key-encryption key kept in a local file: a cleartext Tink
// keyset (JSON) of AES-256-GCM keys, the embedded default for a single
// machine. It protects less than a KMS: whoever can read the file and the
// database can open every tenant's values, and a backup that holds both
// holds everything. Keep the file off the database's disk and out of its
// backups.
//
// A KeyFile is a tink.AEAD: it encrypts with its primary key and decrypts
// with any of its keys. Rotate adds a new primary version and Retire
// destroys the others; both rewrite the file atomically and change this
// KeyFile in place. A KeyFile is safe for concurrent use within a process;
// rotating the same file from several processes at once is not supported,
// and other processes see a rotation when they call Reload (Decrypt does it
// by itself when it fails and the file has changed).
type KeyFile struct {
	path string
	mu   sync.Mutex // serializes Rotate, Retire and Reload
	cur  atomic.Pointer[keyFileState]
}

type keyFileState struct {
	aead     tink.AEAD
	versions int
	modTime  time.Time
	size     int64
}

var _ tink.AEAD = (*KeyFile)(nil)

// Open opens the key file at path, creating it with one fresh key
// and mode 0600 when it does not exist (the directory must exist). It
// refuses, with ErrNotPrivate, a file that is not a regular file or
// that group or others may access.
func Open(path string) (*KeyFile, error) {
	k := &KeyFile{path: path}
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := k.load()
	if errors.Is(err, fs.ErrNotExist) {
		if err := create(path); err != nil {
			return nil, err
		}
		st, err = k.load()
	}
	if err != nil {
		return nil, err
	}
	k.cur.Store(st)
	return k, nil
}

// create writes a fresh keyset to path unless a file appeared there
// meanwhile (another process won: its key is used).
func create(path string) error {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return fmt.Errorf("insecurekeyfile: new key file: %w", err)
	}
	tmp, err := writeTemp(path, h)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// Link, unlike rename, never replaces an existing file.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("insecurekeyfile: create key file: %w", err)
	}
	return syncDir(path)
}

// Path returns the file's path.
func (k *KeyFile) Path() string { return k.path }

// Versions returns how many key versions the file holds: 1 after creation
// or Retire, one more after each Rotate.
func (k *KeyFile) Versions() int { return k.cur.Load().versions }

// Encrypt encrypts with the primary version.
func (k *KeyFile) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return k.cur.Load().aead.Encrypt(plaintext, associatedData)
}

// Decrypt decrypts with whichever version encrypted. When that fails and
// the file changed since it was read (another process rotated it), it
// reloads the file and tries once more.
func (k *KeyFile) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	st := k.cur.Load()
	pt, err := st.aead.Decrypt(ciphertext, associatedData)
	if err == nil {
		return pt, nil
	}
	if fi, serr := os.Stat(k.path); serr != nil || (fi.ModTime().Equal(st.modTime) && fi.Size() == st.size) {
		return nil, err
	}
	if rerr := k.Reload(); rerr != nil {
		return nil, err
	}
	return k.cur.Load().aead.Decrypt(ciphertext, associatedData)
}

// Reload reads the file again, picking up another process's Rotate or
// Retire.
func (k *KeyFile) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := k.load()
	if err != nil {
		return err
	}
	k.cur.Store(st)
	return nil
}

// Rotate adds a new key version to the file and makes it the primary: from
// now on this KeyFile encrypts with it and still decrypts with the older
// versions. Then call Vault.RotateKEK with this KeyFile, and Retire.
func (k *KeyFile) Rotate() error {
	return k.rewrite(func(m *keyset.Manager, _ *keyset.Handle) error {
		id, err := m.Add(aead.AES256GCMKeyTemplate())
		if err != nil {
			return err
		}
		return m.SetPrimary(id)
	})
}

// Retire destroys every version but the primary: whatever they wrapped,
// in the live database or in any backup of it, can no longer be unwrapped
// with this file. Call it only after RotateKEK has rewrapped every tenant
// with the primary version. The previous file is overwritten with zeros
// after the new one replaced it (best effort: journaling and
// copy-on-write file systems and SSDs may keep old blocks).
func (k *KeyFile) Retire() error {
	return k.rewrite(func(m *keyset.Manager, h *keyset.Handle) error {
		primary := h.KeysetInfo().GetPrimaryKeyId()
		for _, ki := range h.KeysetInfo().GetKeyInfo() {
			if ki.GetKeyId() != primary {
				if err := m.Delete(ki.GetKeyId()); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// rewrite reads the file, changes its keyset with fn and replaces the file
// atomically.
func (k *KeyFile) rewrite(fn func(m *keyset.Manager, h *keyset.Handle) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	h, _, err := readKeyFile(k.path)
	if err != nil {
		return err
	}
	m := keyset.NewManagerFromHandle(h)
	if err := fn(m, h); err != nil {
		return fmt.Errorf("insecurekeyfile: key file: %w", err)
	}
	if h, err = m.Handle(); err != nil {
		return fmt.Errorf("insecurekeyfile: key file: %w", err)
	}
	tmp, err := writeTemp(k.path, h)
	if err != nil {
		return err
	}
	old, oerr := os.OpenFile(k.path, os.O_WRONLY, 0)
	if err := os.Rename(tmp, k.path); err != nil {
		os.Remove(tmp)
		if oerr == nil {
			old.Close()
		}
		return fmt.Errorf("insecurekeyfile: replace key file: %w", err)
	}
	if err := syncDir(k.path); err != nil {
		return err
	}
	if oerr == nil {
		wipeFile(old)
	}
	st, err := k.load()
	if err != nil {
		return err
	}
	k.cur.Store(st)
	return nil
}

// wipeFile overwrites an unlinked file's contents with zeros.
func wipeFile(f *os.File) {
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	_, _ = f.WriteAt(make([]byte, fi.Size()), 0)
	_ = f.Sync()
}

// load reads and checks the file.
func (k *KeyFile) load() (*keyFileState, error) {
	h, fi, err := readKeyFile(k.path)
	if err != nil {
		return nil, err
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("insecurekeyfile: key file %s: %w", k.path, err)
	}
	return &keyFileState{aead: a, versions: h.Len(), modTime: fi.ModTime(), size: fi.Size()}, nil
}

func readKeyFile(path string) (*keyset.Handle, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("insecurekeyfile: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("insecurekeyfile: open key file: %w", err)
	}
	if !fi.Mode().IsRegular() || (runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0) {
		return nil, nil, fmt.Errorf("%w: %s has mode %s, want 0600", ErrNotPrivate, path, fi.Mode())
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(f))
	if err != nil {
		return nil, nil, fmt.Errorf("insecurekeyfile: key file %s: %w", path, err)
	}
	return h, fi, nil
}

// writeTemp writes h to a new file with mode 0600 beside path, synced, and
// returns its name.
func writeTemp(path string, h *keyset.Handle) (string, error) {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return "", fmt.Errorf("insecurekeyfile: write key file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("insecurekeyfile: write key file: %w", err)
	}
	name := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(buf.Bytes())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	clear(buf.Bytes())
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("insecurekeyfile: write key file: %w", err)
	}
	return name, nil
}

func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("insecurekeyfile: sync key file directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("insecurekeyfile: sync key file directory: %w", err)
	}
	return nil
}
