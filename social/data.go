package social

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// Media is a post of a connected account, as last fetched. Signed CDN
// URLs (covers, avatars) are not kept: they expire within hours.
type Media struct {
	bun.BaseModel `bun:"table:socialcrm_social_media,alias:smd"`
	tenancy.Owned

	ConnectionID string    `bun:"connection_id,pk" json:"connection_id"`
	ExternalID   string    `bun:"external_id,pk" json:"external_id"`
	Platform     string    `bun:"platform,notnull" json:"platform"`
	Kind         string    `bun:"kind,notnull" json:"kind"`
	Title        string    `bun:"title,notnull" json:"title"`
	Description  string    `bun:"description,notnull" json:"description"`
	ShareURL     string    `bun:"share_url,notnull" json:"share_url"`
	PublishedAt  time.Time `bun:"published_at,nullzero" json:"published_at"`
	DurationSec  int64     `bun:"duration_sec,notnull" json:"duration_sec"`
	Views        int64     `bun:"views,notnull" json:"views"`
	Likes        int64     `bun:"likes,notnull" json:"likes"`
	Comments     int64     `bun:"comments,notnull" json:"comments"`
	Shares       int64     `bun:"shares,notnull" json:"shares"`
	// Purposes are the connection's purposes when the data was collected.
	Purposes  Purposes  `bun:"purposes,type:text,notnull" json:"purposes"`
	FetchedAt time.Time `bun:"fetched_at,notnull" json:"fetched_at"`
}

// Snapshot is a connected account's metrics at one time; a series of them
// is the follower trend.
type Snapshot struct {
	bun.BaseModel `bun:"table:socialcrm_social_snapshots,alias:ssn"`
	tenancy.Owned

	ID           string    `bun:"id,pk" json:"id"`
	ConnectionID string    `bun:"connection_id,notnull" json:"connection_id"`
	Platform     string    `bun:"platform,notnull" json:"platform"`
	TakenAt      time.Time `bun:"taken_at,notnull" json:"taken_at"`
	Followers    int64     `bun:"followers,notnull" json:"followers"`
	Following    int64     `bun:"following,notnull" json:"following"`
	Likes        int64     `bun:"likes,notnull" json:"likes"`
	MediaCount   int64     `bun:"media_count,notnull" json:"media_count"`
	Views        int64     `bun:"views,notnull" json:"views"`
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
// default).
type RawResponse struct {
	bun.BaseModel `bun:"table:socialcrm_social_raw_responses,alias:srr"`
	tenancy.Owned

	ID           string    `bun:"id,pk" json:"id"`
	ConnectionID string    `bun:"connection_id,notnull" json:"connection_id"`
	Platform     string    `bun:"platform,notnull" json:"platform"`
	Endpoint     string    `bun:"endpoint,notnull" json:"endpoint"`
	Body         string    `bun:"body,notnull" json:"body"`
	FetchedAt    time.Time `bun:"fetched_at,notnull" json:"fetched_at"`
}

// SyncResult is what a platform client's Sync pulled.
type SyncResult struct {
	DisplayName string
	Snapshot    Snapshot
	Media       []Media
	Raw         []RawResponse
}

// EngagementRate returns (likes + comments + shares) / views over media,
// 0 when they have no views.
func EngagementRate(media []Media) float64 {
	var views, engaged int64
	for _, m := range media {
		views += m.Views
		engaged += m.Likes + m.Comments + m.Shares
	}
	if views == 0 {
		return 0
	}
	return float64(engaged) / float64(views)
}

// saveSync stores r for connection c in one transaction: media upserted,
// one snapshot appended, raw responses appended, the connection marked
// synced. Everything is tagged with the connection's purposes.
func (s *Store) saveSync(ctx context.Context, c Connection, r *SyncResult) error {
	now := s.clock()
	return s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		for i := range r.Media {
			m := &r.Media[i]
			m.ConnectionID, m.Platform, m.Purposes, m.FetchedAt = c.ID, c.Platform, c.Purposes, now
		}
		if len(r.Media) > 0 {
			if _, err := tx.NewInsert().Model(&r.Media).
				On("CONFLICT (tenant_id, connection_id, external_id) DO UPDATE").
				Set("title = EXCLUDED.title, description = EXCLUDED.description, share_url = EXCLUDED.share_url").
				Set("views = EXCLUDED.views, likes = EXCLUDED.likes, comments = EXCLUDED.comments, shares = EXCLUDED.shares").
				Set("fetched_at = EXCLUDED.fetched_at").Exec(ctx); err != nil {
				return err
			}
		}
		sn := &r.Snapshot
		sn.ID, sn.ConnectionID, sn.Platform, sn.TakenAt, sn.Purposes = tenancy.NewID(), c.ID, c.Platform, now, c.Purposes
		if _, err := tx.NewInsert().Model(sn).Exec(ctx); err != nil {
			return err
		}
		for i := range r.Raw {
			raw := &r.Raw[i]
			raw.ID, raw.ConnectionID, raw.Platform, raw.FetchedAt = tenancy.NewID(), c.ID, c.Platform, now
		}
		if len(r.Raw) > 0 {
			if _, err := tx.NewInsert().Model(&r.Raw).Exec(ctx); err != nil {
				return err
			}
		}
		_, err := tx.NewUpdate().Model((*Connection)(nil)).
			Set("display_name = ?", r.DisplayName).Set("last_sync_at = ?", now).Set("updated_at = ?", now).
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
	var out []Snapshot
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&out).Where("connection_id = ?", connectionID).Order("taken_at", "id").Scan(ctx)
	})
	for i := range out {
		out[i].TakenAt = out[i].TakenAt.UTC()
	}
	return out, err
}

// Media returns the connection's media, newest first.
func (s *Store) Media(ctx context.Context, connectionID string) ([]Media, error) {
	var out []Media
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&out).Where("connection_id = ?", connectionID).Order("published_at DESC", "external_id").Scan(ctx)
	})
	return out, err
}

// RawResponses returns how many raw responses the connection has kept.
func (s *Store) RawResponses(ctx context.Context, connectionID string) (int, error) {
	n := 0
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		c, err := tx.NewSelect().Model((*RawResponse)(nil)).Apply(tenancy.Scope(ctx)).Where("connection_id = ?", connectionID).Count(ctx)
		n = int(c)
		return err
	})
	return n, err
}

// DataCategory declares one kind of data the package keeps, for the
// retention engine (which the root package wires; social does not import
// it). Subject rows are found by SubjectColumn = the connection id.
type DataCategory struct {
	Name          string
	Table         string
	SubjectColumn string
	TimeColumn    string
	// Period is the default retention period (P7: raw responses 90 days,
	// aggregated metrics 24 months).
	Period     time.Duration
	LegalBasis string
	// PurgeOnDisconnect says the rows go when their connection is
	// disconnected (after the policy's grace).
	PurgeOnDisconnect bool
}

// DataCategories returns the social categories: media, snapshots and raw
// responses.
func DataCategories() []DataCategory {
	const day = 24 * time.Hour
	return []DataCategory{
		{Name: "social.media", Table: TableMedia, SubjectColumn: "connection_id", TimeColumn: "fetched_at",
			Period: 730 * day, LegalBasis: "consent", PurgeOnDisconnect: true},
		{Name: "social.metric_snapshots", Table: TableSnapshots, SubjectColumn: "connection_id", TimeColumn: "taken_at",
			Period: 730 * day, LegalBasis: "consent", PurgeOnDisconnect: true},
		{Name: "social.raw_responses", Table: TableRawResponses, SubjectColumn: "connection_id", TimeColumn: "fetched_at",
			Period: 90 * day, LegalBasis: "consent", PurgeOnDisconnect: true},
	}
}
