package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
)

// tablePublishes records each TikTok publish by its idempotency key, per
// tenant: written before the init is sent, updated after TikTok answers.
// A request with a key already recorded never sends again.
const tablePublishes = "example_tiktok_publishes"

// The states of a recorded publish.
const (
	publishSending = "sending" // written before the init; still so if the answer never came
	publishStarted = "started" // TikTok created the task (PublishID) or the post is listed (VideoID)
	publishFailed  = "failed"  // TikTok refused the init: nothing was posted
	publishInDoubt = "in_doubt"
)

// publishRecord is one publish of a tenant, by its idempotency key.
type publishRecord struct {
	bun.BaseModel `bun:"table:example_tiktok_publishes,alias:etp"`
	tenancy.Owned

	Key          string    `bun:"idem_key,pk"`
	ConnectionID string    `bun:"connection_id,notnull"`
	Fingerprint  string    `bun:"fingerprint,notnull"` // SHA-256 of the request: connection, choices, title and video
	State        string    `bun:"state,notnull"`
	PublishID    string    `bun:"publish_id,notnull"`
	VideoID      string    `bun:"video_id,notnull"`
	ErrorStatus  int       `bun:"error_status,notnull"`
	ErrorCode    string    `bun:"error_code,notnull"`
	SentAt       time.Time `bun:"sent_at,notnull"`
	UpdatedAt    time.Time `bun:"updated_at,notnull"`
}

// maxIdempotencyKey bounds an Idempotency-Key.
const maxIdempotencyKey = 255

var (
	errKeyRequired = &apiError{Status: http.StatusBadRequest, Code: "idempotency_key_required",
		Message: "send an Idempotency-Key header (1 to 255 visible ASCII characters), a new one for each publish"}
	errKeyReused = &apiError{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused",
		Message: "this Idempotency-Key was used for a different publish request; use a new key"}
	errPublishInProgress = &apiError{Status: http.StatusConflict, Code: "publish_in_progress",
		Message: "a publish with this Idempotency-Key is being sent; ask again in a moment"}
	errPublishInDoubt = &apiError{Status: http.StatusConflict, Code: "publish_in_doubt",
		Message: "a publish with this Idempotency-Key was sent but its outcome is unknown: check the account on TikTok before posting again; it is never sent again automatically"}
)

// idempotencyKey returns the request's Idempotency-Key header, or the
// form's idempotency_key (the console's one-time hidden field).
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		k = r.FormValue("idempotency_key")
	}
	if k == "" || len(k) > maxIdempotencyKey {
		return "", errKeyRequired
	}
	for i := range len(k) {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", errKeyRequired
		}
	}
	return k, nil
}

// fingerprint hashes what the publish sends: a key reused for another
// request is told apart from a resent one. It reads the video and rewinds
// it.
func fingerprint(connID string, f publishForm) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%q|%q|%t|%t|%t|%t|%t|%d|", connID, f.Title, f.PrivacyLevel,
		f.AllowComment, f.AllowDuet, f.AllowStitch, f.BrandOrganic, f.BrandContent, f.Size)
	if _, err := io.Copy(h, f.Video); err != nil {
		return "", fmt.Errorf("read video: %w", err)
	}
	if _, err := f.Video.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("rewind video: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// publishOutcome is what a publish answers.
type publishOutcome struct {
	PublishID string
	VideoID   string
	Status    *tiktok.PublishStatus
	// Replayed is set when the key was already recorded: nothing was sent.
	Replayed bool
}

// publishOnce publishes f at most once per key: a key already recorded
// answers its recorded outcome without calling TikTok's init again, and
// resolves a publish whose answer never came with Posting.Lookup.
func (a *app) publishOnce(ctx context.Context, c social.Connection, f publishForm, key string) (publishOutcome, error) {
	p, ok := tenancy.FromContext(ctx)
	if !ok {
		return publishOutcome{}, tenancy.ErrNoTenant
	}
	fp, err := fingerprint(c.ID, f)
	if err != nil {
		return publishOutcome{}, err
	}
	// One request per key at a time in this process; across processes
	// the record's primary key decides.
	slot := p.TenantID + "\x00" + key
	if _, busy := a.publishing.LoadOrStore(slot, struct{}{}); busy {
		return publishOutcome{}, errPublishInProgress
	}
	defer a.publishing.Delete(slot)

	if rec, ok, err := a.loadPublish(ctx, key); err != nil {
		return publishOutcome{}, err
	} else if ok {
		return a.replayPublish(ctx, rec, fp, f)
	}
	client, err := a.plat.tiktokClient(ctx, a.sdk.Social, c.ID)
	if err != nil {
		return publishOutcome{}, err
	}
	req, src, err := publishRequest(ctx, client, f)
	if err != nil {
		return publishOutcome{}, err
	}
	now := time.Now().UTC()
	rec := &publishRecord{Owned: tenancy.Owned{TenantID: p.TenantID}, Key: key, ConnectionID: c.ID, Fingerprint: fp,
		State: publishSending, SentAt: now, UpdatedAt: now}
	claimed, err := a.claimPublish(ctx, rec)
	if err != nil {
		return publishOutcome{}, err
	}
	if !claimed { // another replica recorded the key first
		other, ok, err := a.loadPublish(ctx, key)
		if err != nil || !ok {
			return publishOutcome{}, errors.Join(errPublishInProgress, err)
		}
		return a.replayPublish(ctx, other, fp, f)
	}

	init, _, err := client.Posting.InitVideo(ctx, req)
	if err != nil {
		var ou *tiktok.OutcomeUnknownError
		if errors.As(err, &ou) {
			rec.PublishID = ou.PublishID
			rec.SentAt = ou.SentAt.UTC()
			return a.resolvePublish(ctx, client, rec, f.Title)
		}
		ae, _ := toAPIError(err)
		rec.State = publishFailed
		if ae != nil {
			rec.ErrorStatus, rec.ErrorCode = ae.Status, ae.Code
		}
		if uerr := a.updatePublish(ctx, rec); uerr != nil {
			return publishOutcome{}, errors.Join(err, uerr)
		}
		return publishOutcome{}, err
	}
	rec.State, rec.PublishID = publishStarted, init.PublishID
	if err := a.updatePublish(ctx, rec); err != nil {
		return publishOutcome{}, err
	}
	if _, err := client.Posting.Upload(ctx, init.UploadURL, f.Video, src, "video/mp4"); err != nil {
		return publishOutcome{}, fmt.Errorf("upload: %w", err)
	}
	st, _, err := client.Posting.Status(ctx, init.PublishID)
	return publishOutcome{PublishID: init.PublishID, Status: st}, err
}

// replayPublish answers a key already recorded, without sending again.
func (a *app) replayPublish(ctx context.Context, rec publishRecord, fp string, f publishForm) (publishOutcome, error) {
	if rec.Fingerprint != fp {
		return publishOutcome{}, errKeyReused
	}
	client, err := a.plat.tiktokClient(ctx, a.sdk.Social, rec.ConnectionID)
	if err != nil {
		return publishOutcome{}, err
	}
	switch rec.State {
	case publishStarted:
		out := publishOutcome{PublishID: rec.PublishID, VideoID: rec.VideoID, Replayed: true}
		if rec.PublishID != "" {
			if out.Status, _, err = client.Posting.Status(ctx, rec.PublishID); err != nil {
				return publishOutcome{}, err
			}
		}
		return out, nil
	case publishFailed:
		return publishOutcome{}, &apiError{Status: cmp.Or(rec.ErrorStatus, http.StatusBadGateway), Code: cmp.Or(rec.ErrorCode, "platform_error"),
			Message: "this publish failed when it was first sent (nothing was posted); use a new Idempotency-Key to try again"}
	default: // sending (its process died or its answer was lost) or in doubt
		out, err := a.resolvePublish(ctx, client, &rec, f.Title)
		if err == nil {
			out.Replayed = true
		}
		return out, err
	}
}

// resolvePublish looks up a publish whose answer never came: found, it is
// started; not found, it stays in doubt (errPublishInDoubt) and is never
// sent again.
func (a *app) resolvePublish(ctx context.Context, client *tiktok.Client, rec *publishRecord, title string) (publishOutcome, error) {
	l, err := client.Posting.Lookup(ctx, &tiktok.OutcomeUnknownError{PublishID: rec.PublishID, SentAt: rec.SentAt}, title)
	if err != nil || !l.Found() {
		if err != nil {
			a.log.WarnContext(ctx, "tiktok publish lookup", "err", err)
		}
		rec.State = publishInDoubt
		if uerr := a.updatePublish(ctx, rec); uerr != nil {
			return publishOutcome{}, uerr
		}
		return publishOutcome{}, errPublishInDoubt
	}
	rec.State, rec.PublishID = publishStarted, l.PublishID
	if l.Video != nil {
		rec.VideoID = l.Video.ID
	}
	if err := a.updatePublish(ctx, rec); err != nil {
		return publishOutcome{}, err
	}
	return publishOutcome{PublishID: rec.PublishID, VideoID: rec.VideoID, Status: l.Status}, nil
}

func (a *app) loadPublish(ctx context.Context, key string) (publishRecord, bool, error) {
	var recs []publishRecord
	err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&recs).Where("idem_key = ?", key).Limit(1).Scan(ctx)
	})
	if err != nil || len(recs) == 0 {
		return publishRecord{}, false, err
	}
	return recs[0], true, nil
}

// claimPublish records rec before anything is sent; false when the key is
// recorded already.
func (a *app) claimPublish(ctx context.Context, rec *publishRecord) (bool, error) {
	var n int64
	err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewInsert().Model(rec).On("CONFLICT (tenant_id, idem_key) DO NOTHING").Exec(ctx)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

// updatePublish records rec's outcome, even when the request's context
// ended meanwhile (a client that went away): what TikTok answered must
// not be lost. An outcome TikTok answered (started, failed) replaces
// whatever a lookup concluded meanwhile.
func (a *app) updatePublish(ctx context.Context, rec *publishRecord) error {
	rec.UpdatedAt = time.Now().UTC()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model((*publishRecord)(nil)).
			Set("state = ?", rec.State).Set("publish_id = ?", rec.PublishID).Set("video_id = ?", rec.VideoID).
			Set("error_status = ?", rec.ErrorStatus).Set("error_code = ?", rec.ErrorCode).
			Set("sent_at = ?", rec.SentAt).Set("updated_at = ?", rec.UpdatedAt).
			Where("idem_key = ?", rec.Key).Exec(ctx)
		return err
	})
}

// publishesInDoubt lists the connection's publishes whose outcome is not
// known (in doubt, or sending with no request of this process at work on
// them), newest first, for the console's warning.
func (a *app) publishesInDoubt(ctx context.Context, connID string) ([]publishRecord, error) {
	p, ok := tenancy.FromContext(ctx)
	if !ok {
		return nil, tenancy.ErrNoTenant
	}
	var recs []publishRecord
	err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&recs).Where("connection_id = ?", connID).
			Where("state IN (?)", bun.In([]string{publishSending, publishInDoubt})).
			Order("sent_at DESC").Limit(20).Scan(ctx)
	})
	out := recs[:0]
	for _, r := range recs {
		if _, busy := a.publishing.Load(p.TenantID + "\x00" + r.Key); !busy {
			out = append(out, r)
		}
	}
	return out, err
}

// migratePublishes creates the publishes table, tenant-owned with
// row-level security on PostgreSQL.
func migratePublishes(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS ? (tenant_id TEXT NOT NULL, idem_key TEXT NOT NULL, "+
		"connection_id TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL, publish_id TEXT NOT NULL, "+
		"video_id TEXT NOT NULL, error_status INTEGER NOT NULL, error_code TEXT NOT NULL, sent_at TIMESTAMP NOT NULL, "+
		"updated_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, idem_key))", bun.Ident(tablePublishes)); err != nil {
		return fmt.Errorf("create %s: %w", tablePublishes, err)
	}
	if _, err := db.ExecContext(ctx, "CREATE INDEX IF NOT EXISTS example_tiktok_publishes_connection ON ? (tenant_id, connection_id, state)",
		bun.Ident(tablePublishes)); err != nil {
		return fmt.Errorf("index %s: %w", tablePublishes, err)
	}
	return tenancy.EnableRowSecurity(ctx, db, tablePublishes)
}

// writePublish answers a publish: 202 with the task, or 200 with
// Idempotent-Replayed when the key's first request already sent it.
func (a *app) writePublish(w http.ResponseWriter, out publishOutcome) {
	body := map[string]any{"publish_id": out.PublishID, "status": out.Status, "mode": mode(a.plat.tiktokSandbox)}
	if out.VideoID != "" {
		body["video_id"] = out.VideoID
	}
	if out.Replayed {
		w.Header().Set("Idempotent-Replayed", strconv.FormatBool(true))
	}
	writeJSON(w, http.StatusAccepted, body)
}

// publishFlash is the console's message after a publish.
func publishFlash(out publishOutcome) string {
	msg := "Published"
	if out.Replayed {
		msg = "Already sent with this form (not sent again)"
	}
	if out.Status != nil {
		msg += ": " + out.Status.Status
	}
	return msg + "."
}

// publishKeep is how long a publish's record, and so its key, is kept.
const publishKeep = 90 * 24 * time.Hour

// publishCategory declares the publishes table to the retention engine.
// A row names the creator's connection and her publish and video ids at
// TikTok (with keys, states and a hash of the request): a request that
// resolves to the connection (by open_id, account id or connection id)
// exports and erases her rows with it.
func publishCategory() retention.Category {
	return retention.Category{
		Name: "example.tiktok_publish", Table: tablePublishes, ID: "idem_key", Time: "sent_at",
		Subject:    map[string]string{social.SubjectConnection: "connection_id"},
		LegalBasis: "contract: posting once at the user's instruction",
		Purpose:    "TikTok publishes by idempotency key, so that a resent request never posts twice",
	}
}

func publishRule() retention.Rule {
	return retention.Rule{Category: "example.tiktok_publish", Period: publishKeep,
		Note: "a key resent after 90 days is a new publish"}
}
