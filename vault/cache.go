package vault

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// tenantKeys is a tenant's unwrapped data keys, ready to use.
type tenantKeys struct {
	aead      tink.AEAD // every data key of the tenant; encrypts with the primary
	primary   uint32
	keyIDs    []uint32 // every data key id, to tell a stale cache from a bad value
	index     prf.PRF  // the blind-index key
	destroyed bool     // a tombstone: the tenant's keys were destroyed
	loaded    time.Time
}

func (k *tenantKeys) has(id uint32) bool { return slices.Contains(k.keyIDs, id) }

// cache holds unwrapped tenant keys, bounded in size and age. Reads are
// lock-free (sync.Map); inserts and invalidations take mu.
//
// Invalidation must win over a load that read the database before the
// change it reflects: every invalidation bumps gen, and a load stores its
// result only if gen has not moved since the load began.
type cache struct {
	size   int
	maxAge time.Duration

	m     sync.Map // tenant id -> *tenantKeys
	mu    sync.Mutex
	count int
	gen   atomic.Uint64
}

func newCache(size int, maxAge time.Duration) *cache {
	return &cache{size: size, maxAge: maxAge}
}

// get returns the tenant's keys if cached and younger than maxAge.
func (c *cache) get(tenant string, now time.Time) (*tenantKeys, bool) {
	v, ok := c.m.Load(tenant)
	if !ok {
		return nil, false
	}
	k := v.(*tenantKeys)
	if now.Sub(k.loaded) >= c.maxAge || now.Before(k.loaded) {
		return nil, false
	}
	return k, true
}

// generation returns the value to hand to put after a load.
func (c *cache) generation() uint64 { return c.gen.Load() }

// put stores k unless an invalidation happened since gen was read. When the
// cache is full it drops expired entries first, then arbitrary ones down to
// seven eighths of the bound, so that a full cache does not pay a scan on
// every insert.
func (c *cache) put(tenant string, k *tenantKeys, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if _, loaded := c.m.Swap(tenant, k); loaded {
		return
	}
	c.count++
	if c.count <= c.size {
		return
	}
	c.m.Range(func(key, v any) bool {
		if now.Sub(v.(*tenantKeys).loaded) >= c.maxAge && key != tenant {
			c.m.Delete(key)
			c.count--
		}
		return true
	})
	target := c.size - c.size/8
	c.m.Range(func(key, _ any) bool {
		if c.count <= target {
			return false
		}
		if key != tenant {
			c.m.Delete(key)
			c.count--
		}
		return true
	})
}

// invalidate drops the tenant's keys and makes every load in flight (for
// any tenant) discard its result.
func (c *cache) invalidate(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	if _, ok := c.m.LoadAndDelete(tenant); ok {
		c.count--
	}
}

// len returns the number of cached tenants.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}
