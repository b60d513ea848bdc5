package crm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/socialcrm/socialcrm/vault"
)

// sealedField is one personal field of a record: its plaintext, which the
// Go API carries and the database never holds, and its sealed column. The
// plaintext is a string (text) or any value stored as JSON (value, a
// pointer). The vault binds the ciphertext to tenant, record and name, so
// that it opens nowhere else.
type sealedField struct {
	name   string
	sealed *vault.Sealed
	text   *string
	value  any
}

// sealer is a record with sealed fields.
type sealer interface {
	sealedFields() []sealedField
}

// emptyJSON are the encodings of a value that holds nothing: such a field
// is stored as NULL, not sealed.
var emptyJSON = [][]byte{[]byte("null"), []byte("{}"), []byte("[]"), []byte(`""`)}

// sealFields seals each field of record id (outside any write
// transaction: a tenant's first seal creates its keys). An empty value is
// stored as NULL.
func (s *Store) sealFields(ctx context.Context, kind, id string, fs []sealedField) error {
	for _, f := range fs {
		var b []byte
		if f.text != nil {
			b = []byte(*f.text)
		} else {
			var err error
			if b, err = json.Marshal(f.value); err != nil {
				return fmt.Errorf("crm: seal %s %s: %w", kind, f.name, err)
			}
			for _, e := range emptyJSON {
				if bytes.Equal(b, e) {
					b = nil
					break
				}
			}
		}
		if len(b) == 0 {
			*f.sealed = vault.Sealed{}
			continue
		}
		sealed, err := s.vault.Seal(ctx, b, vault.Binding{Record: id, Field: f.name})
		if err != nil {
			return fmt.Errorf("crm: seal %s %s: %w", kind, f.name, err)
		}
		*f.sealed = sealed
	}
	return nil
}

// openFields opens each sealed field of record id into its plaintext; a
// NULL column opens as the empty value.
func (s *Store) openFields(ctx context.Context, kind, id string, fs []sealedField) error {
	op := s.vault.Opener(ctx)
	return openFieldsWith(&op, kind, id, fs)
}

// openFieldsWith is openFields with an Opener shared by the records of a
// page: the tenant's keys are looked up once for all of them.
func openFieldsWith(op *vault.Opener, kind, id string, fs []sealedField) error {
	for _, f := range fs {
		if f.sealed.IsZero() {
			if f.text != nil {
				*f.text = ""
			}
			continue
		}
		sec, err := op.Open(*f.sealed, vault.Binding{Record: id, Field: f.name})
		if err != nil {
			return fmt.Errorf("crm: open %s %s %s: %w", kind, id, f.name, err)
		}
		pt := sec.Reveal()
		if f.text != nil {
			*f.text = string(pt)
		} else if err := json.Unmarshal(pt, f.value); err != nil {
			sec.Wipe()
			return fmt.Errorf("crm: open %s %s %s: malformed plaintext", kind, id, f.name)
		}
		sec.Wipe()
	}
	return nil
}

// sealRecord seals rec's fields when it has any.
func sealRecord(ctx context.Context, s *Store, kind string, rec any, id string) error {
	if sr, ok := rec.(sealer); ok {
		return s.sealFields(ctx, kind, id, sr.sealedFields())
	}
	return nil
}

// openRecord opens rec's sealed fields when it has any.
func openRecord(ctx context.Context, s *Store, kind string, rec any, id string) error {
	if sr, ok := rec.(sealer); ok {
		return s.openFields(ctx, kind, id, sr.sealedFields())
	}
	return nil
}

// indexThread keys the blind index of conversation thread ids apart.
const indexThread = "thread_id"

// ensureKeys creates the context tenant's vault keys if needed, before a
// write transaction that seals (a tenant's first seal creates its keys,
// which must not happen inside another write transaction).
func (s *Store) ensureKeys(ctx context.Context) error {
	if _, err := s.vault.EnsureKey(ctx); err != nil {
		return fmt.Errorf("crm: vault keys: %w", err)
	}
	return nil
}
