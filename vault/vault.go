package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// Vault seals and opens values with per-tenant data keys wrapped by a
// key-encryption key. Create it with New; a Vault is safe for concurrent
// use.
type Vault struct {
	db        bun.IDB
	keks      atomic.Pointer[keks]
	now       func() time.Time
	realClock bool // now is time.Now: ages can use the monotonic clock alone
	log       *slog.Logger
	cache     *cache
	columns   []Column
	adBuf     sync.Pool // *[]byte for associated data, reused across calls
	auditKey  atomic.Pointer[AuditKeys]
}

// keks is the key-encryption key in use and, after RotateKEK, the one it
// replaced, which still unwraps data keys that were not rewrapped yet.
type keks struct {
	current, previous tink.AEAD
}

// Defaults of the options.
const (
	DefaultCacheSize   = 10000
	DefaultCacheMaxAge = 5 * time.Minute
)

// Option configures a Vault.
type Option func(*options) error

type options struct {
	now     func() time.Time
	log     *slog.Logger
	size    int
	maxAge  time.Duration
	columns []Column
}

// WithClock sets the clock for timestamps and cache ages (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("vault: WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithLogger sets the logger (default: discard). The vault logs key
// creation, rotation and destruction, and data keys that the
// key-encryption key cannot unwrap; never plaintext, ciphertext or keys.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithCacheSize bounds how many tenants' unwrapped keys are cached (default
// DefaultCacheSize). It must be at least 1.
func WithCacheSize(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("vault: WithCacheSize: must be at least 1, got %d", n)
		}
		o.size = n
		return nil
	}
}

// WithCacheMaxAge bounds how long unwrapped keys stay cached (default
// DefaultCacheMaxAge). It is also how long another process may keep using
// a tenant key that this process rotated or destroyed. It must be positive.
func WithCacheMaxAge(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("vault: WithCacheMaxAge: must be positive, got %s", d)
		}
		o.maxAge = d
		return nil
	}
}

// WithColumns declares the columns that hold Sealed values, so that Reseal
// can re-encrypt them after a key rotation. Each package that stores
// Sealed values exposes its columns for the application to pass here.
func WithColumns(cols ...Column) Option {
	return func(o *options) error {
		for _, c := range cols {
			if err := c.validate(); err != nil {
				return err
			}
			for _, d := range o.columns {
				if d.Table == c.Table && d.Sealed == c.Sealed {
					return fmt.Errorf("vault: WithColumns: %s.%s declared twice", c.Table, c.Sealed)
				}
			}
			o.columns = append(o.columns, c)
		}
		return nil
	}
}

// New returns a Vault storing tenant keys in db (a *bun.DB, normally; see
// the package documentation for transactions) and wrapping them with kek,
// the key-encryption key: KMS for a key in a key-management service,
// insecurekeyfile.Open for a local key file, or any tink.AEAD.
//
// db must have the vault's migrations applied (Migrations).
func New(db bun.IDB, kek tink.AEAD, opts ...Option) (*Vault, error) {
	if db == nil {
		return nil, errors.New("vault: New: nil db")
	}
	if kek == nil {
		return nil, errors.New("vault: New: nil key-encryption key")
	}
	o := options{size: DefaultCacheSize, maxAge: DefaultCacheMaxAge}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	v := &Vault{db: db, now: o.now, log: o.log, cache: newCache(o.size, o.maxAge), columns: o.columns}
	if v.now == nil {
		v.now, v.realClock = time.Now, true
	}
	v.keks.Store(&keks{current: kek})
	return v, nil
}

// Seal encrypts plaintext for the context's tenant, bound to b. The first
// Seal for a tenant creates its data key. Seal does not keep or modify
// plaintext.
//
// It fails with tenancy.ErrNoTenant without a tenant in ctx,
// ErrInvalidBinding for an incomplete b, and ErrKeyDestroyed once the
// tenant's key was destroyed.
func (v *Vault) Seal(ctx context.Context, plaintext []byte, b Binding) (Sealed, error) {
	if err := b.validate(); err != nil {
		return Sealed{}, err
	}
	tid, k, err := v.keys(ctx, true)
	if err != nil {
		return Sealed{}, err
	}
	if k.destroyed {
		return Sealed{}, ErrKeyDestroyed
	}
	ad := v.sealedAD(tid, b)
	ct, err := k.aead.Encrypt(plaintext, *ad)
	v.adBuf.Put(ad)
	if err != nil {
		return Sealed{}, fmt.Errorf("vault: seal: %w", err)
	}
	return Sealed{ct: ct}, nil
}

// Open decrypts s, which must have been sealed for the context's tenant
// with the same binding b. The caller owns the returned Secret; Wipe it
// when done.
//
// Every failure to decrypt is ErrOpen, which says nothing about the cause;
// a destroyed tenant key is ErrKeyDestroyed (which matches ErrOpen too).
// Without a tenant in ctx Open fails with tenancy.ErrNoTenant, and a
// database failure is returned as such.
func (v *Vault) Open(ctx context.Context, s Sealed, b Binding) (Secret, error) {
	o := Opener{v: v, ctx: ctx}
	buf, _ := v.adBuf.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	o.ad = (*buf)[:0]
	sec, err := o.Open(s, b)
	*buf = o.ad
	v.adBuf.Put(buf)
	return sec, err
}

// Opener opens several values of the context's tenant — typically the
// sealed fields of a page of records — as Open does, looking the tenant's
// keys up once, at its first Open, instead of once per value, and reusing
// one buffer for the associated data. Make one per batch of work (a page,
// a record) with Vault.Opener: it keeps the keys it found, so it does not
// see the tenant's keys destroyed after its first Open; a value that names
// a key id they lack (one rotated in since) sends it back to the cache,
// and from there the way Open goes. An Opener is not safe for concurrent
// use.
type Opener struct {
	v   *Vault
	ctx context.Context
	tid string
	k   *tenantKeys
	ad  []byte
}

// Opener returns an Opener of values of ctx's tenant.
func (v *Vault) Opener(ctx context.Context) Opener { return Opener{v: v, ctx: ctx} }

// Open decrypts s as Vault.Open does, with the same errors.
func (o *Opener) Open(s Sealed, b Binding) (Secret, error) {
	if err := b.validate(); err != nil {
		return Secret{}, err
	}
	if !wellFormed(s.ct) {
		return Secret{}, ErrOpen
	}
	if o.k == nil {
		tid, k, err := o.v.keys(o.ctx, false)
		if err != nil {
			return Secret{}, openError(err)
		}
		o.tid, o.k = tid, k
	}
	k := o.k
	if !k.destroyed && !k.has(s.KeyID()) {
		// The keys kept may be older than the cache's (a rotation in this
		// process): from here on, Open's own path.
		_, cur, err := o.v.keys(o.ctx, false)
		if err != nil {
			return Secret{}, openError(err)
		}
		k, o.k = cur, cur
	}
	if k.destroyed {
		return Secret{}, ErrKeyDestroyed
	}
	if !k.has(s.KeyID()) {
		// Another process may have rotated the key since it was cached:
		// reload, but not again within missReloadInterval of a reload that
		// a miss caused and that did not find the key it was made for, so
		// that forged or foreign values cannot turn every Open into a
		// database read and two key-encryption-key calls. A reload that
		// found its key (a rotation elsewhere) does not hold the next one
		// back: another process may rotate again at once.
		if k.afterMiss && o.v.age(k.loaded) < missReloadInterval {
			return Secret{}, ErrOpen
		}
		var err error
		if k, err = o.v.loadAfterMiss(o.ctx, o.tid, s.KeyID()); err != nil {
			return Secret{}, openError(err)
		}
		o.k = k
		if k.destroyed {
			return Secret{}, ErrKeyDestroyed
		}
	}
	o.ad = appendLengthPrefixed(o.ad[:0], adSealed, o.tid, b.Record, b.Field)
	pt, err := k.aead.Decrypt(s.ct, o.ad)
	if err != nil {
		return Secret{}, ErrOpen
	}
	return NewSecret(pt), nil
}

// openError maps key-loading failures to what Open may say.
func openError(err error) error {
	if errors.Is(err, errNoKey) || errors.Is(err, ErrKEK) {
		return ErrOpen
	}
	return err
}

// EnsureKey creates the context tenant's data key if it has none and
// returns the id of its primary key. Call it outside any transaction (for
// example when a tenant signs up) to keep the first Seal from writing.
func (v *Vault) EnsureKey(ctx context.Context) (uint32, error) {
	_, k, err := v.keys(ctx, true)
	if err != nil {
		return 0, err
	}
	if k.destroyed {
		return 0, ErrKeyDestroyed
	}
	return k.primary, nil
}

// keys returns the context tenant's keys, from the cache when it can. With
// create it creates the tenant's keys when there are none; without, it
// fails with errNoKey.
func (v *Vault) keys(ctx context.Context, create bool) (string, *tenantKeys, error) {
	// Fast path: only validated tenant ids are ever cached.
	if p, ok := tenancy.FromContext(ctx); ok && p.TenantID != "" {
		if k, ok := v.cache.get(p.TenantID, v.age); ok {
			return p.TenantID, k, nil
		}
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return "", nil, err
	}
	k, err := v.load(ctx, tid, create)
	return tid, k, err
}

// reload reads the tenant's keys from the database, bypassing the cache.
func (v *Vault) reload(ctx context.Context, tid string) (*tenantKeys, error) {
	return v.load(ctx, tid, false)
}

// missReloadInterval bounds how often an Open of a value under an unknown
// key id reloads a tenant's keys.
const missReloadInterval = time.Second

// loadAfterMiss reloads the tenant's keys because a value named key id
// the cache did not have, and marks the entry so when the reload did not
// find that key either.
func (v *Vault) loadAfterMiss(ctx context.Context, tid string, id uint32) (*tenantKeys, error) {
	return v.loadMarked(ctx, tid, false, id)
}

// load reads (and with create, creates) the tenant's keys and caches them.
func (v *Vault) load(ctx context.Context, tid string, create bool) (*tenantKeys, error) {
	return v.loadMarked(ctx, tid, create, 0)
}

// loadMarked loads the tenant's keys; missed, when not 0, is the key id
// whose absence from the cache made the load, and the entry is marked
// afterMiss when the keys read do not hold it either.
func (v *Vault) loadMarked(ctx context.Context, tid string, create bool, missed uint32) (*tenantKeys, error) {
	gen := v.cache.generation()
	row, err := v.readRow(ctx, tid)
	if errors.Is(err, errNoKey) && create {
		row, err = v.createRow(ctx, tid)
	}
	if err != nil {
		return nil, err
	}
	k, err := v.unwrap(tid, row)
	if err != nil {
		return nil, err
	}
	k.afterMiss = missed != 0 && !k.has(missed)
	v.cache.put(tid, k, gen, k.loaded)
	return k, nil
}

// age returns how long ago t was, on the monotonic clock when the vault
// runs on the real one (one clock read instead of two).
func (v *Vault) age(t time.Time) time.Duration {
	if v.realClock {
		return time.Since(t)
	}
	return v.now().Sub(t)
}

// sealedAD returns the associated data of a sealed value in a pooled
// buffer; put it back into v.adBuf after use. Tink does not keep it.
func (v *Vault) sealedAD(tid string, b Binding) *[]byte {
	buf, _ := v.adBuf.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	*buf = appendLengthPrefixed((*buf)[:0], adSealed, tid, b.Record, b.Field)
	return buf
}
