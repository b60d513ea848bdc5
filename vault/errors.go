package vault

import "errors"

// Errors returned by the vault. Match them with errors.Is.
var (
	// ErrOpen is the one error Open returns when a value cannot be opened:
	// wrong tenant, record or field, a tampered or malformed ciphertext, an
	// unknown key, a data key the key-encryption key cannot unwrap. It never
	// says which, so that nobody probing with forged values learns anything.
	// ErrKeyDestroyed matches it too.
	ErrOpen = errors.New("vault: cannot open sealed value")

	// ErrKeyDestroyed is returned for every operation on a tenant whose data
	// key was destroyed by DestroyKey: its sealed values are gone for good.
	// errors.Is(err, ErrOpen) holds for it as well.
	ErrKeyDestroyed error = destroyedError{}

	// ErrKEK is returned by Seal, Index and the key operations when the
	// key-encryption key cannot unwrap the tenant's data key: the vault runs
	// with the wrong key-encryption key, or with one whose version that
	// wrapped the data key was retired. (Open reports this as ErrOpen and
	// logs it.)
	ErrKEK = errors.New("vault: the key-encryption key cannot unwrap the tenant's data key")

	// ErrInvalidBinding is returned when a Binding lacks its record or field.
	ErrInvalidBinding = errors.New("vault: invalid binding")
)

type destroyedError struct{}

func (destroyedError) Error() string { return "vault: tenant data key destroyed" }

// Is makes errors.Is(ErrKeyDestroyed, ErrOpen) true.
func (destroyedError) Is(target error) bool { return target == ErrOpen }
