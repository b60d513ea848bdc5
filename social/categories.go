package social

import (
	"context"
	"fmt"
	"slices"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Names of the package's retention categories, for the rules of a
// retention.Policy.
const (
	// CategoryConnection is the connected accounts and their sealed
	// tokens; erasing one erases what was fetched through it.
	CategoryConnection = "social.connection"
	// CategoryMedia is the posts and videos fetched from connected
	// accounts.
	CategoryMedia = "social.media"
	// CategoryMetrics is the metric snapshots of connected accounts.
	CategoryMetrics = "social.metrics"
	// CategoryRawResponse is the raw platform answers an application
	// asked to keep.
	CategoryRawResponse = "social.raw_response"
	// CategoryOAuthState is the single-use states of connections in
	// progress.
	CategoryOAuthState = "social.oauth_state"
	// CategoryAccountIndex is the keyed hashes of connected platform
	// accounts, which route their webhooks.
	CategoryAccountIndex = "social.account_index"
	// CategoryRevocation is the platform revocations still to be retried
	// after a disconnect.
	CategoryRevocation = "social.revocation"
	// CategoryUnsealed is the platform data of an older database waiting
	// to be sealed.
	CategoryUnsealed = "social.unsealed"
)

// sealedField is a sealed column and the name its opened value is exported
// under (also the field its seal is bound to).
type sealedField struct{ column, as string }

// sealedFields lists the sealed columns of each table that exports open
// (the tokens and verifiers apart, which are never exported).
var sealedFields = map[string][]sealedField{
	TableConnections:  {{"account_id_sealed", fieldAccountID}, {"display_name_sealed", fieldDisplayName}, {"avatar_url_sealed", fieldAvatarURL}},
	TableMedia:        {{"title_sealed", fieldTitle}, {"description_sealed", fieldDescription}, {"share_url_sealed", fieldShareURL}},
	TableRawResponses: {{"body_sealed", fieldBody}},
}

// Categories returns the retention categories of every social table, for
// retention.Engine.Register. Their sealed columns are left out of exports;
// Store.Categories returns the same categories with those columns opened.
// Erasing a connection erases, in the same transaction, its media, metric
// snapshots, raw responses and account-index rows, whatever those
// categories' own periods say.
func Categories() []retention.Category { return categories(nil) }

// Categories returns the package's Categories with their sealed columns
// (profiles, media texts, raw bodies) exported opened through s. Register
// these rather than the package's when the export should hold them.
func (s *Store) Categories() []retention.Category { return categories(s) }

func categories(s *Store) []retention.Category {
	sealed := func(table string) ([]retention.SealedColumn, []string) {
		var cols []retention.SealedColumn
		var omit []string
		for _, f := range sealedFields[table] {
			if s == nil {
				omit = append(omit, f.column)
				continue
			}
			column := f.column
			cols = append(cols, retention.SealedColumn{Column: column, As: f.as,
				Open: func(ctx context.Context, tenantID, id string, b []byte) (string, error) {
					if tid, err := tenancy.TenantID(ctx); err != nil || tid != tenantID {
						return "", fmt.Errorf("social: open %s.%s: the context does not act on the export's tenant", table, column)
					}
					return s.OpenSealed(ctx, table, column, id, b)
				}})
		}
		return cols, omit
	}
	const purpose = "data of a connected account, fetched for the purposes its owner authorized"
	bySubject := map[string]string{"connection_id": "connection_id"}
	mediaCols, mediaOmit := sealed(TableMedia)
	rawCols, rawOmit := sealed(TableRawResponses)
	connCols, connOmit := sealed(TableConnections)
	return []retention.Category{
		{Name: CategoryMedia, Table: TableMedia, Time: "fetched_at", Subject: bySubject,
			Sealed: mediaCols, Omit: mediaOmit,
			LegalBasis: "consent", Purpose: purpose},
		{Name: CategoryMetrics, Table: TableSnapshots, Time: "taken_at", Subject: bySubject,
			LegalBasis: "consent", Purpose: purpose},
		{Name: CategoryRawResponse, Table: TableRawResponses, Time: "fetched_at", Subject: bySubject,
			Sealed: rawCols, Omit: rawOmit,
			LegalBasis: "consent", Purpose: purpose},
		// Before the connections: a request reaches (and counts) the index
		// rows before their connection's erasure removes the rest.
		{Name: CategoryAccountIndex, Table: TableAccounts, ID: "connection_id", Subject: bySubject,
			LegalBasis: "consent of the account owner", Purpose: "which tenants connected a platform account (a keyed hash of its id), to route its webhooks; removed with the connection"},
		{Name: CategoryConnection, Table: TableConnections, Time: "created_at",
			// An account id reaches its connections through the resolver
			// (the column holds only its blind index, left out of exports:
			// the id itself is exported opened).
			Subject:     map[string]string{"connection_id": "id"},
			Omit:        append([]string{"access_token", "refresh_token", "account_id"}, connOmit...),
			Clear:       "ids, platform, scopes, purposes, status and times; the account id's blind index (keyed per tenant, to find the account)",
			Sealed:      connCols,
			BeforeErase: s.beforeEraseConnections,
			AfterErase:  s.afterEraseConnections(),
			LegalBasis:  "consent of the account owner", Purpose: "connected platform accounts (profile sealed) and their sealed tokens"},
		{Name: CategoryOAuthState, Table: TableStates, Time: "expires_at",
			Omit:       []string{"verifier"},
			LegalBasis: "contract", Purpose: "single-use OAuth states of connections in progress (ten minutes)"},
		// No subject: a data-subject erasure does not drop a revoke still
		// to be made (its own erasure may have queued it). A purge or a
		// sweep that would drop one first makes it (revokeQueued). Nor does
		// an access request export the queue (see Purpose): a receipt
		// counts what is left of it (Pending).
		{Name: CategoryRevocation, Table: TableRevocations, Time: "created_at",
			Omit:        []string{"access_token", "refresh_token", "account_id", "account_id_sealed"},
			Clear:       "ids, platform, attempts, the last error and times; the account id sealed, and its blind index (keyed per tenant)",
			BeforeErase: s.beforeEraseRevocations,
			Pending:     s.pendingRevocations(),
			LegalBasis:  "consent withdrawn", Purpose: "platform revocations still to be retried after a disconnect; " +
				"not exported by access requests: a row holds only the sealed tokens being revoked (never exported) and the " +
				"connection's ids the connection's own export gives, and lives only until the platform accepts the revoke; " +
				"an erasure's receipt counts the rows left (pending)"},
		{Name: CategoryUnsealed, Table: TableUnsealed, ID: "record",
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "platform data of an older database waiting to be sealed (SDK.SealPlatformData empties it)"},
	}
}

// beforeEraseConnections is CategoryConnection's BeforeErase hook: with a
// Store (Store.Categories), it takes the erased connections'
// authorizations away (revokeErased: queued for the platform, asked after
// the commit by afterEraseConnections; in a tenant purge, revoked at
// once); then it erases what was fetched through them (eraseDerived).
func (s *Store) beforeEraseConnections(ctx context.Context, tx bun.Tx, ids []string) error {
	if s != nil {
		if err := s.revokeErased(ctx, tx, ids); err != nil {
			return err
		}
	}
	return eraseDerived(ctx, tx, ids)
}

// afterEraseConnections is CategoryConnection's AfterErase hook: with a
// Store, it makes the revokes an erasure queued (revokeErasedQueued);
// without one, none.
func (s *Store) afterEraseConnections() func(ctx context.Context, ids []string) error {
	if s == nil {
		return nil
	}
	return s.revokeErasedQueued
}

// eraseDerived erases, in tx and the context's tenant, what was fetched
// through the connections ids: their media, metric snapshots, raw
// responses and account-index rows. It is the BeforeErase hook of
// CategoryConnection.
func eraseDerived(ctx context.Context, tx bun.Tx, ids []string) error {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	for _, table := range []string{TableMedia, TableSnapshots, TableRawResponses, TableAccounts} {
		if _, err := tx.NewDelete().TableExpr(table).
			Where("tenant_id = ?", tid).Where("connection_id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
			return fmt.Errorf("social: erase data of erased connections: %w", err)
		}
	}
	return nil
}

// pendingRevocations is CategoryRevocation's Pending count: with a Store,
// the revokes still queued for the subject's connections or platform
// accounts (an erasure erases the connection and queues its revoke; until
// the platform accepts it, its sealed tokens wait in the queue, and the
// receipt says so).
func (s *Store) pendingRevocations() func(ctx context.Context, keys retention.Keys) (int64, error) {
	if s == nil {
		return nil
	}
	return func(ctx context.Context, keys retention.Keys) (int64, error) {
		// An open_id is the TikTok account's id: once its connections are
		// erased it resolves to nothing else, and still names the revoke
		// queued for them (retention.Engine.Receipt counts by it).
		conns, accounts := keys[SubjectConnection], append(slices.Clone(keys[SubjectAccount]), keys[SubjectOpenID]...)
		if len(conns) == 0 && len(accounts) == 0 {
			return 0, nil
		}
		// The queue holds the accounts' blind indexes, never their ids.
		for i, a := range accounts {
			idx, err := s.connAccountIndex(ctx, a)
			if err != nil {
				return 0, fmt.Errorf("social: pending revocations: %w", err)
			}
			accounts[i] = idx
		}
		var n int64
		err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			var err error
			n, err = tx.NewSelect().Model((*revocation)(nil)).Apply(tenancy.Scope(ctx)).
				WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
					if len(conns) > 0 {
						q = q.WhereOr("?TableAlias.connection_id IN (?)", bun.In(conns))
					}
					if len(accounts) > 0 {
						q = q.WhereOr("?TableAlias.account_id IN (?)", bun.In(accounts))
					}
					return q
				}).Count(ctx)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("social: pending revocations: %w", err)
		}
		return n, nil
	}
}

// beforeEraseRevocations is CategoryRevocation's BeforeErase hook: with a
// Store (Store.Categories), it makes the queued revokes before their
// tokens go (revokeQueued).
func (s *Store) beforeEraseRevocations(ctx context.Context, tx bun.Tx, ids []string) error {
	if s == nil {
		return nil
	}
	return s.revokeQueued(ctx, tx, ids)
}
