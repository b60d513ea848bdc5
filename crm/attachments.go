package crm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Attachment is the metadata of a file attached to a record; its bytes are
// in the Storage given to the Store with WithStorage, under the key
// ID. Size is counted by the Store while the bytes stream in. No digest of
// the content is kept: one anybody could compute from a copy of the file
// would confirm against a backup that the tenant held that file; the
// sealed bytes are authenticated when they are opened.
type Attachment struct {
	bun.BaseModel `bun:"table:socialcrm_crm_attachments,alias:att"`
	Record
	// OwnerKind and OwnerID name the record the file is attached to
	// ("contact", "campaign", "invoice"…).
	OwnerKind string `bun:"owner_kind,notnull" json:"owner_kind"`
	OwnerID   string `bun:"owner_id,notnull" json:"owner_id"`
	// FileName is stored sealed; the bytes reach the Storage sealed too.
	FileName    string `bun:"-" json:"file_name"`
	ContentType string `bun:"content_type,notnull" json:"content_type"`
	Size        int64  `bun:"size,notnull" json:"size"`
	// ClientID is the client of the owner record when it is a client,
	// campaign, proposal or invoice, so that the client portal shows the
	// file to that client; empty otherwise.
	ClientID string `bun:"client_id,nullzero" json:"client_id,omitempty"`
	Author   string `bun:"author,notnull" json:"author"`

	FileNameSealed vault.Sealed `bun:"file_name_sealed" json:"-"`
}

func (a *Attachment) sealedFields() []sealedField {
	return []sealedField{{name: "file_name", sealed: &a.FileNameSealed, text: &a.FileName}}
}

// AttachmentInput is what Attach takes besides the bytes.
type AttachmentInput struct {
	OwnerKind   string `json:"owner_kind" validate:"required,max=40"`
	OwnerID     string `json:"owner_id" validate:"required,uuid"`
	FileName    string `json:"file_name" validate:"required,max=255"`
	ContentType string `json:"content_type" validate:"required,max=255"`
}

// DefaultMaxAttachmentSize is the largest attachment a Store accepts unless
// WithStorage says otherwise: 25 MiB.
const DefaultMaxAttachmentSize = 25 << 20

// WithStorage sets where attachment bytes are kept, and the largest size
// accepted (0 means DefaultMaxAttachmentSize). Without it, Attachments
// methods that touch bytes fail with ErrConfig.
func WithStorage(st Storage, maxSize int64) Option {
	return func(s *Store) error {
		if st == nil {
			return fmt.Errorf("%w: WithStorage: nil storage", ErrConfig)
		}
		if maxSize < 0 {
			return fmt.Errorf("%w: WithStorage: negative size limit", ErrConfig)
		}
		if maxSize == 0 {
			maxSize = DefaultMaxAttachmentSize
		}
		s.storage, s.maxAttachment = st, maxSize
		return nil
	}
}

// TooLargeError is returned by Attach when the bytes exceed the size limit.
// Nothing was stored. It matches ErrInvalid.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("crm: attachment larger than %d bytes", e.Limit)
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *TooLargeError) Is(target error) bool { return target == ErrInvalid }

// Attachments is the repository of attachments.
type Attachments struct{ s *Store }

// Attachments returns the repository of attachments.
func (s *Store) Attachments() *Attachments { return &Attachments{s} }

var attachmentKeys = keyset{name: "attachments", cols: []string{"id"}}

// ownerClient checks that the owner record exists and returns its client
// for the client-shared kinds; an owner kind that is not one of
// RecordKinds is a *ValidationError.
func (s *Store) ownerClient(ctx context.Context, tx bun.IDB, kind, id string) (string, error) {
	if err := lockRecord(ctx, tx, kind, id); err != nil { // repo.go
		return "", err
	}
	switch kind {
	case KindClient:
		_, err := get[Client](ctx, tx, kind, id)
		return id, err
	case KindCampaign:
		c, err := get[Campaign](ctx, tx, kind, id)
		return c.ClientID, err
	case KindProposal:
		p, err := get[Proposal](ctx, tx, kind, id)
		return p.ClientID, err
	case KindInvoice:
		i, err := get[Invoice](ctx, tx, kind, id)
		return i.ClientID, err
	}
	return "", s.recordExists(ctx, tx, kind, id)
}

// Attach streams r into storage and records its metadata. The bytes are
// counted on the way; more than the size limit fails with a
// *TooLargeError and stores nothing. A failed insert removes the bytes
// again.
func (a *Attachments) Attach(ctx context.Context, in AttachmentInput, r io.Reader) (Attachment, error) {
	s := a.s
	if s.storage == nil {
		return Attachment{}, fmt.Errorf("%w: no storage (WithStorage)", ErrConfig)
	}
	in.FileName = strings.TrimSpace(in.FileName)
	if err := s.check(KindAttachment, in); err != nil {
		return Attachment{}, err
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return Attachment{}, err
	}
	att := Attachment{Record: Record{ID: tenancy.NewID()}, OwnerKind: in.OwnerKind, OwnerID: in.OwnerID,
		FileName: in.FileName, ContentType: in.ContentType, Author: actor(ctx)}
	// Check the principal and the owner before taking any bytes.
	p := attachmentPerm(in.OwnerKind, true)
	err = s.run(ctx, p, func(ctx context.Context, tx bun.Tx, _ access) error {
		att.ClientID, err = s.ownerClient(ctx, tx, in.OwnerKind, in.OwnerID)
		return err
	})
	if err != nil {
		return Attachment{}, err
	}
	if err := sealRecord(ctx, s, KindAttachment, &att, att.ID); err != nil {
		return Attachment{}, err
	}
	lr := &limitReader{r: r, left: s.maxAttachment}
	cr := &countingReader{r: lr}
	_, err = s.storage.Put(ctx, tid, att.ID, newSealingReader(ctx, s.vault, att.ID, cr))
	n := cr.n
	if err != nil {
		_ = s.storage.Delete(context.WithoutCancel(ctx), tid, att.ID)
		if lr.over {
			return Attachment{}, &TooLargeError{Limit: s.maxAttachment}
		}
		return Attachment{}, err
	}
	att.Size = n
	err = s.run(ctx, p, func(ctx context.Context, tx bun.Tx, _ access) error {
		return insert(ctx, tx, s.clock(), &att)
	})
	if err != nil {
		_ = s.storage.Delete(context.WithoutCancel(ctx), tid, att.ID)
		return Attachment{}, fmt.Errorf("crm: attach: %w", err)
	}
	return att, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errTooLarge stops a copy at the size limit.
var errTooLarge = errors.New("crm: attachment too large")

// limitReader fails once more than left bytes were read.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return 0, errTooLarge
	}
	return n, err
}

// attachmentPerm is the perm of the attachments of records of ownerKind:
// those of the client-shared kinds follow the client portal's rules, every
// other kind's are for the tenant's people only.
func attachmentPerm(ownerKind string, write bool) perm {
	return perm{kind: KindAttachment, shared: sharedKind(ownerKind), write: write}
}

// getAttachment reads an attachment the principal (acc) may see: a
// client-portal member sees only the files of its client's records that it
// sees (not those of drafts).
func (s *Store) getAttachment(ctx context.Context, tx bun.IDB, acc access, id string) (Attachment, error) {
	att, err := getFor[Attachment](ctx, tx, acc, KindAttachment, id)
	if err == nil && acc.portal() && visible(ctx, tx, acc, att.OwnerKind, att.OwnerID) != nil {
		return Attachment{}, notFound(KindAttachment, id) // a file of a draft
	}
	if err != nil {
		return Attachment{}, err
	}
	return att, openRecord(ctx, s, KindAttachment, &att, att.ID)
}

// Get returns an attachment's metadata.
func (a *Attachments) Get(ctx context.Context, id string) (Attachment, error) {
	var att Attachment
	err := a.s.run(ctx, readOf(KindAttachment), func(ctx context.Context, tx bun.Tx, acc access) error {
		var err error
		att, err = a.s.getAttachment(ctx, tx, acc, id)
		return err
	})
	return att, err
}

// Open returns an attachment's metadata and its bytes for streaming; the
// caller closes the reader.
func (a *Attachments) Open(ctx context.Context, id string) (Attachment, io.ReadCloser, error) {
	s := a.s
	if s.storage == nil {
		return Attachment{}, nil, fmt.Errorf("%w: no storage (WithStorage)", ErrConfig)
	}
	att, err := a.Get(ctx, id)
	if err != nil {
		return Attachment{}, nil, err
	}
	rc, err := s.storage.Get(ctx, att.TenantID, att.ID)
	if err != nil {
		return Attachment{}, nil, err
	}
	return att, newOpeningReader(ctx, s.vault, att.ID, rc), nil
}

// Delete removes an attachment and its bytes. The bytes go once the
// transaction that deletes the row has committed: a delete that fails (or
// whose caller goes away) leaves row and bytes as they were. The
// transaction records the bytes' deletion as due (retention.RecordAfterErase):
// if deleting them fails after the commit, or the process dies first, the
// retention engine's next run in the tenant deletes them; the error then
// says the row is gone.
func (a *Attachments) Delete(ctx context.Context, id string) error {
	s := a.s
	if s.storage == nil {
		return fmt.Errorf("%w: no storage (WithStorage)", ErrConfig)
	}
	err := s.run(ctx, writeOf(KindAttachment), func(ctx context.Context, tx bun.Tx, acc access) error {
		if _, err := s.getAttachment(ctx, tx, acc, id); err != nil {
			return err
		}
		if err := retention.RecordAfterErase(ctx, tx, categoryAttachment, []string{id}, s.clock()); err != nil {
			return err
		}
		return deleteIn[Attachment](ctx, s, tx, KindAttachment, id)
	})
	if err != nil {
		return err
	}
	return s.dropBytes(ctx, []string{id})
}

// List returns a page of the attachments of one record, oldest first.
func (a *Attachments) List(ctx context.Context, ownerKind, ownerID string, o ListOptions) (Page[Attachment], error) {
	s := a.s
	var items []Attachment
	err := s.run(ctx, attachmentPerm(ownerKind, false), func(ctx context.Context, tx bun.Tx, acc access) error {
		var err error
		if acc.portal() {
			if err := visible(ctx, tx, acc, ownerKind, ownerID); err != nil {
				return err
			}
		}
		q := acc.scope(tx.NewSelect().Model(&items), KindAttachment).
			Where("?TableAlias.owner_kind = ?", ownerKind).Where("?TableAlias.owner_id = ?", ownerID)
		if q, err = attachmentKeys.apply(q, KindAttachment, o); err != nil {
			return err
		}
		return q.Scan(ctx)
	})
	if err != nil {
		return Page[Attachment]{}, wrapList(KindAttachment, err)
	}
	p, err := page(attachmentKeys, o, items, func(a *Attachment) []any { return []any{a.ID} })
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := openRecord(ctx, s, KindAttachment, &p.Items[i], p.Items[i].ID); err != nil {
			return Page[Attachment]{}, err
		}
	}
	return p, nil
}

// deleteBytes deletes the stored bytes of the attachments ids. Deleting is
// idempotent, so a batch retried after a crash does no harm; without a
// storage it fails with ErrConfig rather than leave the bytes behind.
func (s *Store) deleteBytes(ctx context.Context, ids []string) error {
	if s.storage == nil {
		return fmt.Errorf("%w: attachments cannot be erased without their storage (WithStorage)", ErrConfig)
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.storage.Delete(ctx, tid, id); err != nil {
			return err
		}
	}
	return nil
}
