package crm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TableNotifications remembers which notifications were handed over, so
// that a run repeated on the same day greets nobody twice.
const TableNotifications = TablePrefix + "notifications"

// Notification is a message due to one contact, for the Notifier to send.
type Notification struct {
	// Contact is the recipient, with its e-mail address and phone number
	// opened.
	Contact Contact
	Channel Channel
	Purpose Purpose
	// Key identifies the occasion: "birthday:2026" or "campaign:<name>".
	// A contact is handed each key on each channel once.
	Key string
}

// Notifier sends notifications. Scheduler calls it once per due contact;
// an error leaves that contact due for the next run.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// LogNotifier is a Notifier that only logs, at Info: the contact id,
// channel, purpose and key, never the address or number. A nil Logger
// discards.
type LogNotifier struct {
	Logger *slog.Logger
}

// Notify logs n.
func (l LogNotifier) Notify(ctx context.Context, n Notification) error {
	if l.Logger != nil {
		l.Logger.InfoContext(ctx, "crm: notification due", "contact_id", n.Contact.ID, "channel", string(n.Channel), "purpose", string(n.Purpose), "key", n.Key)
	}
	return nil
}

var _ Notifier = LogNotifier{}

// sentNotification is a notification handed to the Notifier.
type sentNotification struct {
	bun.BaseModel `bun:"table:socialcrm_crm_notifications,alias:nf"`
	Record

	ContactID string    `bun:"contact_id,notnull"`
	Channel   Channel   `bun:"channel,notnull"`
	Purpose   Purpose   `bun:"purpose,notnull"`
	Key       string    `bun:"key,notnull"`
	SentAt    time.Time `bun:"sent_at,notnull"`
}

// Scheduler finds the contacts due for a notification — a birthday
// greeting, a campaign message — that consented to it on the channel, and
// hands each to a Notifier. It never selects a contact whose latest consent
// for that channel and purpose is not a grant.
//
// Its methods are synchronous: call them from a job scheduler (once a day
// for birthdays). It is safe for concurrent use, but two runs for the same
// key at once may both notify a contact.
type Scheduler struct {
	s        *Store
	notifier Notifier
	batch    int
}

// SchedulerOption configures a Scheduler.
type SchedulerOption func(*Scheduler) error

// WithBatchSize sets how many contacts each query reads (default 500).
func WithBatchSize(n int) SchedulerOption {
	return func(sc *Scheduler) error {
		if n < 1 || n > MaxLimit {
			return fmt.Errorf("%w: WithBatchSize: must be 1 to %d, got %d", ErrConfig, MaxLimit, n)
		}
		sc.batch = n
		return nil
	}
}

// NewScheduler returns a Scheduler over s handing notifications to n.
func NewScheduler(s *Store, n Notifier, opts ...SchedulerOption) (*Scheduler, error) {
	if s == nil || n == nil {
		return nil, fmt.Errorf("%w: NewScheduler: nil store or notifier", ErrConfig)
	}
	sc := &Scheduler{s: s, notifier: n, batch: 500}
	for _, o := range opts {
		if o == nil {
			continue // a nil Option means the default
		}
		if err := o(sc); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// Audience selects contacts for Scheduler.Due and Run.
type Audience struct {
	Channel Channel `json:"channel" validate:"required,oneof=email sms whatsapp messenger"`
	Purpose Purpose `json:"purpose" validate:"required,oneof=marketing birthday service"`
	// Key identifies the occasion (see Notification.Key).
	Key string `json:"key" validate:"required,max=200"`
	// BirthdayOn, if set, keeps contacts whose birthday falls on that day
	// (29 February birthdays fall on 28 February in other years).
	BirthdayOn time.Time `json:"birthday_on,omitzero"`
	// Filter narrows the contacts further (stage, owner, tag…).
	Filter ContactFilter `json:"filter"`
}

// Birthdays returns the audience of today's birthday greetings on ch, in
// the Store's clock's time zone (UTC unless the clock says otherwise).
func (sc *Scheduler) Birthdays(ch Channel) Audience {
	today := sc.s.now()
	return Audience{Channel: ch, Purpose: PurposeBirthday, Key: fmt.Sprintf("birthday:%d", today.Year()), BirthdayOn: today}
}

// Due returns a page of the contacts of the audience that consented to it
// and were not yet handed its key on its channel, oldest first: an
// audience is as large as the contact base, so it pages like
// Contacts.List (pass NextCursor back with the same audience). Run walks
// every page.
func (sc *Scheduler) Due(ctx context.Context, a Audience, o ListOptions) (Page[Contact], error) {
	if err := sc.s.check("audience", a); err != nil {
		return Page[Contact]{}, err
	}
	return sc.s.Contacts().list(ctx, a.Filter, o, func(ctx context.Context, q *bun.SelectQuery) *bun.SelectQuery {
		return sc.audience(ctx, q, a)
	})
}

// Run hands each contact Due returns to the Notifier and remembers it, so
// that running again with the same key notifies only those the Notifier
// failed for. It returns how many were notified; the Notifier's errors are
// joined. Delivery is at least once: a crash between a Notify and its
// record notifies that contact again on the next run.
func (sc *Scheduler) Run(ctx context.Context, a Audience) (int, error) {
	var errs []error
	n := 0
	// Contacts are notified a batch at a time, as they are read: memory
	// stays flat however large the audience.
	err := sc.each(ctx, a, func(c Contact) error {
		if err := sc.notifier.Notify(ctx, Notification{Contact: c, Channel: a.Channel, Purpose: a.Purpose, Key: a.Key}); err != nil {
			errs = append(errs, fmt.Errorf("crm: notify contact %s: %w", c.ID, err))
			return nil
		}
		now := sc.s.clock()
		rec := sentNotification{ContactID: c.ID, Channel: a.Channel, Purpose: a.Purpose, Key: a.Key, SentAt: now}
		rec.stamp(now)
		if err := sc.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(&rec).On("CONFLICT (tenant_id, contact_id, channel, key) DO NOTHING").Exec(ctx)
			return err
		}); err != nil {
			return fmt.Errorf("crm: remember notification: %w", err)
		}
		n++
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// each calls fn for each due contact of a, reading them in batches.
func (sc *Scheduler) each(ctx context.Context, a Audience, fn func(Contact) error) error {
	for c, err := range All(ctx, ListOptions{Limit: sc.batch}, func(ctx context.Context, o ListOptions) (Page[Contact], error) {
		return sc.Due(ctx, a, o)
	}) {
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// audience adds a's conditions to a select of contacts (alias ct). The
// subqueries run no model hooks, so each is scoped by hand.
func (sc *Scheduler) audience(ctx context.Context, q *bun.SelectQuery, a Audience) *bun.SelectQuery {
	consented := q.NewSelect().Model((*Consent)(nil)).Column("cs.contact_id").
		Where("cs.channel = ?", a.Channel).Where("cs.purpose = ?", a.Purpose).Where("cs.granted = ?", true).
		Apply(tenancy.Scope(ctx))
	q = q.Where("ct.id IN (?)", consented)
	notified := q.NewSelect().Model((*sentNotification)(nil)).Column("nf.contact_id").
		Where("nf.channel = ?", a.Channel).Where("nf.key = ?", a.Key).
		Apply(tenancy.Scope(ctx))
	q = q.Where("ct.id NOT IN (?)", notified)
	switch a.Channel {
	case ChannelEmail:
		q = q.Where("ct.email_index IS NOT NULL")
	case ChannelSMS, ChannelWhatsApp:
		q = q.Where("ct.phone_index IS NOT NULL")
	}
	if !a.BirthdayOn.IsZero() {
		d := a.BirthdayOn
		days := []int{d.Day()}
		if d.Month() == time.February && d.Day() == 28 && !isLeap(d.Year()) {
			days = append(days, 29)
		}
		// Birthdays are sealed: they are found by the blind index of
		// their month and day.
		idx := make([]string, len(days))
		for i, day := range days {
			var err error
			if idx[i], err = sc.s.vault.Index(ctx, birthIndexValue(int(d.Month()), day), indexBirthday); err != nil {
				return q.Err(fmt.Errorf("crm: birthday audience: %w", err))
			}
		}
		q = q.Where("ct.birth_index IN (?)", bun.In(idx))
	}
	return q
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }
