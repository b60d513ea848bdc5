package vault

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCacheBounds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCache(8, time.Minute)
	for i := range 20 {
		id := fmt.Sprint(i)
		c.put(id, &tenantKeys{loaded: now}, c.generation(), now)
		_, ok := c.get(id, at(now))
		require.True(t, ok, "the entry just put is kept")
		require.LessOrEqual(t, c.len(), 8)
	}

	_, ok := c.get("19", at(now.Add(59*time.Second)))
	require.True(t, ok)
	_, ok = c.get("19", at(now.Add(time.Minute)))
	require.False(t, ok, "expired at max age")
	_, ok = c.get("19", at(now.Add(-time.Second)))
	require.False(t, ok, "a clock that went backwards does not extend the age")

	// Expired entries go first when the cache is full.
	c = newCache(4, time.Minute)
	for i := range 4 {
		c.put(fmt.Sprint(i), &tenantKeys{loaded: now}, c.generation(), now)
	}
	later := now.Add(2 * time.Minute)
	c.put("fresh", &tenantKeys{loaded: later}, c.generation(), later)
	require.Equal(t, 1, c.len())
	_, ok = c.get("fresh", at(later))
	require.True(t, ok)
}

func TestCacheInvalidationWinsOverLoad(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCache(8, time.Minute)
	gen := c.generation() // a load begins and reads the database ...
	c.invalidate("t")     // ... the key is destroyed meanwhile ...
	c.put("t", &tenantKeys{loaded: now}, gen, now)
	_, ok := c.get("t", at(now))
	require.False(t, ok, "... so the stale load is not cached")

	c.put("t", &tenantKeys{loaded: now}, c.generation(), now)
	_, ok = c.get("t", at(now))
	require.True(t, ok)
	c.invalidate("t")
	_, ok = c.get("t", at(now))
	require.False(t, ok)
	require.Zero(t, c.len())
}

// at returns the age function of a clock that reads now.
func at(now time.Time) func(time.Time) time.Duration {
	return func(loaded time.Time) time.Duration { return now.Sub(loaded) }
}
