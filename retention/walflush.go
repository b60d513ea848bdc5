package retention

import (
	"context"
	"fmt"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// flushLog runs, on SQLite, a TRUNCATE checkpoint (sqldb.TruncateLog)
// once an erasure, a purge or a sweep that erased rows has committed: the
// pages it changed go into the database file (where secure_delete zeroed
// what it deleted), and the write-ahead log file is cut to nothing.
// Without it the log keeps, until a later writer happens to overwrite
// them, the frames written before the erasure — the erased rows as they
// were, name tokens and all — even after SQLite's automatic checkpoint
// has cleaned the database file. When a reader holds an older snapshot
// the log cannot be cut now; that is logged (no personal data) and the
// next erasure, or the next TRUNCATE checkpoint, cuts it.
func (e *Engine) flushLog(ctx context.Context) error {
	busy, frames, done, err := sqldb.TruncateLog(ctx, e.db)
	if err != nil {
		return fmt.Errorf("retention: truncate the write-ahead log after erasing: %w", err)
	}
	if busy {
		e.log.WarnContext(ctx, "retention: the write-ahead log could not be truncated after erasing: a reader holds an older snapshot",
			"frames", frames, "checkpointed", done)
	}
	return nil
}
