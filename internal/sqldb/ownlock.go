package sqldb

import "context"

// ownLockKey marks the context of a statement that takes one of the SDK's
// own advisory locks, whose keys the SDK derives from the context
// tenant: the tenancy Guard refuses every advisory-lock call under a
// tenant's principal but for those (advisory locks are one space for the
// whole database, so a tenant holding another's key could delay it).
type ownLockKey struct{}

// WithOwnLock returns ctx marked as that of an SDK statement that takes
// its own advisory lock. Mark only the lock's statement.
func WithOwnLock(ctx context.Context) context.Context {
	return context.WithValue(ctx, ownLockKey{}, true)
}

// OwnLock reports whether ctx is marked by WithOwnLock.
func OwnLock(ctx context.Context) bool { return ctx.Value(ownLockKey{}) != nil }
