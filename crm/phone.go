package crm

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

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
	if s.phones.unchanged(p) {
		return p
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

// e164Prefixes tells, for a number written as "+" and ASCII digits, when
// the parser would return it unchanged, without running the parser: its
// regular expressions (the extension's above all) cost about 20 µs a
// number, a tenth of a contact create's work at the client.
//
// The parser reads "+" and digits as a country calling code (the first
// one to three digits that are one) and a national significant number,
// the rest, from which it strips the national prefix of the code's
// region when the region's pattern for it matches at the start; its E.164
// form is then "+", the code and the national number (with any leading
// zeros), that is the number as given; a number it cannot read, or that
// is not a possible one, normalizePhone returns as given too. So the
// number comes back unchanged unless a national prefix is stripped: when
// the region's national prefix pattern does not match at the start of
// the national number, which starts with a digit other than 0 (leading
// zeros, which the parser counts apart, are left to it), unchanged tells
// so; for every other number the parser runs. TestPhoneFastPath compares
// the two over numbers of every calling code.
type e164Prefixes struct {
	once sync.Once
	// prefix holds, for each calling code the parser knows, the
	// pattern of the national prefix of its main region anchored at
	// the start (nil when the region has none); a code whose region's
	// metadata was not found is absent, and the parser runs.
	prefix map[int]*regexp.Regexp
}

func newE164Prefixes() *e164Prefixes { return &e164Prefixes{} }

func (e *e164Prefixes) load() {
	e.prefix = make(map[int]*regexp.Regexp)
	coll, err := phonenumbers.MetadataCollection()
	if err != nil || coll == nil {
		return
	}
	for _, m := range coll.GetMetadata() {
		cc := int(m.GetCountryCode())
		region := phonenumbers.GetRegionCodeForCountryCode(cc)
		// The parser reads the number with the metadata of the code's
		// main region, or that of the code for a non-geographic one
		// ("001").
		if m.GetId() != region {
			continue
		}
		if _, seen := e.prefix[cc]; seen {
			delete(e.prefix, cc) // two candidates: let the parser decide
			continue
		}
		var re *regexp.Regexp
		if np := m.GetNationalPrefixForParsing(); np != "" {
			if re, err = regexp.Compile("^(?:" + np + ")"); err != nil {
				continue
			}
		}
		e.prefix[cc] = re
	}
}

// unchanged reports whether normalizePhone returns p, trimmed and not
// empty, as it is; false means the parser must say.
func (e *e164Prefixes) unchanged(p string) bool {
	if e == nil || len(p) < 2 || len(p) > 18 || p[0] != '+' || p[1] == '0' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	e.once.Do(e.load)
	d := p[1:]
	for n := 1; n <= 3 && n <= len(d); n++ {
		cc := 0
		for _, c := range d[:n] {
			cc = cc*10 + int(c-'0')
		}
		if len(phonenumbers.GetRegionCodesForCountryCode(cc)) == 0 {
			continue // not a calling code: the parser tries a longer one
		}
		re, ok := e.prefix[cc]
		nsn := d[n:]
		return ok && (nsn == "" || nsn[0] != '0') && (re == nil || !re.MatchString(nsn))
	}
	return false // no calling code: the parser fails, and p is returned as given; let it say
}
