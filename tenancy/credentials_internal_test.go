package tenancy

import (
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestPasswordCost: by default a Store stores passwords at PasswordCost and
// compares an unknown email against a hash of that cost; with
// WithInsecurePasswordCost both use the cost given, so an unknown email
// still pays what a wrong password pays. Costs outside bcrypt's range are
// refused.
func TestPasswordCost(t *testing.T) {
	if !inTestBinary() {
		t.Fatal("inTestBinary is false in a test binary")
	}
	for _, tc := range []struct {
		name string
		opts []Option
		want int
	}{
		{"default", nil, PasswordCost},
		{"insecure", []Option{WithInsecurePasswordCost(5)}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStore(nil, tc.opts...)
			if err != nil {
				t.Fatalf("NewStore returned %v", err)
			}
			m, err := s.newMember(NewMember{Email: "ada@acme.example", Name: "Ada", Role: RoleOwner, Password: "long enough secret"})
			if err != nil {
				t.Fatalf("newMember returned %v", err)
			}
			if got, err := bcrypt.Cost([]byte(m.PasswordHash)); err != nil || got != tc.want {
				t.Errorf("stored hash has cost %d (%v), want %d", got, err, tc.want)
			}
			if got, err := bcrypt.Cost([]byte(s.dummyHash)); err != nil || got != tc.want {
				t.Errorf("unknown-email hash has cost %d (%v), want %d", got, err, tc.want)
			}
			if tc.want == PasswordCost {
				return // a cost-12 comparison takes seconds under the race detector
			}
			if CheckPassword(string(m.PasswordHash), "long enough secret") != nil {
				t.Error("CheckPassword refused the right password")
			}
			if err := CheckPassword(s.dummyHash, "long enough secret"); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("CheckPassword(dummyHash) returned %v, want ErrInvalidCredentials", err)
			}
		})
	}
	for _, cost := range []int{bcrypt.MinCost - 1, PasswordCost + 1} {
		if _, err := NewStore(nil, WithInsecurePasswordCost(cost)); err == nil {
			t.Errorf("NewStore accepted WithInsecurePasswordCost(%d)", cost)
		}
	}
}
