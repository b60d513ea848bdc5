package crm

import (
	"context"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// WithDefaultRegion sets the region (an ISO 3166-1 alpha-2 code such as
// "US" or "GB") in which phone numbers written without a country code are
// read: with "US", "(555) 123-4567" is stored as +15551234567. Without it,
// only numbers with a country code ("+1 555 123 4567", "0044 20 …" is not
// one) are accepted. Numbers are stored, indexed and looked up in E.164
// form whatever the format they were given in.
func WithDefaultRegion(region string) Option {
	return func(s *Store) error {
		r := strings.ToUpper(strings.TrimSpace(region))
		if !phonenumbers.GetSupportedRegions()[r] {
			return fmt.Errorf("%w: WithDefaultRegion: %q is not a supported region code", ErrConfig, region)
		}
		s.phoneRegion = r
		return nil
	}
}

// normalizePhone returns s in E.164 form when it reads as a possible phone
// number — with a country code, or national in the Store's default region
// — and s trimmed otherwise, for validation to refuse.
func (s *Store) normalizePhone(p string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		return ""
	}
	region := s.phoneRegion
	if region == "" {
		region = "ZZ" // unknown: only international numbers parse
	}
	n, err := phonenumbers.Parse(p, region)
	if err != nil || !phonenumbers.IsPossibleNumber(n) {
		return p
	}
	return phonenumbers.Format(n, phonenumbers.E164)
}

// phoneIndexes returns the blind indexes under which a phone number given
// in any format may be stored: that of its E.164 form and, when it
// differs, that of the number as given trimmed (a number stored before
// normalization).
func (s *Store) phoneIndexes(ctx context.Context, p string) ([]string, error) {
	raw := strings.TrimSpace(p)
	if raw == "" {
		return nil, nil
	}
	var out []string
	for _, v := range []string{s.normalizePhone(raw), raw} {
		idx, err := s.vault.Index(ctx, v, "phone")
		if err != nil {
			return nil, err
		}
		if len(out) == 0 || out[0] != idx {
			out = append(out, idx)
		}
	}
	return out, nil
}
