package social

import (
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
)

// Scopes is a set of OAuth scope names, kept sorted and without duplicates
// by NewScopes. It is stored in one text column, space-separated (scope
// names contain no spaces, RFC 6749 §3.3).
type Scopes []string

// NewScopes returns the sorted set of the non-empty names in s.
func NewScopes(s ...string) Scopes {
	out := make(Scopes, 0, len(s))
	for _, x := range s {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ParseScopes splits s on sep (TikTok uses ",", RFC 6749 " ") into a set.
func ParseScopes(s, sep string) Scopes {
	if s == "" {
		return Scopes{}
	}
	return NewScopes(strings.Split(s, sep)...)
}

// Has reports whether scope is in s.
func (s Scopes) Has(scope string) bool { return slices.Contains(s, scope) }

// Missing returns the scopes of need that s lacks, as a set (empty when s
// has them all).
func (s Scopes) Missing(need ...string) Scopes {
	var miss []string
	for _, n := range need {
		if !s.Has(n) {
			miss = append(miss, n)
		}
	}
	return NewScopes(miss...)
}

// Union returns the set of scopes in s or any of others.
func (s Scopes) Union(others ...Scopes) Scopes {
	all := slices.Clone([]string(s))
	for _, o := range others {
		all = append(all, o...)
	}
	return NewScopes(all...)
}

// Intersect returns the scopes in both s and o.
func (s Scopes) Intersect(o Scopes) Scopes {
	var both []string
	for _, x := range s {
		if o.Has(x) {
			both = append(both, x)
		}
	}
	return NewScopes(both...)
}

// Join returns the scopes joined by sep.
func (s Scopes) Join(sep string) string { return strings.Join(s, sep) }

// Value implements driver.Valuer.
func (s Scopes) Value() (driver.Value, error) { return joinSet(s), nil }

// Scan implements sql.Scanner.
func (s *Scopes) Scan(src any) error {
	v, err := scanSet(src)
	*s = Scopes(v)
	return err
}

// Purposes are the purposes a creator authorized the use of a connection's
// data for ("analytics", "publishing", …), declared by the application when
// it starts the flow. Data collected through the connection is tagged with
// them; socialcrm never uses platform data for advertising.
type Purposes []string

// Has reports whether p holds purpose.
func (p Purposes) Has(purpose string) bool { return slices.Contains(p, purpose) }

// Value implements driver.Valuer.
func (p Purposes) Value() (driver.Value, error) { return joinSet(p), nil }

// Scan implements sql.Scanner.
func (p *Purposes) Scan(src any) error {
	v, err := scanSet(src)
	*p = Purposes(v)
	return err
}

func joinSet(s []string) string { return strings.Join(s, " ") }

func scanSet(src any) ([]string, error) {
	var str string
	switch v := src.(type) {
	case nil:
	case string:
		str = v
	case []byte:
		str = string(v)
	default:
		return nil, fmt.Errorf("social: cannot scan %T into a set", src)
	}
	return strings.Fields(str), nil
}

// Feature is something an application does with a platform, and the scopes
// it needs. Providers publish their catalogue (Provider.Features); a Flow
// requests exactly the union of the scopes of the features it is configured
// with.
type Feature struct {
	// Name is how FlowConfig names the feature ("profile", "stats",
	// "video.read", "publish").
	Name string
	// Scopes are the OAuth scopes the feature needs.
	Scopes Scopes
	// Write marks a feature that changes data on the platform (publishing,
	// uploading). A read-only flow refuses it and each of its scopes.
	Write bool
}

// ScopeError is returned, before any request is sent, by a client method
// called on a connection whose granted scopes lack what the method needs.
type ScopeError struct {
	// Missing are the scopes the method needs and the connection lacks.
	Missing Scopes
}

func (e *ScopeError) Error() string {
	return "social: connection lacks scopes " + e.Missing.Join(", ")
}

// Is makes errors.Is(err, ErrScope) hold for a *ScopeError.
func (e *ScopeError) Is(target error) bool { return target == ErrScope }

// Require returns a *ScopeError naming the scopes of need that granted
// lacks, or nil.
func Require(granted Scopes, need ...string) error {
	if miss := granted.Missing(need...); len(miss) > 0 {
		return &ScopeError{Missing: miss}
	}
	return nil
}

// RequestedScopes returns the union of the scopes of the features named in
// names, looked up in catalogue. With readOnly, a write feature, or any
// scope that only write features of the catalogue need, is refused with
// ErrWriteScope. An unknown name is an error too.
func RequestedScopes(catalogue []Feature, names []string, readOnly bool) (Scopes, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no feature", ErrConfig)
	}
	// Write scopes: those of write features that no read feature needs
	// (a write feature may also need, say, the basic profile scope).
	write, read := Scopes{}, Scopes{}
	for _, f := range catalogue {
		if f.Write {
			write = write.Union(f.Scopes)
		} else {
			read = read.Union(f.Scopes)
		}
	}
	write = read.Missing(write...)
	var out Scopes
	for _, n := range names {
		i := slices.IndexFunc(catalogue, func(f Feature) bool { return f.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("%w: unknown feature %q", ErrConfig, n)
		}
		f := catalogue[i]
		if readOnly && f.Write {
			return nil, fmt.Errorf("%w: feature %q in a read-only configuration", ErrWriteScope, n)
		}
		out = out.Union(f.Scopes)
	}
	if readOnly {
		if bad := out.Intersect(write); len(bad) > 0 {
			return nil, fmt.Errorf("%w: %s in a read-only configuration", ErrWriteScope, bad.Join(", "))
		}
	}
	return out, nil
}
