// Package fakeclock is the manual clock socialcrm's tests inject wherever a
// deadline matters: tests advance it instead of sleeping.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a manual clock, safe for concurrent use. Pass its Now method
// where a package takes a func() time.Time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Start is the time a New clock shows.
var Start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// New returns a clock showing Start.
func New() *Clock { return &Clock{t: Start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
