package crm

import (
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Values every record can store and read back, on SQLite and PostgreSQL
// alike. The validator's tags say what a field means (an e-mail address,
// at most 100 characters); these rules say what a column can hold at all,
// and apply to every field of every input Store.check sees, tags or not:
//
//   - a string holds text: valid UTF-8 without a NUL character (PostgreSQL
//     refuses both in a text column, 22021; SQLite stores them, and a NUL
//     cuts what its functions see);
//   - a time lies between the first instant of the year 1 and the last
//     microsecond of the year 9999, UTC (the zero time, "not set", is the
//     first): PostgreSQL refuses times past the year 294276 (22008), and
//     SQLite stores any time as text but a year of five digits or a
//     negative one does not parse back, so one such time made every later
//     read of its row fail.
//
// One exception: a field tagged crm:"sealed" is stored only sealed (its
// ciphertext in a bytea or blob column; never in a text column, a blind
// index or a search token), so it may hold a NUL: a Messenger text with
// \u0000 is stored, read back and exported as sent. Such a field must
// still be valid UTF-8. NewMessage.Text is the one field so tagged.
//
// A value breaking them is a *ValidationError (rules "nul", "utf8",
// "time_range"), as any other invalid input: Ingest refuses that message
// alone and stores the rest of its batch.
var (
	minStorableTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxStorableTime = time.Date(9999, time.December, 31, 23, 59, 59, 999999000, time.UTC)
)

// storableTime reports whether t lies in the range both databases store
// and read back (the zero time included).
func storableTime(t time.Time) bool {
	return !t.Before(minStorableTime) && !t.After(maxStorableTime)
}

// cleanText reports whether s is valid UTF-8 without a NUL character. It
// allocates nothing and, on the webhook's hot path (ids and texts in
// ASCII), reads eight bytes at a time: a word in which no byte is NUL or
// 0x80 and above is clean; the first that has one is read byte by byte,
// and from the first byte beyond ASCII on, the rest of s is left to
// utf8.ValidString and strings.IndexByte.
func cleanText(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8] // one load: no bounds check on its eight bytes
		v := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		// (v-lo)&^v&hi is not zero exactly when a byte of v is zero;
		// v&hi when a byte is 0x80 or above.
		if ((v-lo)&^v|v)&hi != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return false
		case c >= utf8.RuneSelf:
			return strings.IndexByte(s[i:], 0) < 0 && utf8.ValidString(s[i:])
		}
	}
	return true
}

// sealedText reports whether s may be stored in a field tagged
// crm:"sealed": valid UTF-8, NUL allowed.
func sealedText(s string) bool {
	return utf8.ValidString(s)
}

// textRule names what is wrong with a string cleanText refuses.
func textRule(s string) (rule, message string) {
	if strings.IndexByte(s, 0) >= 0 {
		return "nul", "must not contain a NUL character"
	}
	return "utf8", "must be valid UTF-8"
}

const timeRangeMessage = "must be between the years 1 and 9999"

// cleanContactText reports whether every string of c is clean text (see
// cleanText): plainlyValid's share of the rules above.
func cleanContactText(c *ContactInput) bool {
	u := &c.UTM
	if !cleanText(c.FirstName) || !cleanText(c.LastName) || !cleanText(c.Email) || !cleanText(c.Phone) ||
		!cleanText(string(c.Stage)) || !cleanText(c.Source) || !cleanText(c.CompanyID) || !cleanText(c.OwnerID) ||
		!cleanText(u.Source) || !cleanText(u.Medium) || !cleanText(u.Campaign) || !cleanText(u.Term) || !cleanText(u.Content) {
		return false
	}
	for k, v := range c.Preferences {
		if !cleanText(k) || !cleanText(v) {
			return false
		}
	}
	for _, t := range c.Tags {
		if !cleanText(t) {
			return false
		}
	}
	return true
}

// checkWatermarks refuses a watermark time outside the storable range
// (its key is checked as any conversation key).
func checkWatermarks(w *Watermarks) error {
	var e *ValidationError
	for _, f := range []struct {
		name string
		at   time.Time
	}{{"delivered", w.Delivered}, {"read", w.Read}} {
		if !storableTime(f.at) {
			if e == nil {
				e = &ValidationError{Kind: kindConversation}
			}
			e.Fields = append(e.Fields, FieldError{Field: f.name, Rule: "time_range", Message: timeRangeMessage})
		}
	}
	if e == nil {
		return nil
	}
	return e
}

var timeType = reflect.TypeFor[time.Time]()

// unstorable lists the fields of v (a struct or a pointer to one) whose
// values break the rules above, named as the validator names them (by
// their JSON names, "conversation.account_id", "tags[2]"). A map's keys
// and values are named by the map alone: a key is data, never a name.
func unstorable(v any) []FieldError {
	var out []FieldError
	walkStorable(reflect.ValueOf(v), "", false, &out)
	return out
}

// walkStorable checks v, named path; sealed says v is (within) a field
// tagged crm:"sealed".
func walkStorable(v reflect.Value, path string, sealed bool, out *[]FieldError) {
	switch v.Kind() {
	case reflect.String:
		switch s := v.String(); {
		case sealed && !sealedText(s):
			*out = append(*out, FieldError{Field: path, Rule: "utf8", Message: "must be valid UTF-8"})
		case !sealed && !cleanText(s):
			rule, msg := textRule(s)
			*out = append(*out, FieldError{Field: path, Rule: rule, Message: msg})
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStorable(v.Elem(), path, sealed, out)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // bytes, not text
		}
		for i := range v.Len() {
			walkStorable(v.Index(i), path+"["+strconv.Itoa(i)+"]", sealed, out)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			walkStorable(it.Key(), path, sealed, out)
			walkStorable(it.Value(), path, sealed, out)
		}
	case reflect.Struct:
		t := v.Type()
		if t == timeType {
			if !storableTime(v.Interface().(time.Time)) {
				*out = append(*out, FieldError{Field: path, Rule: "time_range", Message: timeRangeMessage})
			}
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fieldSealed := sealed || f.Tag.Get("crm") == "sealed"
			switch {
			case f.Anonymous && name == "":
				walkStorable(v.Field(i), path, fieldSealed, out)
				continue
			case name == "" || name == "-":
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			walkStorable(v.Field(i), name, fieldSealed, out)
		}
	}
}

// checkText refuses s, the value of field, when it is not clean text (an
// id a caller names: no record has it, and PostgreSQL refuses to compare
// with it).
func checkText(kind, field, s string) error {
	if cleanText(s) {
		return nil
	}
	rule, msg := textRule(s)
	return invalid(kind, field, rule, msg)
}
