// Package vault encrypts what socialcrm must keep secret at rest (OAuth
// tokens above all) with a data key per tenant, so that one tenant's
// ciphertext never opens for another and a tenant's data can be erased
// everywhere, backups included, by destroying its key.
//
// It is envelope encryption with Tink (github.com/tink-crypto/tink-go/v2):
// a key-encryption key (KEK), held by a KMS or in a local key file, wraps
// one AES-256-GCM data keyset per tenant, stored in the tenant-owned table
// socialcrm_vault_keys. Every value is sealed with associated data binding
// it to its tenant, record and field.
//
//	kek, err := vault.KMS("gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k")
//	// or, on one machine, in clear: kek, err := insecurekeyfile.Open("/etc/socialcrm/kek.json")
//	v, err := vault.New(db, kek, vault.WithColumns(social.SealedColumns()...))
//
//	// ctx carries the tenant (tenancy.WithPrincipal); the binding names the row and column.
//	b := vault.Binding{Record: conn.ID, Field: "access_token"}
//	conn.AccessToken, err = v.Seal(ctx, []byte(tok.AccessToken), b) // a vault.Sealed, stored in a BLOB column
//
//	secret, err := v.Open(ctx, conn.AccessToken, b) // a vault.Secret: prints as [REDACTED]
//	defer secret.Wipe()
//	req.Header.Set("Authorization", "Bearer "+string(secret.Reveal()))
//
// Run the vault's migrations (Migrations) with tenancy's, and register its
// models with the tenancy Guard (Models).
//
// # Keys, rotation and erasure
//
// The first Seal (or Index, or EnsureKey) for a tenant creates its keys.
// RotateKey adds a new primary data key; older keys keep opening what they
// sealed, and Reseal re-encrypts the columns declared with WithColumns in
// batches, resumably (the key id inside each Sealed marks what is done).
// RotateKEK rewraps every tenant's keys with a new key-encryption key (or
// version) without touching sealed values. DestroyKey crypto-shreds a
// tenant: its keys leave the database and every value sealed for it fails
// with ErrKeyDestroyed.
//
// Destroying a key does not reach backups, which still hold the wrapped key.
// Retiring the key-encryption key version that wrapped it does: to erase a
// tenant from backups too, after DestroyKey,
//
//  1. add a key-encryption key version (insecurekeyfile.KeyFile.Rotate, or rotate the KMS
//     key) and make sure every process uses it;
//  2. run RotateKEK as the system principal (tenancy.System), which rewraps
//     every live tenant;
//  3. retire the old version (insecurekeyfile.KeyFile.Retire, or disable and destroy the
//     KMS key version).
//
// From then on no copy of the database made before step 2 opens anything
// without the retired version, for any tenant. To restore such a backup,
// take socialcrm_vault_keys from the live database, where every surviving
// tenant's keys are wrapped with the current version. Doing the three
// steps on a schedule no longer than the backup retention (30, 35 or 90
// days) bounds how long an erased tenant survives in backups.
//
// # Searchable values
//
// Index returns a keyed blind index (HMAC-SHA256, per tenant and field) of
// an identifier such as an e-mail address or phone number, normalized by
// the caller, to store beside its Sealed value and look up by equality. It
// leaks equality within one tenant's field and nothing else; see Index.
//
// # Cache
//
// Unwrapping a tenant's keys costs a database read and a KEK call (a KMS
// round trip), so the unwrapped keys are cached per tenant, at most
// WithCacheSize tenants for at most WithCacheMaxAge (defaults 10,000 and
// five minutes). RotateKey and DestroyKey drop the tenant's entry in this
// process at once. Other processes learn of it when their entry expires:
// after DestroyKey another process may go on opening the tenant's values
// for up to its max age, and after RotateKey go on sealing with the
// previous key for as long (Open reloads at once when it meets an unknown
// key id). Lower the max age where that window matters. An Opener
// (Vault.Opener), which opens a batch such as a page of records, keeps the
// keys it looked up for that batch: a DestroyKey in this process during
// the batch takes effect at the next one.
//
// # Concurrency
//
// A Vault, an insecurekeyfile.KeyFile and the tink.AEAD returned by KMS are safe for
// concurrent use. Several processes may share a database: the first Seal for
// a tenant creates its keys exactly once, and rotations and destructions
// are serialized per tenant by the database. Sealed and Secret are values;
// copies of a Secret share its bytes, and the caller owns the Secret Open
// returns.
//
// The vault writes its keys through the db given to New, in transactions
// of its own. On SQLite, which has one writer, a first Seal or a rotation
// from inside a write transaction of the caller on another connection waits
// for that transaction; create tenants' keys beforehand (EnsureKey, for
// example at sign-up). Reads of the key table on SQLite do not wait.
//
// # Errors
//
// Open fails with one opaque error, ErrOpen, whatever the cause (another
// tenant's or record's value, tampering, an unknown key, a retired KEK),
// except ErrKeyDestroyed for a crypto-shredded tenant, which matches ErrOpen
// too. tenancy.ErrNoTenant, tenancy.ErrForbidden and tenancy.ErrNotSystem
// come from the context's principal, ErrKEK from a key-encryption key that
// cannot unwrap a tenant's keys, ErrInvalidBinding from an incomplete
// Binding; database errors are wrapped. Match them with errors.Is:
//
//	secret, err := v.Open(ctx, conn.AccessToken, b)
//	switch {
//	case errors.Is(err, vault.ErrKeyDestroyed):
//		// the tenant was erased: treat the connection as gone
//	case errors.Is(err, vault.ErrOpen):
//		// not this row's token: reconnect, and look into how it got here
//	case err != nil:
//		return fmt.Errorf("open token: %w", err) // database, context, …
//	}
//
// # Security
//
// A local key file protects much less than a KMS. Whoever can read the file
// and the database, or a backup holding both, can open every tenant's
// values; the file's mode 0600 only keeps other local users out. Keep it on
// another disk than the database and out of the database's backups, or
// crypto-shredding reaches no backup at all. With a KMS the key-encryption
// key never leaves the KMS, every unwrap is an audited KMS call, and
// retiring a key version is the KMS's job.
//
// Secret redacts itself in every fmt verb, String, GoString, JSON, text
// marshalling and slog; only Reveal gives the bytes, and Wipe zeroes them.
// It cannot stop reflection-based dumpers that read unexported fields
// through pointers (testify's diffs, go-spew, debuggers) or copies the
// caller makes (string(secret.Reveal())). Sealed prints its key id and
// length, never its ciphertext. Key rotation, KEK rotation, key creation
// and destruction are written to the tenant's tenancy audit log, with key
// ids but no key material.
//
// AuditKeys keys those audit logs: a random HMAC-SHA-256 PRF keyset, wrapped
// by the key-encryption key in TableAuditKey, from which Tink's PRF derives
// one key per tenant; each audit entry carries an HMAC-SHA-256 under its
// tenant's key, which a database writer without the key-encryption key
// cannot compute. The audit key is rewrapped by RotateKEK and is not
// destroyed with a tenant's keys, so a log kept after a purge stays
// verifiable. AuditLog hands the keyed log to code that holds a Vault.
//
// Tink's associated data binds each data keyset to its tenant, so a wrapped
// keyset copied to another tenant's row does not unwrap. The vault logs (to
// the WithLogger logger) tenant ids and key ids, never plaintext,
// ciphertext or keys.
//
// # Testing
//
// There is no vaulttest package: a Vault over a test database is the real
// thing, and cheap. Use a fresh Tink AEAD as the key-encryption key
// (keyset.NewHandle(aead.AES256GCMKeyTemplate()) and aead.New), an insecurekeyfile.KeyFile
// in t.TempDir, or Tink's fake KMS (github.com/tink-crypto/tink-go/v2/testing/fakekms)
// registered with registry.RegisterKMSClient to drive KMS. WithClock and
// WithCacheMaxAge let a test expire the cache without sleeping.
package vault
