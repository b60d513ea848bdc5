package vault

import (
	"bytes"
	"context"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// The benchmarks come in pairs that scripts/bench divides:
//
//	ratio: vault_open_vs_tink_decrypt = BenchmarkVaultOpen / BenchmarkTinkDecrypt
//	ratio: vault_seal_vs_tink_encrypt = BenchmarkVaultSeal / BenchmarkTinkEncrypt
//
// Each pair seals or opens a 256-byte token with the same tenant keyset (the
// vault's cached primitive, and that primitive called directly with the
// same associated data), so the ratio is what the vault adds: the tenant
// from the context, the cache lookup, the associated data, the Secret.
// BenchmarkVaultOpenColdCache is a first open: the key row read from SQLite
// and unwrapped with a local key-encryption key.

type benchEnv struct {
	v     *Vault
	ctx   context.Context
	tid   string
	b     Binding
	token []byte
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	db := dbtest.SQLite(b, func(ctx context.Context, db *bun.DB) error {
		return migrations.Run(ctx, db, tenancy.Migrations(), Migrations())
	})
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		b.Fatal(err)
	}
	kek, err := aead.New(h)
	if err != nil {
		b.Fatal(err)
	}
	v, err := New(db, kek)
	if err != nil {
		b.Fatal(err)
	}
	tid := tenancy.NewID()
	e := &benchEnv{
		v:     v,
		ctx:   tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tid, Role: tenancy.RoleStaff}),
		tid:   tid,
		b:     Binding{Record: tenancy.NewID(), Field: "access_token"},
		token: bytes.Repeat([]byte("t"), 256),
	}
	if _, err := v.EnsureKey(e.ctx); err != nil {
		b.Fatal(err)
	}
	return e
}

// keys returns the cached tenant keys the vault uses.
func (e *benchEnv) keys(b *testing.B) *tenantKeys {
	_, k, err := e.v.keys(e.ctx, false)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func (e *benchEnv) ad() []byte { return lengthPrefixed(adSealed, e.tid, e.b.Record, e.b.Field) }

func BenchmarkVaultSeal(b *testing.B) {
	e := newBenchEnv(b)
	b.SetBytes(int64(len(e.token)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Seal(e.ctx, e.token, e.b); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTinkEncrypt(b *testing.B) {
	e := newBenchEnv(b)
	a, ad := e.keys(b).aead, e.ad()
	b.SetBytes(int64(len(e.token)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Encrypt(e.token, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVaultOpen(b *testing.B) {
	e := newBenchEnv(b)
	s, err := e.v.Seal(e.ctx, e.token, e.b)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(e.token)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Open(e.ctx, s, e.b); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTinkDecrypt(b *testing.B) {
	e := newBenchEnv(b)
	a, ad := e.keys(b).aead, e.ad()
	ct, err := a.Encrypt(e.token, ad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(e.token)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Decrypt(ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVaultOpenColdCache(b *testing.B) {
	e := newBenchEnv(b)
	s, err := e.v.Seal(e.ctx, e.token, e.b)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.v.cache.invalidate(e.tid)
		if _, err := e.v.Open(e.ctx, s, e.b); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVaultIndex and BenchmarkTinkPRF are a pair too: the blind index
// of an e-mail address through the vault (pooled HMACs keyed with the
// tenant's index key, indexkey.go), and Tink's PRF of the same key called
// directly on the same input, which allocates an HMAC per call.
func BenchmarkVaultIndex(b *testing.B) {
	e := newBenchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Index(e.ctx, "ada@example.com", "email"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTinkPRF(b *testing.B) {
	e := newBenchEnv(b)
	p := e.keys(b).index
	in := lengthPrefixed(adIndex, e.tid, "email", "ada@example.com")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ComputePRF(in, indexLen); err != nil {
			b.Fatal(err)
		}
	}
}
