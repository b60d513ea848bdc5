package crm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"

	"github.com/socialcrm/socialcrm/tenancy"
)

// Storage keeps the bytes of attachments; the Store keeps their metadata.
// Keys are plain names (letters, digits, '.', '_' and '-', no path
// separators) chosen by the Store, and every object belongs to one tenant:
// an implementation must keep tenants apart, so that the same key in two
// tenants names two objects. Get returns an error matching ErrNotFound for
// a missing object; Delete of a missing object succeeds, so that erasures
// can be retried. Implementations must be safe for concurrent use.
type Storage interface {
	// Put stores everything read from r under key, replacing any object
	// there, and returns the number of bytes written. An error leaves no
	// partial object behind.
	Put(ctx context.Context, tenantID, key string, r io.Reader) (int64, error)
	// Get opens the object for streaming; the caller closes it.
	Get(ctx context.Context, tenantID, key string) (io.ReadCloser, error)
	// Delete removes the object.
	Delete(ctx context.Context, tenantID, key string) error
}

// DirStorage is a Storage in a directory of the local file system: each
// tenant has a sub-directory named by its id, and each object is one file
// in it. Every path is resolved through an os.Root, so neither a key nor a
// symbolic link planted in the directory can reach a file outside it, and
// keys are checked before use. Writes go to a temporary file that is renamed
// into place, so a reader never sees half an object.
//
// DirStorage is safe for concurrent use. Close it when done.
type DirStorage struct {
	root *os.Root
}

var _ Storage = (*DirStorage)(nil)

// NewDirStorage opens dir (which must exist) as attachment storage.
func NewDirStorage(dir string) (*DirStorage, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("crm: open storage: %w", err)
	}
	return &DirStorage{root: root}, nil
}

// Close releases the directory.
func (d *DirStorage) Close() error { return d.root.Close() }

// keyRE is the form of a storage key: a plain file name that cannot be "."
// or "..", hidden, or contain a separator.
var keyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ErrBadKey is returned by DirStorage for a tenant id or key that is not a
// plain name: the request never reaches the file system.
var ErrBadKey = errors.New("crm: storage key is not a plain name")

func (d *DirStorage) path(tenantID, key string) (string, error) {
	if tenancy.ValidateID(tenantID) != nil || !keyRE.MatchString(key) {
		return "", ErrBadKey
	}
	return tenantID + "/" + key, nil
}

// Put implements Storage.
func (d *DirStorage) Put(ctx context.Context, tenantID, key string, r io.Reader) (int64, error) {
	name, err := d.path(tenantID, key)
	if err != nil {
		return 0, err
	}
	if err := d.root.MkdirAll(tenantID, 0o700); err != nil {
		return 0, fmt.Errorf("crm: storage: %w", err)
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := tenantID + "/.tmp-" + hex.EncodeToString(suffix[:])
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("crm: storage: %w", err)
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.root.Rename(tmp, name)
	}
	if err != nil {
		_ = d.root.Remove(tmp)
		return 0, fmt.Errorf("crm: storage: put: %w", err)
	}
	return n, nil
}

// Get implements Storage.
func (d *DirStorage) Get(_ context.Context, tenantID, key string) (io.ReadCloser, error) {
	name, err := d.path(tenantID, key)
	if err != nil {
		return nil, err
	}
	f, err := d.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: stored object", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("crm: storage: get: %w", err)
	}
	return f, nil
}

// Delete implements Storage.
func (d *DirStorage) Delete(_ context.Context, tenantID, key string) error {
	name, err := d.path(tenantID, key)
	if err != nil {
		return err
	}
	if err := d.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("crm: storage: delete: %w", err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
