package sqldb

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// TruncateLog runs, on SQLite, a TRUNCATE checkpoint on db: the pages
// the committed transactions changed go into the database file (where
// secure_delete zeroed what they deleted), and the write-ahead log file
// is cut to nothing. Without it the log keeps, until a later writer
// happens to overwrite them, the frames written before a deletion — the
// deleted rows as they were — even after SQLite's automatic (PASSIVE)
// checkpoint has cleaned the database file. Callers run it once a
// transaction that deleted personal data has committed, on the handle
// itself (inside a transaction the log cannot be cut).
//
// busy reports that a reader held an older snapshot, so that the log
// could not be cut now (the next TRUNCATE checkpoint cuts it); frames
// and done are the log's frames and those checkpointed. On other
// databases it does nothing.
func TruncateLog(ctx context.Context, db bun.IDB) (busy bool, frames, done int, err error) {
	if db.Dialect().Name() != dialect.SQLite {
		return false, 0, 0, nil
	}
	var b int
	ctx = context.WithValue(ctx, ownCheckpointKey{}, true)
	if err := db.NewRaw("PRAGMA wal_checkpoint(TRUNCATE)").Scan(ctx, &b, &frames, &done); err != nil {
		return false, 0, 0, err
	}
	return b != 0, frames, done, nil
}

// ownCheckpointKey marks the context of TruncateLog's checkpoint: the
// tenancy Guard refuses PRAGMA wal_checkpoint under a tenant's principal
// (its answer counts every tenant's writes) but for the SDK's own.
type ownCheckpointKey struct{}

// OwnCheckpoint reports whether ctx is that of TruncateLog's checkpoint.
func OwnCheckpoint(ctx context.Context) bool { return ctx.Value(ownCheckpointKey{}) != nil }
