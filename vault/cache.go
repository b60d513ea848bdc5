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
	keyIDs    []uint32  // every data key id, to tell a stale cache from a bad value
	index     prf.PRF   // the blind-index key
	indexKey  *indexKey // the same key, computing through pooled HMACs; nil: through index
	destroyed bool      // a tombstone: the tenant's keys were destroyed
	loaded    time.Time
	afterMiss bool // loaded because a value named a key id the cache lacked, and it was not found
}

func (k *tenantKeys) has(id uint32) bool { return slices.Contains(k.keyIDs, id) }

// cache holds unwrapped tenant keys, bounded in size and age. Reads are
// lock-free: the map is immutable and replaced whole (copy on write) by
// inserts and invalidations, which take mu. Reads happen on every Seal and
// Open, writes once per tenant per max age, so reads win: a plain map read
// costs a fraction of a sync.Map read, which measurably counted against
// the raw Tink call.
//
// Invalidation must win over a load that read the database before the
// change it reflects: every invalidation bumps gen, and a load stores its
// result only if gen has not moved since the load began.
type cache struct {
	size   int
	maxAge time.Duration

	m   atomic.Pointer[map[string]*tenantKeys]
	mu  sync.Mutex
	gen atomic.Uint64
}

func newCache(size int, maxAge time.Duration) *cache {
	c := &cache{size: size, maxAge: maxAge}
	c.m.Store(&map[string]*tenantKeys{})
	return c
}

// get returns the tenant's keys if cached and younger than maxAge; age
// tells how old a load time is (a clock that went backwards makes it
// negative, which counts as expired).
func (c *cache) get(tenant string, age func(loaded time.Time) time.Duration) (*tenantKeys, bool) {
	k := (*c.m.Load())[tenant]
	if k == nil {
		return nil, false
	}
	if d := age(k.loaded); d < 0 || d >= c.maxAge {
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
	old := *c.m.Load()
	m := make(map[string]*tenantKeys, min(len(old)+1, c.size))
	for t, e := range old {
		if t != tenant && now.Sub(e.loaded) < c.maxAge {
			m[t] = e
		}
	}
	if len(m) >= c.size {
		target := c.size - c.size/8 - 1
		for t := range m { // arbitrary order
			if len(m) <= target {
				break
			}
			delete(m, t)
		}
	}
	m[tenant] = k
	c.m.Store(&m)
}

// invalidate drops the tenant's keys and makes every load in flight (for
// any tenant) discard its result.
func (c *cache) invalidate(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	old := *c.m.Load()
	if _, ok := old[tenant]; !ok {
		return
	}
	m := make(map[string]*tenantKeys, len(old))
	for t, e := range old {
		if t != tenant {
			m[t] = e
		}
	}
	c.m.Store(&m)
}

// len returns the number of cached tenants.
func (c *cache) len() int { return len(*c.m.Load()) }
