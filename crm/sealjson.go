package crm

import "unicode/utf8"

// decodeSealedJSON decodes the plaintext of a sealed value field into v
// without reflection, for the value types most records seal — a string
// list, a string map, UTM and Birthday — as json.Marshal wrote them:
// compact, keys as named, strings without escapes. It reports false,
// having changed nothing, for anything else (another type, an escape,
// whitespace, an unknown key, a number out of range); the caller then
// decodes with json.Unmarshal, which gives the same result where both
// apply. Opening a page of contacts decodes three such values per row,
// and json.Unmarshal's reflection cost more than opening them.
func decodeSealedJSON(b []byte, v any) bool {
	switch v := v.(type) {
	case *[]string:
		return decodeStrings(b, v)
	case *map[string]string:
		m := map[string]string{}
		if !decodeObject(b, func(k string, s string, _ int, isNum bool) bool {
			if isNum {
				return false
			}
			m[k] = s
			return true
		}) {
			return false
		}
		if *v == nil {
			*v = m
		} else {
			for k, s := range m {
				(*v)[k] = s
			}
		}
		return true
	case *UTM:
		u := *v
		if !decodeMembers(b, func(k string) *string {
			switch k {
			case "source":
				return &u.Source
			case "medium":
				return &u.Medium
			case "campaign":
				return &u.Campaign
			case "term":
				return &u.Term
			case "content":
				return &u.Content
			}
			return nil
		}, nil) {
			return false
		}
		*v = u
		return true
	case *Birthday:
		d := *v
		if !decodeMembers(b, nil, func(k string) *int {
			switch k {
			case "year":
				return &d.Year
			case "month":
				return &d.Month
			case "day":
				return &d.Day
			}
			return nil
		}) {
			return false
		}
		*v = d
		return true
	}
	return false
}

// decodeMembers decodes a flat object into a struct: text returns the
// string field a key names, number the int field (nil: no such field,
// which fails the decoding).
func decodeMembers(b []byte, text func(key string) *string, number func(key string) *int) bool {
	return decodeObject(b, func(k, s string, n int, isNum bool) bool {
		if isNum {
			if number == nil {
				return false
			}
			if p := number(k); p != nil {
				*p = n
				return true
			}
			return false
		}
		if text == nil {
			return false
		}
		if p := text(k); p != nil {
			*p = s
			return true
		}
		return false
	})
}

// jsonString reads the plain string (no escapes, valid UTF-8) starting at
// b[i], a quote; it returns the string and the index after it.
func jsonString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			if !utf8.Valid(s) {
				return "", 0, false
			}
			return string(s), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// decodeStrings decodes a JSON array of plain strings into *v, replacing
// its elements as json.Unmarshal does.
func decodeStrings(b []byte, v *[]string) bool {
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return false
	}
	out := (*v)[:0]
	if len(b) == 2 {
		if out == nil {
			out = []string{}
		}
		*v = out
		return true
	}
	var vals []string
	i := 1
	for {
		s, j, ok := jsonString(b, i)
		if !ok {
			return false
		}
		vals = append(vals, s)
		if j == len(b)-1 {
			break
		}
		if b[j] != ',' {
			return false
		}
		i = j + 1
	}
	if cap(out) == 0 {
		*v = vals
	} else {
		*v = append(out, vals...)
	}
	return true
}

// jsonInt reads the integer of at most 9 digits (no fraction, exponent or
// leading zero, as json.Marshal writes an int) starting at b[i]; it
// returns it and the index after it.
func jsonInt(b []byte, i int) (int, int, bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	j, n := i, 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		n = n*10 + int(b[j]-'0')
		j++
	}
	if d := j - i; d == 0 || d > 9 || d > 1 && b[i] == '0' {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, j, true
}

// decodeObject walks a flat JSON object whose values are plain strings or
// integers, calling set for each member; false from set stops it.
func decodeObject(b []byte, set func(key, s string, n int, isNum bool) bool) bool {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	if len(b) == 2 {
		return true
	}
	i := 1
	for {
		k, j, ok := jsonString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return false
		}
		j++
		if j >= len(b) {
			return false
		}
		if b[j] == '"' {
			var s string
			if s, j, ok = jsonString(b, j); !ok || !set(k, s, 0, false) {
				return false
			}
		} else {
			n, e, ok := jsonInt(b, j)
			if !ok || !set(k, "", n, true) {
				return false
			}
			j = e
		}
		if j == len(b)-1 {
			return true
		}
		if b[j] != ',' {
			return false
		}
		i = j + 1
	}
}
