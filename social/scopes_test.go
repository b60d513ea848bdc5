package social_test

import (
	"errors"
	"testing"

	"github.com/socialcrm/socialcrm/social"
)

var catalogue = []social.Feature{
	{Name: "profile", Scopes: social.NewScopes("basic", "profile")},
	{Name: "stats", Scopes: social.NewScopes("basic", "stats")},
	{Name: "publish", Scopes: social.NewScopes("basic", "publish"), Write: true},
}

func TestRequestedScopesIsTheUnion(t *testing.T) {
	got, err := social.RequestedScopes(catalogue, []string{"stats", "profile"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := social.NewScopes("basic", "profile", "stats"); got.Join(",") != want.Join(",") {
		t.Errorf("RequestedScopes returned %v, want %v", got, want)
	}
	got, err = social.RequestedScopes(catalogue, []string{"publish"}, false)
	if err != nil || !got.Has("publish") {
		t.Errorf("RequestedScopes returned %v, %v, want publish", got, err)
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	if _, err := social.RequestedScopes(catalogue, []string{"profile", "publish"}, true); !errors.Is(err, social.ErrWriteScope) {
		t.Errorf("RequestedScopes returned %v, want ErrWriteScope", err)
	}
	// A scope that a read feature needs is not a write scope, even if a
	// write feature needs it too (like the basic profile scope).
	cat := []social.Feature{
		{Name: "sneaky", Scopes: social.NewScopes("basic", "publish2")},
		{Name: "post", Scopes: social.NewScopes("publish2"), Write: true},
	}
	if _, err := social.RequestedScopes(cat, []string{"sneaky"}, true); err != nil {
		// publish2 is needed by a read feature, so it is not write-only.
		t.Errorf("RequestedScopes returned %v, want nil", err)
	}
	if got, err := social.RequestedScopes(catalogue, []string{"profile"}, true); err != nil || got.Has("publish") {
		t.Errorf("RequestedScopes returned %v, %v", got, err)
	}
	for _, names := range [][]string{nil, {"unknown"}} {
		if _, err := social.RequestedScopes(catalogue, names, false); !errors.Is(err, social.ErrConfig) {
			t.Errorf("RequestedScopes(%v) returned %v, want ErrConfig", names, err)
		}
	}
}

func TestScopesSet(t *testing.T) {
	s := social.ParseScopes("b,a,,b", ",")
	if s.Join(" ") != "a b" {
		t.Errorf("ParseScopes returned %v, want [a b]", s)
	}
	if m := s.Missing("a", "c", "c"); m.Join(",") != "c" {
		t.Errorf("Missing returned %v, want [c]", m)
	}
	if i := s.Intersect(social.NewScopes("b", "z")); i.Join(",") != "b" {
		t.Errorf("Intersect returned %v, want [b]", i)
	}
	err := social.Require(s, "a", "x")
	var se *social.ScopeError
	if !errors.As(err, &se) || se.Missing.Join(",") != "x" || !errors.Is(err, social.ErrScope) {
		t.Errorf("Require returned %v, want ScopeError{x}", err)
	}
	if err := social.Require(s, "a"); err != nil {
		t.Errorf("Require returned %v, want nil", err)
	}
	var back social.Scopes
	v, _ := s.Value()
	if err := back.Scan(v); err != nil || back.Join(",") != "a,b" {
		t.Errorf("Scan(Value) = %v, %v", back, err)
	}
}
