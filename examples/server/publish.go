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
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/vault"
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
	Fingerprint  string    `bun:"fingerprint,notnull"` // keyed hash (keyFingerprint) of the SHA-256 of the request: connection, choices, title and video
	State        string    `bun:"state,notnull"`
	PublishID    string    `bun:"publish_id,notnull"`
	VideoID      string    `bun:"video_id,notnull"`
	ErrorStatus  int       `bun:"error_status,notnull"`
	ErrorCode    string    `bun:"error_code,notnull"`
	SentAt       time.Time `bun:"sent_at,notnull"`
	UpdatedAt    time.Time `bun:"updated_at,notnull"`
	// LeaseUntil is when a sending or in-doubt record's lease lapses, on
	// its holder's clock: informational, never compared with another
	// replica's clock. leaseLapsed marks a lease released (an outcome was
	// recorded, or the record predates leases).
	LeaseUntil time.Time `bun:"lease_until,notnull"`
	// Beat counts the renewals of the lease: its holder (the sender, or a
	// replica looking the publish up) bumps it every PublishLease/3.
	// Another replica takes the lease over only once it has itself seen
	// Beat stand still for PublishLease, on its own clock.
	Beat int64 `bun:"lease_beat,notnull"`
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

// fingerprintPrefix marks a keyed fingerprint (keyFingerprint).
const fingerprintPrefix = "k1:"

// keyFingerprint returns what a publish record stores of the fingerprint
// digest (hex): its blind index under the tenant's key, so that the
// stored value names no title or video to a reader without the key (an
// unkeyed SHA-256 of a known video matches), and nothing once the key is
// destroyed.
func keyFingerprint(ctx context.Context, v *vault.Vault, digest string) (string, error) {
	h, err := v.Index(ctx, digest, "example.publish.fingerprint")
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	return fingerprintPrefix + h, nil
}

// keyFingerprints replaces, in every tenant, the unkeyed fingerprints an
// older version stored by their keyed form (keyFingerprint of the stored
// digest, which is what a resent request's fingerprint now is). Running
// it again changes nothing.
func keyFingerprints(ctx context.Context, sdk *socialcrm.SDK) error {
	sys := tenancy.System(ctx, "example.publish.fingerprints")
	tenants, err := sdk.Tenants.Tenants(sys, tenancy.TenantFilter{})
	if err != nil {
		return err
	}
	for _, t := range tenants {
		tctx, err := tenancy.AsTenant(sys, t.ID)
		if err != nil {
			return err
		}
		var recs []publishRecord
		if err := tenancy.RunInTx(tctx, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&recs).Column("idem_key", "fingerprint").
				Where("fingerprint NOT LIKE ?", fingerprintPrefix+"%").Scan(ctx)
		}); err != nil {
			return fmt.Errorf("key fingerprints: %w", err)
		}
		for _, r := range recs {
			keyed, err := keyFingerprint(tctx, sdk.Vault, r.Fingerprint)
			if err != nil {
				return err
			}
			if err := tenancy.RunInTx(tctx, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*publishRecord)(nil)).Set("fingerprint = ?", keyed).
					Where("idem_key = ?", r.Key).Where("fingerprint = ?", r.Fingerprint).Exec(ctx)
				return err
			}); err != nil {
				return fmt.Errorf("key fingerprints: %w", err)
			}
		}
	}
	return nil
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
//
// Across replicas the record's primary key decides who sends, and the
// sender holds a lease on the record (lease_beat, bumped by a heartbeat)
// until TikTok's answer is recorded: while it is live, another replica
// answers 409 publish_in_progress and never concludes anything. Only once
// the lease has lapsed (the sender was killed, or lost the database) does
// another replica take the lease over, look the publish up and record it
// started or in doubt. Whether it lapsed, a replica judges on its own
// clock alone (leaseWatch): the replicas' clocks need not agree. Every write of an outcome is a compare-and-swap on
// the state: a started or failed record is never overwritten, and a
// replica that loses the swap answers the record it lost to.
func (a *app) publishOnce(ctx context.Context, c social.Connection, f publishForm, key string) (publishOutcome, error) {
	p, ok := tenancy.FromContext(ctx)
	if !ok {
		return publishOutcome{}, tenancy.ErrNoTenant
	}
	fp, err := fingerprint(c.ID, f)
	if err != nil {
		return publishOutcome{}, err
	}
	if fp, err = keyFingerprint(ctx, a.sdk.Vault, fp); err != nil {
		return publishOutcome{}, err
	}
	// One request per key at a time in this process; across processes
	// the record's primary key and its lease decide.
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
	now := a.now().UTC()
	rec := &publishRecord{Owned: tenancy.Owned{TenantID: p.TenantID}, Key: key, ConnectionID: c.ID, Fingerprint: fp,
		State: publishSending, SentAt: now, UpdatedAt: now, LeaseUntil: now.Add(a.cfg.PublishLease)}
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
	stop := a.heartbeat(ctx, rec)
	init, _, err := client.Posting.InitVideo(ctx, req)
	if err != nil {
		var ou *tiktok.OutcomeUnknownError
		if errors.As(err, &ou) {
			rec.PublishID = ou.PublishID
			rec.SentAt = ou.SentAt.UTC()
			return a.resolvePublish(ctx, client, rec, f.Title, stop)
		}
		stop()
		ae, _ := toAPIError(err)
		rec.State = publishFailed
		if ae != nil {
			rec.ErrorStatus, rec.ErrorCode = ae.Status, ae.Code
		}
		if _, uerr := a.settlePublish(ctx, rec); uerr != nil {
			return publishOutcome{}, errors.Join(err, uerr)
		}
		return publishOutcome{}, err
	}
	stop()
	rec.State, rec.PublishID = publishStarted, init.PublishID
	if other, err := a.settlePublish(ctx, rec); err != nil {
		return publishOutcome{}, err
	} else if other != nil && (other.State != publishStarted || other.PublishID != rec.PublishID) {
		// Cannot happen while TikTok answers one init once; say so
		// rather than answer two outcomes for one key.
		return publishOutcome{}, errPublishInDoubt
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
	if rec.State == publishSending || rec.State == publishInDoubt {
		// Its sender is at work (live lease), or gone: take the lease
		// over to look the publish up, or answer that it is in progress.
		took, err := a.takeOverPublish(ctx, &rec)
		if err != nil {
			return publishOutcome{}, err
		}
		if !took {
			if rec.State == publishSending || rec.State == publishInDoubt {
				return publishOutcome{}, errPublishInProgress
			}
		} else {
			out, err := a.resolvePublish(ctx, client, &rec, f.Title, a.heartbeat(ctx, &rec))
			if err == nil {
				out.Replayed = true
			}
			return out, err
		}
	}
	return a.answerRecorded(ctx, client, rec)
}

// answerRecorded answers a started or failed record.
func (a *app) answerRecorded(ctx context.Context, client *tiktok.Client, rec publishRecord) (publishOutcome, error) {
	switch rec.State {
	case publishStarted:
		out := publishOutcome{PublishID: rec.PublishID, VideoID: rec.VideoID, Replayed: true}
		if rec.PublishID != "" {
			var err error
			if out.Status, _, err = client.Posting.Status(ctx, rec.PublishID); err != nil {
				return publishOutcome{}, err
			}
		}
		return out, nil
	case publishFailed:
		return publishOutcome{}, &apiError{Status: cmp.Or(rec.ErrorStatus, http.StatusBadGateway), Code: cmp.Or(rec.ErrorCode, "platform_error"),
			Message: "this publish failed when it was first sent (nothing was posted); use a new Idempotency-Key to try again"}
	case publishInDoubt:
		return publishOutcome{}, errPublishInDoubt
	default:
		return publishOutcome{}, errPublishInProgress
	}
}

// resolvePublish looks up a publish whose answer never came, under a lease
// the caller holds and whose heartbeat stop ends: found, it is started;
// not found, it is in doubt (errPublishInDoubt) and is never sent again.
// When the record was settled meanwhile (its sender's answer came after
// all), the settled record is the answer.
func (a *app) resolvePublish(ctx context.Context, client *tiktok.Client, rec *publishRecord, title string, stop func()) (publishOutcome, error) {
	l, err := client.Posting.Lookup(ctx, &tiktok.OutcomeUnknownError{PublishID: rec.PublishID, SentAt: rec.SentAt}, title)
	stop()
	if err != nil || !l.Found() {
		if err != nil {
			a.log.WarnContext(ctx, "tiktok publish lookup", "err", err)
		}
		rec.State = publishInDoubt
	} else {
		rec.State, rec.PublishID = publishStarted, l.PublishID
		if l.Video != nil {
			rec.VideoID = l.Video.ID
		}
	}
	other, uerr := a.settlePublish(ctx, rec)
	switch {
	case uerr != nil:
		return publishOutcome{}, uerr
	case other != nil:
		return a.answerRecorded(ctx, client, *other)
	case rec.State == publishInDoubt:
		return publishOutcome{}, errPublishInDoubt
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

// leaseLapsed is the lease of a record nobody is at work on.
var leaseLapsed = time.Unix(0, 0).UTC()

// unsettled are the states a lease guards, and the only ones an outcome
// may replace.
var unsettled = []string{publishSending, publishInDoubt}

// leaseWatch is what this process saw of other replicas' leases: for each
// unsettled record (by tenant and key), the beat it last saw and when, on
// this process's clock. A lease has lapsed for this process once it has
// watched the record's beat stand still for a whole lease: the holder's
// clock, and how it compares with ours, never enter into it.
type leaseWatch struct {
	mu   sync.Mutex
	seen map[string]watchedBeat
}

type watchedBeat struct {
	beat  int64
	since time.Time
}

// lapsed records that slot's record shows beat at now and reports whether
// this process has seen that same beat for lease or longer.
func (w *leaseWatch) lapsed(slot string, beat int64, now time.Time, lease time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.seen[slot]; ok && s.beat == beat {
		return now.Sub(s.since) >= lease
	}
	if w.seen == nil {
		w.seen = map[string]watchedBeat{}
	}
	for k, s := range w.seen { // records settled long since, or taken over by others
		if now.Sub(s.since) > 10*lease {
			delete(w.seen, k)
		}
	}
	w.seen[slot] = watchedBeat{beat: beat, since: now}
	return false
}

// forget drops slot from the watch.
func (w *leaseWatch) forget(slot string) {
	w.mu.Lock()
	delete(w.seen, slot)
	w.mu.Unlock()
}

// released reports whether rec's lease was released (an outcome recorded,
// or a record older than leases): nobody is at work on it.
func released(rec publishRecord) bool { return !rec.LeaseUntil.After(leaseLapsed) }

// takeOverPublish takes the lease of rec, unsettled, if it was released
// or this process has seen it lapse (leaseWatch): true when this request
// now holds it. False when its holder is still at work (or this process
// has not watched it for a lease yet), or when the record changed
// meanwhile: rec is then reloaded.
func (a *app) takeOverPublish(ctx context.Context, rec *publishRecord) (bool, error) {
	now := a.now().UTC()
	slot := rec.TenantID + "\x00" + rec.Key
	if !released(*rec) && !a.leases.lapsed(slot, rec.Beat, now, a.cfg.PublishLease) {
		return false, nil
	}
	var n int64
	err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*publishRecord)(nil)).
			Set("lease_until = ?", now.Add(a.cfg.PublishLease)).Set("lease_beat = lease_beat + 1").
			Where("idem_key = ?", rec.Key).Where("state IN (?)", bun.In(unsettled)).Where("lease_beat = ?", rec.Beat).Exec(ctx)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if n == 1 {
		a.leases.forget(slot)
		rec.Beat++
	}
	if err != nil || n == 1 {
		return n == 1, err
	}
	cur, ok, err := a.loadPublish(ctx, rec.Key)
	if err == nil && ok {
		*rec = cur
	}
	return false, err
}

// heartbeat renews rec's lease until stop is called, so that no other
// replica takes over a publish whose sender is still at work; stop waits
// for the renewals to end. A renewal that fails is logged: the lease may
// then lapse, and another replica conclude "in doubt", which the sender's
// answer, when it comes, replaces (settlePublish).
func (a *app) heartbeat(ctx context.Context, rec *publishRecord) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	tenant, key, lease := rec.TenantID, rec.Key, a.cfg.PublishLease
	go func() {
		defer close(done)
		ticks := a.leaseTicks
		if ticks == nil {
			t := time.NewTicker(lease / 3)
			defer t.Stop()
			ticks = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticks:
			}
			err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*publishRecord)(nil)).
					Set("lease_until = ?", a.now().UTC().Add(lease)).Set("lease_beat = lease_beat + 1").
					Where("idem_key = ?", key).Where("state IN (?)", bun.In(unsettled)).Exec(ctx)
				return err
			})
			if err != nil && ctx.Err() == nil {
				a.log.WarnContext(ctx, "tiktok publish lease not renewed", "tenant", tenant, "err", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// settlePublish records rec's outcome, even when the request's context
// ended meanwhile (a client that went away): what TikTok answered must
// not be lost. It replaces only an unsettled record (sending, or in doubt:
// an answer TikTok gave is truer than a lookup that found nothing); a
// record settled already (started, failed) is kept and returned as other.
// An in doubt conclusion never replaces a record settled meanwhile. The
// lease is released: a resend looks an in-doubt record up again.
func (a *app) settlePublish(ctx context.Context, rec *publishRecord) (other *publishRecord, err error) {
	rec.UpdatedAt = a.now().UTC()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var n int64
	err = tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*publishRecord)(nil)).
			Set("state = ?", rec.State).Set("publish_id = ?", rec.PublishID).Set("video_id = ?", rec.VideoID).
			Set("error_status = ?", rec.ErrorStatus).Set("error_code = ?", rec.ErrorCode).
			Set("sent_at = ?", rec.SentAt).Set("updated_at = ?", rec.UpdatedAt).Set("lease_until = ?", leaseLapsed).
			Set("lease_beat = lease_beat + 1").
			Where("idem_key = ?", rec.Key).Where("state IN (?)", bun.In(unsettled)).Exec(ctx)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil || n == 1 {
		return nil, err
	}
	cur, ok, err := a.loadPublish(ctx, rec.Key)
	if err != nil || !ok {
		return nil, errors.Join(errors.New("publish record gone"), err)
	}
	return &cur, nil
}

// publishesInDoubt lists the connection's publishes whose outcome is not
// known (in doubt, or sending with no replica at work on them: lease
// released, or seen lapsed by this process), newest first, for the
// console's warning.
func (a *app) publishesInDoubt(ctx context.Context, connID string) ([]publishRecord, error) {
	if _, ok := tenancy.FromContext(ctx); !ok {
		return nil, tenancy.ErrNoTenant
	}
	var recs []publishRecord
	err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&recs).Where("connection_id = ?", connID).Where("state IN (?)", bun.In(unsettled)).
			Order("sent_at DESC").Limit(20).Scan(ctx)
	})
	now := a.now().UTC()
	doubt := recs[:0]
	for _, r := range recs {
		if r.State == publishInDoubt || released(r) || a.leases.lapsed(r.TenantID+"\x00"+r.Key, r.Beat, now, a.cfg.PublishLease) {
			doubt = append(doubt, r)
		}
	}
	return doubt, err
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

// migratePublishLeases adds the lease of a publish being sent; records
// sending already get a lapsed one (their sender is the process that ran
// before the migration).
func migratePublishLeases(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "ALTER TABLE ? ADD COLUMN lease_until TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00'",
		bun.Ident(tablePublishes)); err != nil {
		return fmt.Errorf("alter %s: %w", tablePublishes, err)
	}
	return nil
}

// migratePublishBeats adds the beat of a publish's lease (see
// publishRecord.Beat).
func migratePublishBeats(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "ALTER TABLE ? ADD COLUMN lease_beat BIGINT NOT NULL DEFAULT 0",
		bun.Ident(tablePublishes)); err != nil {
		return fmt.Errorf("alter %s: %w", tablePublishes, err)
	}
	return nil
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
