package crm

import (
	"errors"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	ks := keyset{name: "test", cols: []string{"at", "n", "id"}}
	at := time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.UTC)
	c, err := ks.encodeCursor(at, int64(7), "abc")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ks.decodeCursor("thing", c)
	if err != nil {
		t.Fatal(err)
	}
	if !vals[0].(time.Time).Equal(at) || vals[1].(int64) != 7 || vals[2].(string) != "abc" {
		t.Errorf("decodeCursor returned %v, want [%v 7 abc]", vals, at)
	}
	other := keyset{name: "other", cols: []string{"at", "n", "id"}}
	for name, bad := range map[string]string{"garbage": "!!!", "truncated": c[:len(c)-3], "other list": mustCursor(t, other, at, int64(1), "x")} {
		_, err := ks.decodeCursor("thing", bad)
		var verr *ValidationError
		if !errors.As(err, &verr) || !verr.Has("cursor", "cursor") || !errors.Is(err, ErrInvalid) {
			t.Errorf("decodeCursor(%s) returned %v, want a *ValidationError on cursor", name, err)
		}
	}
}

func mustCursor(t *testing.T, ks keyset, vals ...any) string {
	t.Helper()
	c, err := ks.encodeCursor(vals...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidationErrorNamesJSONFields(t *testing.T) {
	type utm struct {
		Source string `json:"source" validate:"max=3"`
	}
	type in struct {
		Name  string `json:"name" validate:"required"`
		Email string `json:"email" validate:"omitempty,email"`
		UTM   utm    `json:"utm"`
	}
	s := &Store{validate: newValidator()}
	err := s.check("thing", in{Email: "nope", UTM: utm{Source: "toolong"}})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("check returned %v, want *ValidationError", err)
	}
	for _, want := range [][2]string{{"name", "required"}, {"email", "email"}, {"utm.source", "max"}} {
		if !verr.Has(want[0], want[1]) {
			t.Errorf("ValidationError %v lacks %s/%s", verr, want[0], want[1])
		}
	}
	if got := verr.Error(); got[:len("crm: invalid thing: ")] != "crm: invalid thing: " {
		t.Errorf("Error() = %q, want the crm: prefix and kind", got)
	}
}
