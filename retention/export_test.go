package retention

// SetTrace installs f as the engine's kill-point tracer: the engine calls it
// with a point's name at every point where a crash must leave the database
// consistent (between batches, inside a batch's transaction after each
// step, after hooks, after truncation). Only tests use it.
func SetTrace(e *Engine, f func(point string)) { e.trace = f }
