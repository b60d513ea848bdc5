package retention

import (
	"fmt"
	"time"
)

// Common periods. Months and years are counted in days (30 and 365), so a
// period is an exact duration on every clock.
const (
	Day   = 24 * time.Hour
	Month = 30 * Day
	Year  = 365 * Day
)

// Policy gives categories their periods. It is a plain struct literal; a
// category without a rule is never swept (it is still erased on request and
// on tenant purge).
type Policy struct {
	// Name identifies the policy in receipts, exports and the data map.
	Name string
	// Rules gives each category at most one rule.
	Rules []Rule
	// ClosureGrace is how long a closed tenant's data stays before
	// PurgeTenants erases it; pass it to tenancy.Store.CloseTenant. It is
	// shown in the data map.
	ClosureGrace time.Duration
}

// Rule is one category's period and trigger.
type Rule struct {
	// Category names a registered category.
	Category string
	// Period is how long rows are kept after the trigger. Required.
	Period time.Duration
	// Event, when empty, makes the trigger the row's age (its Time
	// column). Otherwise the trigger is the named event recorded for the
	// row's subject with Engine.RecordEvent ("connection.disconnected"):
	// rows of that subject dated at or before the event are erased Period
	// after it.
	Event string
	// Keep marks a legal obligation to keep the rows for Period after their
	// Time (invoices: 7 years). Kept rows survive subject erasure and tenant
	// purge until then, and are swept by age afterwards. A tenant purge
	// destroys the tenant's key unless Readable says otherwise.
	Keep bool
	// Readable, with Keep, keeps the kept rows readable through a tenant
	// purge: while the tenant has rows of the category, the purge erases
	// everything else but keeps the tenant's keys (Category.Shreds) and does
	// not mark the tenant purged, and its receipt counts those rows Kept;
	// once the sweep has erased them by age, the next purge shreds the keys
	// and marks the tenant purged. Without it, kept rows survive the purge
	// but their sealed fields no longer open once the tenant's key is
	// destroyed (the law may require an invoice's bill-to name, address and
	// tax id for its whole period: socialcrm.DefaultPolicy sets it there).
	Readable bool
	// Note explains the period in the data map.
	Note string
}

// Trigger describes the rule's trigger for receipts and the data map.
func (r Rule) Trigger() string {
	switch {
	case r.Keep:
		return "legal obligation: kept for the period after the time column"
	case r.Event != "":
		return "time since event " + r.Event
	}
	return "age since the time column"
}

func (p Policy) rule(category string) (Rule, bool) {
	for _, r := range p.Rules {
		if r.Category == category {
			return r, true
		}
	}
	return Rule{}, false
}

// validate checks the rules against the registered categories; strict
// also refuses rules for categories that are not registered.
func (p Policy) validate(cats map[string]Category, strict bool) error {
	seen := map[string]bool{}
	for _, r := range p.Rules {
		bad := func(reason string) error {
			return &PolicyError{Policy: p.Name, Category: r.Category, Reason: reason}
		}
		c, ok := cats[r.Category]
		switch {
		case !ok && !strict:
			continue
		case !ok:
			return bad("no such category")
		case seen[r.Category]:
			return bad("more than one rule")
		case r.Period <= 0:
			return bad("period must be positive")
		case r.Readable && !r.Keep:
			return bad("only a legal-obligation keep can keep rows readable")
		case r.Keep && r.Event != "":
			return bad("a legal-obligation keep is counted from the time column, not an event")
		case c.Time == "":
			return bad("category has no time column")
		case r.Event != "" && len(c.Subject) == 0:
			return bad("event rules need a category with a subject")
		}
		seen[r.Category] = true
	}
	if p.ClosureGrace < 0 {
		return &PolicyError{Policy: p.Name, Reason: "negative closure grace"}
	}
	return nil
}

// Names of the categories that OwnCategories and TenancyCategories
// declare. Each package that owns tables names its own categories
// (crm.CategoryInvoice, social.CategoryRawResponse, …); the engine knows
// none of them.
const (
	CategoryAudit           = "security.audit"
	CategoryAuditCheckpoint = "security.audit_checkpoint"
	CategoryRequest         = "retention.request"
	CategoryHold            = "retention.hold"
	CategoryEvent           = "retention.event"
)

// Events of a connection's life that a Rule's Event can name; record them
// with Engine.RecordEvent.
const (
	EventDeauthorized = "connection.deauthorized"
	EventDisconnected = "connection.disconnected"
)

const (
	defaultRequestDue     = 30 * Day
	defaultBatchSize      = 1000
	maxBatchSize          = 100000
	defaultExportBatch    = 1000
	policyNameUnspecified = "unnamed"
)

func (r Rule) String() string {
	s := formatPeriod(r.Period) + " after the time column"
	switch {
	case r.Keep:
		s = "kept " + formatPeriod(r.Period) + " (legal obligation), then erased"
	case r.Event != "":
		s = formatPeriod(r.Period) + " after " + r.Event
	}
	return s
}

// formatPeriod writes a period in the largest whole unit.
func formatPeriod(d time.Duration) string {
	switch {
	case d%Year == 0:
		return plural(int64(d/Year), "year")
	case d >= 12*Month && d%Month == 0:
		return plural(int64(d/Month), "month")
	case d%Day == 0:
		return plural(int64(d/Day), "day")
	}
	return d.String()
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
