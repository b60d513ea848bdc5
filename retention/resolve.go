package retention

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
)

// Resolver finds the subject keys that one identifier leads to: given the
// value of an identifier of the kind it is registered for (an e-mail
// address, a Messenger PSID), it returns further identifiers of the same
// person, by kind (contact ids, conversation thread ids, connection ids).
// ctx acts on the request's tenant; db is the engine's database, on which
// the resolver runs its own short transactions (tenancy.RunInTx). It
// returns nothing, not an error, when the identifier names nobody.
// Resolvers must not return the identifier they were given as an error
// text or log it.
type Resolver func(ctx context.Context, db bun.IDB, value string) (map[string][]string, error)

// Default bounds of a resolution (see WithResolutionLimits). A hop from
// one record of a person to her next takes two rounds when it goes
// through an identifier they share (a contact id to its e-mail address,
// the address to the other contacts holding it).
const (
	defaultResolveDepth = 12
	defaultResolveKeys  = 200
)

// RegisterResolver adds r as a resolver of identifier kind. A kind may have
// several resolvers (crm resolves an e-mail address to contacts, another
// package to its own records); each runs. Register resolvers before
// requests are submitted: Submit refuses a kind that no resolver and no
// category knows.
func (e *Engine) RegisterResolver(kind string, r Resolver) error {
	if kind == "" || r == nil || !isIdent(kind) {
		return &ValidationError{Field: "resolver", Reason: "a plain identifier kind and a resolver are required"}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.resolvers == nil {
		e.resolvers = map[string][]Resolver{}
	}
	e.resolvers[kind] = append(e.resolvers[kind], r)
	return nil
}

// WithResolutionLimits bounds the resolution of a request's identifiers:
// at most depth rounds of resolvers after the identifiers given (default
// 12) and at most keys subject keys in all (default 200). A request whose
// resolution would go further fails with a *ResolutionError rather than
// be answered in part.
func WithResolutionLimits(depth, keys int) Option {
	return func(e *Engine) error {
		if depth < 1 || keys < 1 {
			return fmt.Errorf("retention: WithResolutionLimits: %d, %d: both must be positive", depth, keys)
		}
		e.resolveDepth, e.resolveKeys = depth, keys
		return nil
	}
}

// Kinds returns the identifier kinds a request may name, sorted: those a
// resolver is registered for and those a category finds rows by.
func (e *Engine) Kinds() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	set := map[string]bool{}
	for k := range e.resolvers {
		set[k] = true
	}
	for _, c := range e.cats {
		for k := range c.Subject {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (e *Engine) resolversOf(kind string) []Resolver {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.resolvers[kind])
}

// Keys are the subject keys of a request: identifier kind → values, each
// list sorted and without repeats.
type Keys map[string][]string

// Kinds returns the kinds of k, sorted.
func (k Keys) Kinds() []string { return sortedKeys(k) }

// Count returns how many keys k holds.
func (k Keys) Count() int {
	n := 0
	for _, vs := range k {
		n += len(vs)
	}
	return n
}

// Resolve returns the full set of subject keys that identifiers (kind →
// value) lead to in the context's tenant: the identifiers themselves, then
// whatever the registered resolvers find from them, and from what they
// find, until nothing new turns up. An unknown kind fails with an
// *UnknownKindError; going past the engine's limits with a
// *ResolutionError.
func (e *Engine) Resolve(ctx context.Context, identifiers map[string]string) (Keys, error) {
	if err := e.checkKinds(identifiers); err != nil {
		return nil, err
	}
	seeds := Keys{}
	for kind, v := range identifiers {
		seeds[kind] = []string{v}
	}
	return e.resolveFrom(ctx, seeds)
}

// resolveFrom is Resolve from every key of seeds (Erase's later passes
// resolve again from all the keys an earlier pass found).
func (e *Engine) resolveFrom(ctx context.Context, seeds Keys) (Keys, error) {
	depth, limit := e.resolveDepth, e.resolveKeys
	type key struct{ kind, value string }
	seen := map[key]bool{}
	var frontier []key
	add := func(kind, value string) error {
		value = strings.TrimSpace(value)
		if value == "" || seen[key{kind, value}] {
			return nil
		}
		if len(seen) >= limit {
			return &ResolutionError{Limit: "keys", Max: limit}
		}
		seen[key{kind, value}] = true
		frontier = append(frontier, key{kind, value})
		return nil
	}
	for _, kind := range seeds.Kinds() {
		for _, v := range seeds[kind] {
			if err := add(kind, v); err != nil {
				return nil, err
			}
		}
	}
	for round := 0; len(frontier) > 0; round++ {
		next := frontier
		frontier = nil
		for _, k := range next {
			rs := e.resolversOf(k.kind)
			if len(rs) > 0 && round >= depth {
				return nil, &ResolutionError{Limit: "depth", Max: depth}
			}
			for _, r := range rs {
				found, err := r(ctx, e.db, k.value)
				if err != nil {
					return nil, fmt.Errorf("retention: resolve %s: %w", k.kind, err)
				}
				for _, kind := range sortedKeys(found) {
					if !isIdent(kind) {
						return nil, fmt.Errorf("retention: resolve %s: resolver returned a bad kind", k.kind)
					}
					for _, v := range found[kind] {
						if err := add(kind, v); err != nil {
							return nil, err
						}
					}
				}
			}
		}
	}
	out := Keys{}
	for k := range seen {
		out[k.kind] = append(out[k.kind], k.value)
	}
	for _, vs := range out {
		slices.Sort(vs)
	}
	return out, nil
}

// checkKinds refuses identifiers of a kind no resolver or category knows.
func (e *Engine) checkKinds(identifiers map[string]string) error {
	known := e.Kinds()
	for _, kind := range sortedKeys(identifiers) {
		if !slices.Contains(known, kind) {
			return &UnknownKindError{Kind: kind, Known: known}
		}
	}
	return nil
}

// UnknownKindError reports an identifier kind that no resolver and no
// registered category knows: a request by it could find nothing. Known
// lists the kinds that can be used. Match it with errors.As.
type UnknownKindError struct {
	Kind  string
	Known []string
}

func (e *UnknownKindError) Error() string {
	return fmt.Sprintf("retention: unknown identifier kind %q (known: %s)", e.Kind, strings.Join(e.Known, ", "))
}

// ResolutionError reports a resolution that went past the engine's limits
// (WithResolutionLimits): Limit is "depth" or "keys", Max its value. The
// request is not carried out in part; raise the limits or narrow the
// identifiers. Match it with errors.As.
type ResolutionError struct {
	Limit string
	Max   int
}

func (e *ResolutionError) Error() string {
	return fmt.Sprintf("retention: resolving the request's identifiers went past the %s limit of %d", e.Limit, e.Max)
}
