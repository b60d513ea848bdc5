package crm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// More subject identifier kinds the crm resolves (see Store.Resolvers).
const (
	// SubjectEmail is an e-mail address, matched through the contacts'
	// blind index after the normalization contacts are stored with.
	SubjectEmail = "email"
	// SubjectPhone is a phone number in any common format, read as
	// Contacts.Create reads it (WithDefaultRegion for national numbers)
	// and matched through the contacts' blind index in E.164 form.
	SubjectPhone = "phone"
	// SubjectInvoice is an invoice's id: its recipient (e-mail address,
	// phone number, contact link), erased on request, and the invoice
	// itself, kept for its legal period. E-mail addresses and phone numbers
	// lead to the invoices sent to them, linked to a contact or not.
	SubjectInvoice = "invoice_id"
	// SubjectClientContact is the id of a client whose billing e-mail
	// address or phone number is the person's: it leads to those contact
	// details only (category crm.client_contact), exported and, on
	// erasure, cleared, while the client and its records (campaigns,
	// proposals, invoices) stay: they are the tenant's business records,
	// not the person's.
	SubjectClientContact = "client_contact_id"
)

// Resolvers returns the crm's resolvers of data subjects, by identifier
// kind, for retention.Engine.RegisterResolver:
//
//   - email and phone lead to every contact holding that address or
//     number (duplicates included) and to every invoice sent to it
//     (invoice_id), through the blind indexes, and to every client whose
//     billing contact details hold it (client_contact_id), by opening the
//     tenant's clients' sealed details (clients have no blind index: the
//     cost grows with the tenant's number of clients);
//   - contact_id leads to the contact's e-mail address and phone number
//     (and so to all they lead to: duplicates, invoices, clients), to its
//     conversations and to their thread ids (and so to every other
//     conversation of the same threads): the same records as the contact's
//     e-mail address, phone number or PSID given alone; the id of a
//     contact Contacts.Merge folded into another leads to the contact kept;
//   - thread_id (a Messenger PSID, an Instagram-scoped id) leads, through
//     the blind index of the sealed thread ids, to the conversations of
//     that thread and the contacts linked to them.
//
// With them, one request by any of these identifiers reaches every record
// of the person: the engine follows the keys from one resolver to the next.
// The resolvers need the Store's vault (for the blind indexes).
func (s *Store) Resolvers() map[string]retention.Resolver {
	return map[string]retention.Resolver{
		SubjectEmail: s.resolveIndexed("email", func(ctx context.Context, v string) ([]string, error) {
			if v = normalizeEmail(v); v == "" {
				return nil, nil
			}
			ix, err := s.vault.Index(ctx, v, "email")
			return []string{ix}, err
		}),
		SubjectPhone:   s.resolveIndexed("phone", s.phoneIndexes),
		SubjectContact: s.resolveContact,
		SubjectThread:  s.resolveThread,
	}
}

// resolveIndexed finds the contacts whose blind index of field is one of
// those indexes returns for the identifier (computed outside any
// transaction: the tenant's first index creates its keys).
func (s *Store) resolveIndexed(field string, indexes func(ctx context.Context, v string) ([]string, error)) retention.Resolver {
	return func(ctx context.Context, db bun.IDB, value string) (map[string][]string, error) {
		if s.vault == nil {
			return nil, fmt.Errorf("%w: resolving %s needs the vault", ErrConfig, field)
		}
		idx, err := indexes(ctx, value)
		if err != nil {
			return nil, fmt.Errorf("crm: resolve %s: %w", field, err)
		}
		if len(idx) == 0 {
			return nil, nil
		}
		var ids, invoices []string
		err = tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := tx.NewSelect().Model((*Contact)(nil)).Column("id").Apply(tenancy.Scope(ctx)).
				Where("?TableAlias."+field+"_index IN (?)", bun.In(idx)).Scan(ctx, &ids); err != nil {
				return err
			}
			invoices, err = recipientInvoices(ctx, tx, field, idx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("crm: resolve %s: %w", field, err)
		}
		clients, err := s.clientsWith(ctx, db, field, idx)
		if err != nil {
			return nil, fmt.Errorf("crm: resolve %s: %w", field, err)
		}
		return map[string][]string{SubjectContact: ids, SubjectInvoice: invoices, SubjectClientContact: clients}, nil
	}
}

// clientsWith returns the ids of the clients whose billing e-mail address
// or phone number (field), normalized as contacts store theirs, has one of
// the blind indexes idx. The sealed values are read in one short
// transaction and opened after it.
func (s *Store) clientsWith(ctx context.Context, db bun.IDB, field string, idx []string) ([]string, error) {
	var cs []Client
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&cs).Column("id", field+"_sealed").Apply(tenancy.Scope(ctx)).
			Where("?TableAlias." + field + "_sealed IS NOT NULL").Scan(ctx)
	})
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	op := s.vault.Opener(ctx)
	var out []string
	for _, c := range cs {
		f := c.sealedFields()[1] // email
		if field == indexPhone {
			f = c.sealedFields()[2]
		}
		if err := openFieldsWith(&op, KindClient, c.ID, []sealedField{f}); err != nil {
			return nil, err
		}
		v := normalizeEmail(*f.text)
		if field == indexPhone {
			v = s.normalizePhone(*f.text)
		}
		ix, err := s.vault.Index(ctx, v, field)
		if err != nil {
			return nil, err
		}
		if slices.Contains(idx, ix) {
			out = append(out, c.ID)
		}
	}
	return out, nil
}

// recipientInvoices returns the ids of the invoices whose recipient's
// blind index of field ("email" or "phone") is one of idx.
func recipientInvoices(ctx context.Context, tx bun.IDB, field string, idx []string) ([]string, error) {
	var ids []string
	err := tx.NewSelect().Model((*invoiceRecipient)(nil)).Column("invoice_id").Apply(tenancy.Scope(ctx)).
		Where("?TableAlias."+field+"_index IN (?)", bun.In(idx)).Scan(ctx, &ids)
	return ids, err
}

// resolveContact finds a contact's e-mail address and phone number, its
// duplicates, the invoices addressed to its e-mail address or phone
// number, its conversations and their thread ids. The e-mail address and
// phone number are keys of their own (SubjectEmail, SubjectPhone), as
// the thread ids are (SubjectThread): a request by contact id reaches
// every record those identifiers given alone would reach — the clients
// whose billing details hold them, and a duplicate contact or a new
// conversation of the thread written while an erasure runs, which its
// later passes find by those keys after the contact itself is gone.
func (s *Store) resolveContact(ctx context.Context, db bun.IDB, id string) (map[string][]string, error) {
	out := map[string][]string{}
	var c Contact
	var convs []Conversation
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		err := tx.NewSelect().Model(&c).Column("id", "email_index", "phone_index", "profile_sealed").Apply(tenancy.Scope(ctx)).
			Where("?TableAlias.id = ?", id).Limit(1).Scan(ctx)
		if err == nil && (c.EmailIndex != "" || c.PhoneIndex != "") {
			var dups []string
			q := tx.NewSelect().Model((*Contact)(nil)).Column("id").Apply(tenancy.Scope(ctx))
			q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				if c.EmailIndex != "" {
					q = q.WhereOr("?TableAlias.email_index = ?", c.EmailIndex)
				}
				if c.PhoneIndex != "" {
					q = q.WhereOr("?TableAlias.phone_index = ?", c.PhoneIndex)
				}
				return q
			})
			if err := q.Scan(ctx, &dups); err != nil {
				return err
			}
			out[SubjectContact] = slices.DeleteFunc(dups, func(d string) bool { return d == id })
			for field, ix := range map[string]string{indexEmail: c.EmailIndex, indexPhone: c.PhoneIndex} {
				if ix == "" {
					continue
				}
				invoices, err := recipientInvoices(ctx, tx, field, []string{ix})
				if err != nil {
					return err
				}
				out[SubjectInvoice] = append(out[SubjectInvoice], invoices...)
			}
		} else if errors.Is(err, sql.ErrNoRows) {
			c = Contact{}
			// A contact Merge folded into another: the kept one.
			var kept []string
			if err := tx.NewSelect().Model((*contactMerge)(nil)).Column("kept_id").Apply(tenancy.Scope(ctx)).
				Where("?TableAlias.merged_id = ?", id).Scan(ctx, &kept); err != nil {
				return err
			}
			out[SubjectContact] = kept
		} else if err != nil {
			return err
		}
		// Its conversations, and every other conversation of the same
		// thread (the same PSID on another link, or not linked at all).
		return tx.NewSelect().Model(&convs).Column("id", "thread_sealed").Apply(tenancy.Scope(ctx)).
			WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("?TableAlias.contact_id = ?", id).
					WhereOr("?TableAlias.thread_index IN (?)", tx.NewSelect().Model((*Conversation)(nil)).
						Column("thread_index").Apply(tenancy.Scope(ctx)).Where("?TableAlias.contact_id = ?", id))
			}).Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("crm: resolve contact: %w", err)
	}
	for _, cv := range convs {
		out[SubjectConversation] = append(out[SubjectConversation], cv.ID)
	}
	if s.vault == nil {
		return out, nil
	}
	// Her e-mail address and phone number, and the threads' ids, opened
	// outside the transaction: the resolvers of those kinds take it from
	// here (the clients whose billing details hold them included).
	op := s.vault.Opener(ctx)
	if c.ID != "" {
		if err := openProfile(&op, &c); err != nil {
			return nil, fmt.Errorf("crm: resolve contact: %w", err)
		}
		if c.Email != "" {
			out[SubjectEmail] = []string{c.Email}
		}
		if c.Phone != "" {
			out[SubjectPhone] = []string{c.Phone}
		}
	}
	for i := range convs {
		cv := &convs[i]
		if err := openFieldsWith(&op, kindConversation, cv.ID, cv.sealedFields()); err != nil {
			return nil, fmt.Errorf("crm: resolve contact: %w", err)
		}
		if cv.ThreadID != "" && !slices.Contains(out[SubjectThread], cv.ThreadID) {
			out[SubjectThread] = append(out[SubjectThread], cv.ThreadID)
		}
	}
	return out, nil
}

// resolveThread finds the conversations of a thread, through the blind
// index of its sealed thread id, and the contacts linked to them.
func (s *Store) resolveThread(ctx context.Context, db bun.IDB, thread string) (map[string][]string, error) {
	if s.vault == nil {
		return nil, fmt.Errorf("%w: resolving thread_id needs the vault", ErrConfig)
	}
	if thread == "" {
		return nil, nil
	}
	idx, err := s.Conversations().threadIndex(ctx, thread)
	if err != nil {
		return nil, err
	}
	var convs []Conversation
	err = tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&convs).Column("id", "contact_id").Apply(tenancy.Scope(ctx)).
			Where("?TableAlias.thread_index = ?", idx).Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("crm: resolve thread: %w", err)
	}
	out := map[string][]string{}
	for _, c := range convs {
		out[SubjectConversation] = append(out[SubjectConversation], c.ID)
		if c.ContactID != "" {
			out[SubjectContact] = append(out[SubjectContact], c.ContactID)
		}
	}
	return out, nil
}

// attachmentFiles is the attachment category's retention.Category.Files:
// the bytes of attachment id, read through Attachments.Open (so through
// whatever the Storage does to them).
func (s *Store) attachmentFiles(ctx context.Context, id string, add func(name string, content io.Reader) error) error {
	att, rc, err := s.Attachments().Open(ctx, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	return add(att.FileName, rc)
}

// attachmentFilesOrNil is attachmentFiles when the Store keeps files.
func (s *Store) attachmentFilesOrNil() func(ctx context.Context, id string, add func(name string, content io.Reader) error) error {
	if s.storage == nil {
		return nil
	}
	return s.attachmentFiles
}

// requireStorage is the attachment category's BeforeErase hook: without a
// storage the bytes could not be deleted once the rows are gone, so no
// attachment is erased (ErrConfig). With one, AfterErase (deleteBytes)
// deletes the bytes after the batch commits: a batch rolled back keeps
// its files, and bytes whose rows went before a crash are deleted by the
// engine's next run, which finds their ids recorded.
func (s *Store) requireStorage(context.Context, bun.Tx, []string) error {
	if s.storage == nil {
		return fmt.Errorf("%w: attachments cannot be erased without their storage (WithStorage)", ErrConfig)
	}
	return nil
}
