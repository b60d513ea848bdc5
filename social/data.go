package social

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Count is a metric value a platform may not have given: a follower count
// behind a scope the user declined, a figure an API does not report for
// that kind of account. The zero Count is unknown, never 0. It is stored
// as NULL when unknown, prints "unknown" and marshals to JSON null.
type Count struct {
	// N is the value; meaningless unless Known.
	N int64
	// Known says the platform gave the value.
	Known bool
}

// KnownCount returns the known value n.
func KnownCount(n int64) Count { return Count{N: n, Known: true} }

// String returns the value in decimal, or "unknown".
func (c Count) String() string {
	if !c.Known {
		return "unknown"
	}
	return strconv.FormatInt(c.N, 10)
}

// MarshalJSON writes the value, or null when unknown.
func (c Count) MarshalJSON() ([]byte, error) {
	if !c.Known {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, c.N, 10), nil
}

// UnmarshalJSON reads a number, or null as unknown.
func (c *Count) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = Count{}
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("social: count: %w", err)
	}
	*c = KnownCount(n)
	return nil
}

// Value implements driver.Valuer: NULL when unknown.
func (c Count) Value() (driver.Value, error) {
	if !c.Known {
		return nil, nil
	}
	return c.N, nil
}

// Scan implements sql.Scanner: NULL scans as unknown.
func (c *Count) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c = Count{}
	case int64:
		*c = KnownCount(v)
	case []byte:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("social: scan count: %w", err)
		}
		*c = KnownCount(n)
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("social: scan count: %w", err)
		}
		*c = KnownCount(n)
	default:
		return fmt.Errorf("social: cannot scan %T into Count", src)
	}
	return nil
}

// Media is a post of a connected account, as last fetched. Signed CDN
// URLs (covers, avatars) are not kept: they expire within hours. Title,
// Description and ShareURL are stored only sealed by the vault (bound to
// the tenant, the row and the field); ids, counts and times stay in clear.
type Media struct {
	bun.BaseModel `bun:"table:socialcrm_social_media,alias:smd"`
	// MemberOwned is the connection's member: a creator reads only what
	// was pulled through its own connections.
	tenancy.MemberOwned

	// ID is the row's id: ConnectionID + ":" + ExternalID.
	ID           string    `bun:"id,notnull" json:"-"`
	ConnectionID string    `bun:"connection_id,pk" json:"connection_id"`
	ExternalID   string    `bun:"external_id,pk" json:"external_id"`
	Platform     string    `bun:"platform,notnull" json:"platform"`
	Kind         string    `bun:"kind,notnull" json:"kind"`
	Title        string    `bun:"-" json:"title"`
	Description  string    `bun:"-" json:"description"`
	ShareURL     string    `bun:"-" json:"share_url"`
	PublishedAt  time.Time `bun:"published_at,nullzero" json:"published_at"`
	DurationSec  int64     `bun:"duration_sec,notnull" json:"duration_sec"`
	// Views, Likes, Comments and Shares are unknown (NULL, JSON null)
	// when the platform's answer did not carry them: a field not
	// requested, a scope not granted, a metric that does not exist for
	// that kind of media.
	Views    Count `bun:"views,type:bigint" json:"views"`
	Likes    Count `bun:"likes,type:bigint" json:"likes"`
	Comments Count `bun:"comments,type:bigint" json:"comments"`
	Shares   Count `bun:"shares,type:bigint" json:"shares"`
	// Purposes are the connection's purposes when the data was collected.
	Purposes  Purposes  `bun:"purposes,type:text,notnull" json:"purposes"`
	FetchedAt time.Time `bun:"fetched_at,notnull" json:"fetched_at"`

	mediaSealed
}

// mediaSealed is the stored form of Media's texts.
type mediaSealed struct {
	TitleSealed       vault.Sealed `bun:"title_sealed" json:"-"`
	DescriptionSealed vault.Sealed `bun:"description_sealed" json:"-"`
	ShareURLSealed    vault.Sealed `bun:"share_url_sealed" json:"-"`
}

var _ bun.BeforeAppendModelHook = (*Media)(nil)

// BeforeAppendModel sets the tenant (tenancy.Owned) and, when it is empty,
// the row id of a media item being inserted.
func (m *Media) BeforeAppendModel(ctx context.Context, q bun.Query) error {
	if _, ok := q.(*bun.InsertQuery); ok && m.ID == "" {
		m.ID = MediaID(m.ConnectionID, m.ExternalID)
	}
	return m.MemberOwned.BeforeAppendModel(ctx, q)
}

// MediaID returns the row id of a connection's media item.
func MediaID(connectionID, externalID string) string { return connectionID + ":" + externalID }

// Snapshot is a connected account's metrics at one time; a series of them
// is the follower trend. A metric the platform did not give is an unknown
// Count, not 0. A snapshot holds figures only, no personal data, and is
// stored in clear.
type Snapshot struct {
	bun.BaseModel `bun:"table:socialcrm_social_snapshots,alias:ssn"`
	// MemberOwned is the connection's member: a creator reads only what
	// was pulled through its own connections.
	tenancy.MemberOwned

	ID           string    `bun:"id,pk" json:"id"`
	ConnectionID string    `bun:"connection_id,notnull" json:"connection_id"`
	Platform     string    `bun:"platform,notnull" json:"platform"`
	TakenAt      time.Time `bun:"taken_at,notnull" json:"taken_at"`
	Followers    Count     `bun:"followers,type:bigint" json:"followers"`
	Following    Count     `bun:"following,type:bigint" json:"following"`
	Likes        Count     `bun:"likes,type:bigint" json:"likes"`
	MediaCount   Count     `bun:"media_count,type:bigint" json:"media_count"`
	Views        Count     `bun:"views,type:bigint" json:"views"`
	// EngagementRate is (likes + comments + shares) / views over the media
	// fetched with the snapshot; 0 without views.
	EngagementRate float64  `bun:"engagement_rate,notnull" json:"engagement_rate"`
	Purposes       Purposes `bun:"purposes,type:text,notnull" json:"purposes"`
	// Source records what produced the figures when the platform's metric
	// names churn: for Meta, the Graph API version and the insights metric
	// names ("graph v26.0; page_media_view,page_follows"). Empty when the
	// platform's figures have no such provenance.
	Source string `bun:"source,notnull" json:"source,omitempty"`
	// Breakdowns are aggregates split by a dimension, such as an
	// audience's demographics: values by key for each breakdown
	// ({"country": {"US": 120, "DE": 80}}). They hold counts of people,
	// never who they are. Nil for snapshots without breakdowns.
	Breakdowns map[string]map[string]int64 `bun:"breakdowns,type:text" json:"breakdowns,omitempty"`
}

// RawResponse is a platform answer kept verbatim, only when the
// application asks for it (its own retention category, 90 days by
// default). Body is stored only sealed.
type RawResponse struct {
	bun.BaseModel `bun:"table:socialcrm_social_raw_responses,alias:srr"`
	// MemberOwned is the connection's member: a creator reads only what
	// was pulled through its own connections.
	tenancy.MemberOwned

	ID           string    `bun:"id,pk" json:"id"`
	ConnectionID string    `bun:"connection_id,notnull" json:"connection_id"`
	Platform     string    `bun:"platform,notnull" json:"platform"`
	Endpoint     string    `bun:"endpoint,notnull" json:"endpoint"`
	Body         string    `bun:"-" json:"body"`
	FetchedAt    time.Time `bun:"fetched_at,notnull" json:"fetched_at"`

	BodySealed vault.Sealed `bun:"body_sealed" json:"-"`
}

// SyncResult is what a platform client's Sync pulled. Snapshot is nil when
// the sync read no metrics (a profile-only sync).
type SyncResult struct {
	DisplayName string
	Snapshot    *Snapshot
	Media       []Media
	Raw         []RawResponse
}

// EngagementRate returns (likes + comments + shares) / views over media,
// 0 when they have no views. A media item whose views are unknown is left
// out; an unknown likes, comments or shares count adds nothing (it is not
// taken as 0 interactions, only not counted).
func EngagementRate(media []Media) float64 {
	var views, engaged int64
	for _, m := range media {
		if !m.Views.Known {
			continue
		}
		views += m.Views.N
		for _, c := range []Count{m.Likes, m.Comments, m.Shares} {
			if c.Known {
				engaged += c.N
			}
		}
	}
	if views == 0 {
		return 0
	}
	return float64(engaged) / float64(views)
}

// Field names the sealed values are bound to (vault.Binding.Field).
const (
	fieldTitle       = "title"
	fieldDescription = "description"
	fieldShareURL    = "share_url"
	fieldBody        = "body"
	fieldDisplayName = "display_name"
	fieldAvatarURL   = "avatar_url"
)

// seal seals plaintext bound to record and field; "" stays the zero Sealed.
func (s *Store) seal(ctx context.Context, plaintext, record, field string) (vault.Sealed, error) {
	if plaintext == "" {
		return vault.Sealed{}, nil
	}
	return s.vault.Seal(ctx, []byte(plaintext), vault.Binding{Record: record, Field: field})
}

// open opens a value sealed by seal; the zero Sealed is "".
func (s *Store) open(ctx context.Context, v vault.Sealed, record, field string) (string, error) {
	if v.IsZero() {
		return "", nil
	}
	sec, err := s.vault.Open(ctx, v, vault.Binding{Record: record, Field: field})
	if err != nil {
		return "", err
	}
	defer sec.Wipe()
	return string(sec.Reveal()), nil
}

func (s *Store) sealMedia(ctx context.Context, m *Media) error {
	var err error
	if m.TitleSealed, err = s.seal(ctx, m.Title, m.ID, fieldTitle); err != nil {
		return err
	}
	if m.DescriptionSealed, err = s.seal(ctx, m.Description, m.ID, fieldDescription); err != nil {
		return err
	}
	m.ShareURLSealed, err = s.seal(ctx, m.ShareURL, m.ID, fieldShareURL)
	return err
}

func (s *Store) openMedia(ctx context.Context, m *Media) error {
	var err error
	if m.Title, err = s.open(ctx, m.TitleSealed, m.ID, fieldTitle); err != nil {
		return err
	}
	if m.Description, err = s.open(ctx, m.DescriptionSealed, m.ID, fieldDescription); err != nil {
		return err
	}
	m.ShareURL, err = s.open(ctx, m.ShareURLSealed, m.ID, fieldShareURL)
	return err
}

// saveSync stores r for connection c in one transaction: media upserted,
// one snapshot appended (when r has one), raw responses appended, the
// connection's profile updated and the connection marked synced.
// Everything is tagged with the connection's purposes. Texts are sealed
// before the transaction begins, so that no database connection is held
// while the vault loads a key.
func (s *Store) saveSync(ctx context.Context, c Connection, r *SyncResult) error {
	now := s.clock()
	for i := range r.Media {
		m := &r.Media[i]
		m.ID, m.ConnectionID, m.Platform, m.Purposes, m.FetchedAt = MediaID(c.ID, m.ExternalID), c.ID, c.Platform, c.Purposes, now
		m.MemberID = c.MemberID
		if err := s.sealMedia(ctx, m); err != nil {
			return err
		}
	}
	for i := range r.Raw {
		raw := &r.Raw[i]
		raw.ID, raw.ConnectionID, raw.Platform, raw.FetchedAt = tenancy.NewID(), c.ID, c.Platform, now
		raw.MemberID = c.MemberID
		var err error
		if raw.BodySealed, err = s.seal(ctx, raw.Body, raw.ID, fieldBody); err != nil {
			return err
		}
	}
	upd := c
	if r.DisplayName != "" {
		upd.DisplayName = r.DisplayName
	}
	if err := s.sealProfile(ctx, &upd); err != nil {
		return err
	}
	return s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if len(r.Media) > 0 {
			if _, err := tx.NewInsert().Model(&r.Media).
				// The target names the member (a unique index of its
				// own): a creator's upsert meets only its own rows.
				On("CONFLICT (tenant_id, member_id, connection_id, external_id) DO UPDATE").
				Set("title_sealed = EXCLUDED.title_sealed, description_sealed = EXCLUDED.description_sealed, share_url_sealed = EXCLUDED.share_url_sealed").
				Set("views = EXCLUDED.views, likes = EXCLUDED.likes, comments = EXCLUDED.comments, shares = EXCLUDED.shares").
				Set("fetched_at = EXCLUDED.fetched_at").Exec(ctx); err != nil {
				return err
			}
		}
		if sn := r.Snapshot; sn != nil {
			sn.ID, sn.ConnectionID, sn.Platform, sn.TakenAt, sn.Purposes = tenancy.NewID(), c.ID, c.Platform, now, c.Purposes
			sn.MemberID = c.MemberID
			if _, err := tx.NewInsert().Model(sn).Exec(ctx); err != nil {
				return err
			}
		}
		if len(r.Raw) > 0 {
			if _, err := tx.NewInsert().Model(&r.Raw).Exec(ctx); err != nil {
				return err
			}
		}
		_, err := tx.NewUpdate().Model((*Connection)(nil)).
			Set("display_name_sealed = ?", upd.DisplayNameSealed).Set("avatar_url_sealed = ?", upd.AvatarURLSealed).
			Set("last_sync_at = ?", now).Set("updated_at = ?", now).
			Where("id = ?", c.ID).Exec(ctx)
		return err
	})
}

// SaveSync stores what a platform client's Sync pulled for the session's
// connection (see Store.saveSync).
func (ss *Session) SaveSync(ctx context.Context, r *SyncResult) error {
	if err := ss.store.saveSync(ctx, ss.conn, r); err != nil {
		return fmt.Errorf("social: save sync: %w", err)
	}
	return nil
}

// Snapshots returns the connection's snapshots, oldest first: its follower
// trend.
func (s *Store) Snapshots(ctx context.Context, connectionID string) ([]Snapshot, error) {
	if err := noClient(ctx); err != nil {
		return nil, err
	}
	var out []Snapshot
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&out).Where("connection_id = ?", connectionID).Order("taken_at", "id").Scan(ctx)
	})
	for i := range out {
		out[i].TakenAt = out[i].TakenAt.UTC()
	}
	return out, err
}

// Media returns the connection's media, newest first, with their texts
// opened.
func (s *Store) Media(ctx context.Context, connectionID string) ([]Media, error) {
	if err := noClient(ctx); err != nil {
		return nil, err
	}
	var out []Media
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&out).Where("connection_id = ?", connectionID).Order("published_at DESC", "external_id").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("social: media: %w", err)
	}
	for i := range out {
		if err := s.openMedia(ctx, &out[i]); err != nil {
			return nil, fmt.Errorf("social: media: %w", err)
		}
	}
	return out, nil
}

// RawResponses returns how many raw responses the connection has kept.
func (s *Store) RawResponses(ctx context.Context, connectionID string) (int, error) {
	if err := noClient(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		c, err := tx.NewSelect().Model((*RawResponse)(nil)).Apply(tenancy.Scope(ctx)).Where("connection_id = ?", connectionID).Count(ctx)
		n = int(c)
		return err
	})
	return n, err
}

// RawResponseBodies returns the connection's raw responses, oldest first,
// with their bodies opened.
func (s *Store) RawResponseBodies(ctx context.Context, connectionID string) ([]RawResponse, error) {
	if err := noClient(ctx); err != nil {
		return nil, err
	}
	var out []RawResponse
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&out).Where("connection_id = ?", connectionID).Order("fetched_at", "id").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("social: raw responses: %w", err)
	}
	for i := range out {
		r := &out[i]
		if r.Body, err = s.open(ctx, r.BodySealed, r.ID, fieldBody); err != nil {
			return nil, fmt.Errorf("social: raw responses: %w", err)
		}
		r.FetchedAt = r.FetchedAt.UTC()
	}
	return out, nil
}

// ErrUnknownSealedColumn is returned by OpenSealed for a column the
// package does not seal.
var ErrUnknownSealedColumn = errors.New("social: not a sealed column of the package")

// OpenSealed opens the value of a sealed column of the row id of table, in
// the context's tenant: the export of a data-subject request reads it so
// (Store.Categories binds it to each sealed column).
func (s *Store) OpenSealed(ctx context.Context, table, column, id string, sealed []byte) (string, error) {
	if err := noClient(ctx); err != nil {
		return "", err
	}
	for _, f := range sealedFields[table] {
		if f.column != column {
			continue
		}
		v, err := vault.ParseSealed(sealed)
		if err != nil {
			return "", fmt.Errorf("social: open %s.%s: %w", table, column, err)
		}
		out, err := s.open(ctx, v, id, f.as)
		if err != nil {
			return "", fmt.Errorf("social: open %s.%s: %w", table, column, err)
		}
		return out, nil
	}
	return "", fmt.Errorf("%w: %s.%s", ErrUnknownSealedColumn, table, column)
}
