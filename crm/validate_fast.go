package crm

import "unicode/utf8"

// plainlyValid reports whether the validator's rules of ContactInput (its
// validate tags) certainly hold for c, checked by hand: the validator
// walks the struct by reflection and runs its regular expressions, a
// sizeable part of a contact create's work at the client. It is
// conservative: true only when every rule holds for a value of the
// common shapes it knows (an e-mail address of lower-case letters,
// digits and ".", "_", "+", "-" in a domain of such labels; a phone
// number in E.164 form; an owner id as a lower-case UUID); false sends c
// to the validator, which then has the last word and names what is
// wrong. TestContactFastValidation compares it with the validator.
func plainlyValid(c *ContactInput) bool {
	const (
		maxName, maxEmail, maxSource, maxUTM, maxCompany = 100, 254, 100, 200, 64
		maxPrefs, maxPrefKey, maxPrefValue               = 50, 64, 1000
		maxTags, maxTag                                  = 50, 50
	)
	if !cleanContactText(c) { // validate_values.go
		return false
	}
	if !runesAtMost(c.FirstName, maxName) || !runesAtMost(c.LastName, maxName) ||
		!runesAtMost(c.Source, maxSource) || !runesAtMost(c.CompanyID, maxCompany) {
		return false
	}
	if c.Email != "" && (len(c.Email) > maxEmail || !plainEmail(c.Email)) {
		return false
	}
	if c.Phone != "" && !plainE164(c.Phone) {
		return false
	}
	switch c.Stage {
	case "", StageLead, StageQualified, StageOpportunity, StageCustomer, StageInactive:
	default:
		return false
	}
	u := &c.UTM
	if !runesAtMost(u.Source, maxUTM) || !runesAtMost(u.Medium, maxUTM) || !runesAtMost(u.Campaign, maxUTM) ||
		!runesAtMost(u.Term, maxUTM) || !runesAtMost(u.Content, maxUTM) {
		return false
	}
	if len(c.Preferences) > maxPrefs {
		return false
	}
	for k, v := range c.Preferences {
		if k == "" || !runesAtMost(k, maxPrefKey) || !runesAtMost(v, maxPrefValue) {
			return false
		}
	}
	if c.OwnerID != "" && !plainUUID(c.OwnerID) {
		return false
	}
	if len(c.Tags) > maxTags {
		return false
	}
	for _, t := range c.Tags {
		if t == "" || !runesAtMost(t, maxTag) {
			return false
		}
	}
	return true
}

// runesAtMost reports whether s has at most n characters, as the
// validator's max counts them (runes).
func runesAtMost(s string, n int) bool {
	return len(s) <= n || utf8.RuneCountInString(s) <= n
}

// plainEmail reports whether s is local@domain with a local part of
// dot-separated runs of a–z, 0–9, "_", "+" and "-", and a domain of at
// least two dot-separated labels of a–z, 0–9 and "-" that begin and end
// with a letter or digit, the last of two or more letters: such an
// address both parses (net/mail) and matches the validator's pattern.
func plainEmail(s string) bool {
	at := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	if at <= 0 || at == len(s)-1 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	prev := byte('.')
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '+', c == '-':
		case c == '.' && prev != '.':
		default:
			return false
		}
		prev = c
	}
	if prev == '.' {
		return false
	}
	labels, start := 0, 0
	for i := 0; i <= len(domain); i++ {
		if i < len(domain) && domain[i] != '.' {
			c := domain[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
			continue
		}
		l := domain[start:i]
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		labels++
		if i == len(domain) { // the last label: letters only, two or more
			if len(l) < 2 {
				return false
			}
			for j := 0; j < len(l); j++ {
				if l[j] < 'a' || l[j] > 'z' {
					return false
				}
			}
		}
		start = i + 1
	}
	return labels >= 2
}

// plainE164 reports whether s matches the validator's e164 pattern
// written with its "+": "+", a digit 1–9, then 7 to 14 digits.
func plainE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainUUID reports whether s is a UUID in lower-case hexadecimal
// (8-4-4-4-12), which the validator's uuid pattern accepts.
func plainUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
