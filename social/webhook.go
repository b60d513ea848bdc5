package social

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
)

// account maps a platform account to a tenant's connection.
type account struct {
	bun.BaseModel `bun:"table:socialcrm_social_accounts,alias:sac"`

	Platform     string `bun:"platform,pk"`
	AccountID    string `bun:"account_id,pk"`
	TenantID     string `bun:"tenant_id,pk"`
	ConnectionID string `bun:"connection_id,notnull"`
	// Live is true while the connection is not revoked, false once it is,
	// and unknown (NULL) in rows written before the index recorded it.
	Live sql.NullBool `bun:"live"`
}

// TenantRegistryKey makes the account index a tenant registry to the
// Guard: under a tenant's principal a statement on it must be confined to
// the tenant's own rows (see tenancy.InstallGuard). Tenant B could
// re-point tenant A's Page to itself, so that the Page's webhooks (A's
// customers' messages) reached B, and read which tenants connected which
// accounts. Statements without a principal (webhooks, callbacks) read
// every row.
func (*account) TenantRegistryKey() string { return "tenant_id" }

// accountRoute is a row of the account routes view: a tenant's row of the
// account index with the number of tenants whose connection of the same
// account is live or not known to be revoked. A webhook's write checks
// that number in its own statement (Routed) without reading other
// tenants' rows of the index.
type accountRoute struct {
	bun.BaseModel `bun:"table:socialcrm_social_account_routes,alias:sar"`

	Platform     string       `bun:"platform"`
	AccountID    string       `bun:"account_id"`
	TenantID     string       `bun:"tenant_id"`
	ConnectionID string       `bun:"connection_id"`
	Live         sql.NullBool `bun:"live"`
	Routes       int          `bun:"routes"`
}

// TenantRegistryKey confines the view, under a tenant's principal, to the
// tenant's own rows, as it does the account index: a tenant learns how
// many tenants connected an account only for an account it connected
// itself.
func (*accountRoute) TenantRegistryKey() string { return "tenant_id" }

// delivery is a webhook delivery already processed.
type delivery struct {
	bun.BaseModel `bun:"table:socialcrm_social_webhook_deliveries,alias:swd"`

	Platform   string    `bun:"platform,pk"`
	Key        string    `bun:"key,pk"`
	ReceivedAt time.Time `bun:"received_at,notnull"`
	// Pending marks a delivery claimed by Once and not yet processed.
	Pending bool `bun:"pending,notnull"`
}

// TenantUnreachable makes the deliveries a table no statement under a
// tenant's principal may name (see tenancy.InstallGuard): they belong to
// no tenant, and the webhook handlers record them without a principal.
// Tenant B could otherwise record the key of tenant A's next delivery, so
// that it was skipped as processed, or delete A's.
func (*delivery) TenantUnreachable() bool { return true }

func mustTenant(ctx context.Context) string {
	tid, _ := tenancy.TenantID(ctx)
	return tid
}

// Delivery is a webhook delivery for Deliver.
type Delivery struct {
	// Platform names the platform ("meta", "tiktok"): keys are unique per
	// platform, and accounts are looked up as its accounts.
	Platform string
	// Keys identify the delivery's events across redeliveries (their
	// platform ids, or hashes of them); each is processed once. They are
	// stored as keyed hashes under a vault key, never as given: an
	// event's key may be a plain hash of the sender's platform id.
	Keys []string
	// Accounts are the platform accounts the delivery addresses (a Page
	// id), whose tenants Deliver looks up with the keys: AccountTenants
	// called with the context Deliver hands its function answers for
	// them without a statement of its own.
	Accounts []string
	// Idempotent declares that what the function writes is written
	// idempotently (a second run over the same events changes nothing):
	// Deliver then records no keys (Keys are ignored) and opens no
	// transaction (see Deliver).
	Idempotent bool
}

// Deliver processes a webhook delivery once and crash-safely: in one
// transaction on the store's database it records the delivery's keys (with
// one statement, which on PostgreSQL also reads the tenants of its
// accounts) and calls fn with that transaction as db and, for each key,
// whether this is its first delivery. What fn writes through db commits
// together with the records, or, when fn fails or the process dies,
// neither does, so the platform's redelivery is processed again. Two
// deliveries of the same key at once are serialized by the database: the
// later one waits for the earlier to commit and sees first false, or true
// when the earlier one failed. fn must use db for every database access
// (on SQLite another connection would wait for this transaction's write
// lock). A repeated key within Keys is first only once. Keys are kept
// until PruneDeliveries removes them.
//
// A delivery declared Idempotent is handed over every time, without a
// transaction: Deliver reads its accounts' tenants with one statement and
// calls fn with the store's database as db — each statement fn sends
// commits on its own (one that writes all it needs at once, as crm's
// Ingest does, needs no transaction and saves the COMMIT's round trip) —
// and first nil. What fn wrote before it failed stays, and the
// redelivery, which fn stores idempotently, adds the rest.
func (s *Store) Deliver(ctx context.Context, d Delivery, fn func(ctx context.Context, db bun.IDB, first []bool) error) error {
	if !d.Idempotent && len(d.Keys) > 0 {
		keys, err := s.deliveryKeys(ctx, d.Platform, d.Keys)
		if err != nil {
			return err
		}
		d.Keys = keys
	}
	idx := make([]string, 0, len(d.Accounts))
	for _, a := range d.Accounts {
		i, err := s.accountIndex(ctx, d.Platform, a)
		if err != nil {
			return err
		}
		idx = append(idx, i) // only the blind index: see AccountTenants
	}
	run := func(ctx context.Context, db bun.IDB, keys []string) error {
		first, rows, err := recordDelivery(ctx, db, d.Platform, keys, idx, s.clock())
		if err != nil {
			return err
		}
		if len(d.Accounts) > 0 {
			known := &knownAccounts{platform: d.Platform, tenants: make(map[string][]AccountTenant, len(d.Accounts))}
			for i, a := range d.Accounts {
				known.tenants[a] = accountTenants(rows, idx[i])
			}
			ctx = context.WithValue(ctx, knownAccountsKey{}, known)
		}
		if keys == nil {
			first = nil
		}
		return fn(ctx, db, first)
	}
	if d.Idempotent {
		return run(ctx, s.db, nil)
	}
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return run(ctx, tx, d.Keys) })
}

// knownAccounts are the tenants of a delivery's accounts, looked up by
// Deliver in the statement that records its keys, which AccountTenants
// answers from within the delivery.
type knownAccounts struct {
	platform string
	tenants  map[string][]AccountTenant // by account id
}

type knownAccountsKey struct{}

// recordDeliverySQL records a delivery's keys in key order (concurrent
// deliveries that share keys then wait for each other in one order, never
// deadlock) and returns those it inserted — the first deliveries — and
// the account index rows of the delivery's accounts, in one statement.
const recordDeliverySQL = `WITH added AS (
	INSERT INTO socialcrm_social_webhook_deliveries AS swd (platform, key, received_at, pending)
	SELECT ?, k.key, ?::timestamptz, FALSE FROM unnest(?::text[]) AS k(key) ORDER BY k.key
	ON CONFLICT DO NOTHING
	RETURNING swd.key
)
SELECT added.key, '' AS account_id, '' AS tenant_id, '' AS connection_id, NULL::boolean AS live FROM added
UNION ALL
SELECT '', sac.account_id, sac.tenant_id, sac.connection_id, sac.live FROM socialcrm_social_accounts AS sac
WHERE sac.platform = ? AND sac.account_id = ANY(?::text[])`

// recordDelivery records keys in db and reports which were new, and reads
// the account index rows whose account_id is one of accounts: on
// PostgreSQL with one statement (recordDeliverySQL), on SQLite, where a
// statement costs no round trip, with one per chunk of keys and one more;
// without keys, with the one that reads the accounts.
func recordDelivery(ctx context.Context, db bun.IDB, platform string, keys, accounts []string, now time.Time) ([]bool, []account, error) {
	first := make([]bool, len(keys))
	if len(keys) == 0 && len(accounts) == 0 {
		return first, nil, nil
	}
	uniq := slices.Clone(keys)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	added := make(map[string]bool, len(uniq))
	var rows []account
	if db.Dialect().Name() == dialect.PG && len(keys) > 0 {
		q, err := db.QueryContext(ctx, recordDeliverySQL, platform, now, textArray(uniq), platform, textArray(accounts))
		if err != nil {
			return nil, nil, fmt.Errorf("social: record deliveries: %w", err)
		}
		defer q.Close()
		for q.Next() {
			var key string
			var a account
			if err := q.Scan(&key, &a.AccountID, &a.TenantID, &a.ConnectionID, &a.Live); err != nil {
				return nil, nil, fmt.Errorf("social: record deliveries: %w", err)
			}
			if key != "" {
				added[key] = true
			} else {
				a.Platform = platform
				rows = append(rows, a)
			}
		}
		if err := q.Err(); err != nil {
			return nil, nil, fmt.Errorf("social: record deliveries: %w", err)
		}
	} else {
		for chunk := range slices.Chunk(uniq, 1000) {
			ds := make([]delivery, len(chunk))
			for i, k := range chunk {
				ds[i] = delivery{Platform: platform, Key: k, ReceivedAt: now}
			}
			var got []string
			if err := db.NewInsert().Model(&ds).On("CONFLICT DO NOTHING").Returning("key").Scan(ctx, &got); err != nil &&
				!errors.Is(err, sql.ErrNoRows) {
				return nil, nil, fmt.Errorf("social: record deliveries: %w", err)
			}
			for _, k := range got {
				added[k] = true
			}
		}
		if len(accounts) > 0 {
			if err := db.NewSelect().Model(&rows).Where("platform = ?", platform).Where("account_id IN (?)", bun.In(accounts)).
				Scan(ctx); err != nil {
				return nil, nil, fmt.Errorf("social: account tenants: %w", err)
			}
		}
	}
	for i, k := range keys {
		if added[k] {
			first[i] = true
			delete(added, k) // a repeated key is first once
		}
	}
	return first, rows, nil
}

// textArray writes vs as a PostgreSQL text array literal.
func textArray(vs []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(v); j++ {
			if v[j] == '"' || v[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// ErrDeliveryInProgress is returned by Once while another process holds
// the delivery's claim: answer the platform with an error, so that it
// retries later.
var ErrDeliveryInProgress = errors.New("social: delivery in progress elsewhere")

// DefaultDeliveryLease is how long Once's claim on a delivery keeps other
// processes off it before they may take it over (its holder having died).
const DefaultDeliveryLease = 5 * time.Minute

// Once processes a webhook delivery of platform identified by key once,
// for a handler whose effects cannot share a transaction with the record
// (they call other stores, or a hook does): it claims the key, runs fn,
// then marks the key processed. When fn fails, the claim is removed, so
// the platform's redelivery runs fn again; when the process dies during
// fn, the claim expires after lease (DefaultDeliveryLease when 0) and a
// redelivery takes it over. A delivery already processed returns nil
// without calling fn; one claimed by another process within its lease
// returns ErrDeliveryInProgress. fn may thus run again after a crash, so
// its effects must be idempotent; it never runs twice at once. Where fn
// writes only to this database, Deliver is simpler and exact.
func (s *Store) Once(ctx context.Context, platform, key string, lease time.Duration, fn func(ctx context.Context) error) error {
	if lease <= 0 {
		lease = DefaultDeliveryLease
	}
	keys, err := s.deliveryKeys(ctx, platform, []string{key})
	if err != nil {
		return err
	}
	key = keys[0]
	now := s.clock()
	res, err := s.db.NewInsert().Model(&delivery{Platform: platform, Key: key, ReceivedAt: now, Pending: true}).
		On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return fmt.Errorf("social: claim delivery: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("social: claim delivery: %w", err)
	} else if n == 0 {
		// Processed, claimed, or claimed by a process that died: take
		// over an expired claim.
		res, err := s.db.NewUpdate().Model((*delivery)(nil)).Set("received_at = ?", now).
			Where("platform = ?", platform).Where("key = ?", key).Where("pending = ?", true).
			Where("received_at < ?", now.Add(-lease)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("social: claim delivery: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var d delivery
			err := s.db.NewSelect().Model(&d).Where("platform = ?", platform).Where("key = ?", key).Scan(ctx)
			if err == nil && !d.Pending {
				return nil // processed already
			}
			return ErrDeliveryInProgress
		}
	}
	if err := fn(ctx); err != nil {
		return errors.Join(err, s.forgetDelivery(context.WithoutCancel(ctx), platform, key))
	}
	if _, err := s.db.NewUpdate().Model((*delivery)(nil)).Set("pending = ?", false).
		Where("platform = ?", platform).Where("key = ?", key).Exec(ctx); err != nil {
		return fmt.Errorf("social: delivery processed: %w", err)
	}
	return nil
}

// ForgetDelivery removes a delivery's key, so that a redelivery is
// processed again (for a delivery whose processing failed).
func (s *Store) ForgetDelivery(ctx context.Context, platform, key string) error {
	keys, err := s.deliveryKeys(ctx, platform, []string{key})
	if err != nil {
		return err
	}
	return s.forgetDelivery(ctx, platform, keys[0])
}

// forgetDelivery is ForgetDelivery of a key as stored (deliveryKeys).
func (s *Store) forgetDelivery(ctx context.Context, platform, key string) error {
	_, err := s.db.NewDelete().Model((*delivery)(nil)).Where("platform = ?", platform).Where("key = ?", key).Exec(ctx)
	return err
}

// PruneDeliveries forgets deliveries received before the store's time
// minus age (TikTok retries for up to 72 hours; keep at least that).
func (s *Store) PruneDeliveries(ctx context.Context, age time.Duration) (int64, error) {
	res, err := s.db.NewDelete().Model((*delivery)(nil)).Where("received_at < ?", s.clock().Add(-age)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("social: prune deliveries: %w", err)
	}
	return res.RowsAffected()
}

// AccountRemoved handles the platform's notice that the user removed the
// app (TikTok's authorization.removed, Meta's Deauthorize Callback): in
// every tenant that connected the account, the connection and every
// connection derived from it (a Facebook user's Pages and Instagram
// accounts) have their sealed tokens deleted, are marked revoked with
// reason, audited as "connection.deauthorized" by the system principal
// "social-webhook", and handed to the disconnect hook. The platform has
// revoked the tokens already, so nothing is sent to it. It returns how
// many connections were revoked.
func (s *Store) AccountRemoved(ctx context.Context, platform, accountID, reason string) (int, error) {
	rows, err := s.AccountTenants(ctx, platform, accountID)
	if err != nil {
		return 0, fmt.Errorf("social: account removed: %w", err)
	}
	sys := tenancy.System(ctx, "social-webhook")
	n := 0
	for _, a := range rows {
		tctx, err := tenancy.AsTenant(sys, a.TenantID)
		if err != nil {
			return n, err
		}
		derived, c, done, err := s.revokeTree(tctx, a.ConnectionID, nil, "connection.deauthorized", reason, 0, nil)
		if err != nil {
			return n, fmt.Errorf("social: account removed: %w", err)
		}
		n += len(derived)
		if done {
			n++
		}
		if err := s.handOver(tctx, derived, c, done); err != nil {
			return n, err
		}
	}
	return n, nil
}
