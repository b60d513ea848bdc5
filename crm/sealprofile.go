package crm

import (
	"encoding/binary"
	"errors"
	"slices"
)

// A contact's personal fields are sealed together, as one value (the
// contact's profile, column profile_sealed) bound to tenant|contact|
// "profile": one seal per write and one open per read, where a value per
// field cost eight of each (AES-GCM's fixed cost per call dominated a page
// of contacts). The blind indexes beside it stay one per purpose.

// profileField is the field a contact's profile is bound to.
const profileField = "profile"

// profileFields are the fields inside a contact's profile, in the order of
// its encoding, as a data-subject export names them.
var profileFields = []string{"first_name", "last_name", "email", "phone", "utm", "birthday", "preferences", "tags"}

// profileV1 starts the encoding of a profile: the version byte, then
// first name, last name, e-mail address, phone number, the five UTM values
// (each a uvarint length and its bytes), the birthday's year, month and
// day (uvarints), the number of preferences and each key and value
// (strings, keys in order), the number of tags and each tag (strings).
const profileV1 = 1

// errProfile is a profile that does not decode. It names no value.
var errProfile = errors.New("malformed contact profile")

// appendProfile appends the encoding of c's personal fields to b.
func appendProfile(b []byte, c *ContactInput) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, profileV1)
	str(c.FirstName)
	str(c.LastName)
	str(c.Email)
	str(c.Phone)
	str(c.UTM.Source)
	str(c.UTM.Medium)
	str(c.UTM.Campaign)
	str(c.UTM.Term)
	str(c.UTM.Content)
	for _, n := range [...]int{c.Birthday.Year, c.Birthday.Month, c.Birthday.Day} {
		b = binary.AppendUvarint(b, uint64(max(n, 0)))
	}
	b = binary.AppendUvarint(b, uint64(len(c.Preferences)))
	keys := make([]string, 0, len(c.Preferences))
	for k := range c.Preferences {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		str(k)
		str(c.Preferences[k])
	}
	b = binary.AppendUvarint(b, uint64(len(c.Tags)))
	for _, t := range c.Tags {
		str(t)
	}
	return b
}

// decodeProfile sets c's personal fields from the encoding pt, which it
// does not keep: the strings share one copy of pt's text. Tags and
// Preferences are never nil. A malformed pt is errProfile, and c is then
// unchanged.
func decodeProfile(pt []byte, c *ContactInput) error {
	if len(pt) == 0 || pt[0] != profileV1 {
		return errProfile
	}
	// One string for all the text of the profile; each field is a slice
	// of it (one allocation per contact instead of one per field).
	all := string(pt)
	i, bad := 1, false
	num := func() uint64 {
		n, w := binary.Uvarint(pt[i:])
		if w <= 0 {
			bad = true
			return 0
		}
		i += w
		return n
	}
	str := func() string {
		n := num()
		if bad || n > uint64(len(pt)-i) {
			bad = true
			return ""
		}
		s := all[i : i+int(n)]
		i += int(n)
		return s
	}
	var d ContactInput
	d.FirstName, d.LastName, d.Email, d.Phone = str(), str(), str(), str()
	d.UTM = UTM{Source: str(), Medium: str(), Campaign: str(), Term: str(), Content: str()}
	for _, p := range [...]*int{&d.Birthday.Year, &d.Birthday.Month, &d.Birthday.Day} {
		if n := num(); n <= 1<<20 {
			*p = int(n)
		} else {
			bad = true
		}
	}
	np := num()
	if bad || np > uint64(len(pt)-i)/2 {
		return errProfile
	}
	d.Preferences = make(map[string]string, np)
	for range np {
		k := str()
		d.Preferences[k] = str()
	}
	nt := num()
	if bad || nt > uint64(len(pt)-i) {
		return errProfile
	}
	d.Tags = make([]string, nt)
	for j := range d.Tags {
		d.Tags[j] = str()
	}
	if bad || i != len(pt) {
		return errProfile
	}
	c.FirstName, c.LastName, c.Email, c.Phone = d.FirstName, d.LastName, d.Email, d.Phone
	c.UTM, c.Birthday, c.Preferences, c.Tags = d.UTM, d.Birthday, d.Preferences, d.Tags
	return nil
}

// clearProfile sets c's personal fields to their empty values, as a
// contact without a profile reads.
func clearProfile(c *ContactInput) {
	c.FirstName, c.LastName, c.Email, c.Phone = "", "", "", ""
	c.UTM, c.Birthday = UTM{}, Birthday{}
	c.Preferences, c.Tags = map[string]string{}, []string{}
}

// wipe overwrites b, a plaintext buffer no longer needed.
func wipe(b []byte) { clear(b) }
