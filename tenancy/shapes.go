package tenancy

import "sync"

// shapeCacheSize bounds the shapes a Guard keeps: statements differ by
// their literals, which the cache key blanks out, so an application has a
// few hundred shapes at most.
const shapeCacheSize = 2048

// shapeCache keeps the shapes of recently seen statements, bounded, least
// recently used out first: two generations, where a hit in the older one
// moves the entry to the newer and a full newer generation retires the
// older one whole.
type shapeCache struct {
	mu        sync.Mutex
	cur, prev map[string]*shape
}

func (c *shapeCache) get(key []byte) *shape {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sh, ok := c.cur[string(key)]; ok { // no string is built for the look-up
		return sh
	}
	sh, ok := c.prev[string(key)]
	if ok {
		c.putLocked(string(key), sh)
	}
	return sh
}

func (c *shapeCache) put(key string, sh *shape) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, sh)
}

func (c *shapeCache) putLocked(key string, sh *shape) {
	if c.cur == nil || len(c.cur) >= shapeCacheSize/2 {
		c.prev, c.cur = c.cur, make(map[string]*shape)
	}
	c.cur[key] = sh
}

// len returns how many shapes are kept.
func (c *shapeCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}

// reset forgets every shape, when the set of tenant-owned tables changes.
func (c *shapeCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur, c.prev = nil, nil
}
