package retention

import (
	"context"
	"fmt"

	"github.com/uptrace/bun/dialect"
)

// flushLog runs, on SQLite, a TRUNCATE checkpoint once an erasure, a
// purge or a sweep that erased rows has committed: the pages it changed go into the database file
// (where secure_delete zeroed what it deleted), and the write-ahead log
// file is cut to nothing. Without it the log keeps, until a later writer
// happens to overwrite them, the frames written before the erasure — the
// erased rows as they were, name tokens and all — even after SQLite's
// automatic checkpoint has cleaned the database file. When a reader holds
// an older snapshot the log cannot be cut now; that is logged (no personal
// data) and the next erasure, or the next TRUNCATE checkpoint, cuts it.
func (e *Engine) flushLog(ctx context.Context) error {
	if e.db.Dialect().Name() != dialect.SQLite {
		return nil
	}
	var busy, frames, done int
	if err := e.db.NewRaw("PRAGMA wal_checkpoint(TRUNCATE)").Scan(ctx, &busy, &frames, &done); err != nil {
		return fmt.Errorf("retention: truncate the write-ahead log after erasing: %w", err)
	}
	if busy != 0 {
		e.log.WarnContext(ctx, "retention: the write-ahead log could not be truncated after erasing: a reader holds an older snapshot",
			"frames", frames, "checkpointed", done)
	}
	return nil
}
