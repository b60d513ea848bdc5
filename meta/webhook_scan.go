package meta

import (
	"encoding/json"
	"unicode/utf8"
)

// scanWebhook decodes a delivery body shaped as Meta sends the common
// events (messages, echoes, deliveries and reads, with the fields
// wireEvent types), by hand, in one pass over own (the payload's copy of
// the body, which events' Raw slice). It gives up (ok false) on anything
// else — an unknown or repeated key, a key spelled in another case or
// with an escape, null, an attachment, a postback, a
// value of an unexpected type, malformed JSON — and parseWebhook then
// decodes the body with encoding/json, as before: what it returns is what
// that decoder returns for the same body (FuzzWebhookScan compares the
// two). The typed values (ids, times, booleans) go through their own
// UnmarshalJSON with the literal's bytes, as encoding/json calls it.
func scanWebhook(own []byte) (p *Payload, ok bool) {
	s := webhookScan{b: own}
	p = &Payload{}
	var seen uint8
	if !s.object(func(key []byte) bool {
		switch string(key) {
		case "object":
			return s.once(&seen, 1) && s.text(&p.Object)
		case "entry":
			if !s.once(&seen, 2) {
				return false
			}
			return s.entries(&p.Entries)
		}
		return false
	}) {
		return nil, false
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	return p, true
}

// webhookScan is scanWebhook's position in the body.
type webhookScan struct {
	b []byte
	i int
}

// once records the key of bit in seen, false if it was there already.
func (s *webhookScan) once(seen *uint8, bit uint8) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// ws skips JSON white space.
func (s *webhookScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and reads c if it comes next.
func (s *webhookScan) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, calling value for each key (which must
// read the key's value).
func (s *webhookScan) object(value func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		key, ok := s.str()
		if !ok || !s.next(':') || !value(key) {
			return false
		}
		if s.next(',') {
			continue
		}
		return s.next('}')
	}
}

// array reads an array, calling elem for each element (which must read
// it). It reports whether the array was empty in empty.
func (s *webhookScan) array(elem func() bool) (empty, ok bool) {
	if !s.next('[') {
		return false, false
	}
	if s.next(']') {
		return true, true
	}
	for {
		if !elem() {
			return false, false
		}
		if s.next(',') {
			continue
		}
		return false, s.next(']')
	}
}

// quoted reads a string and returns it with its quotes, and whether it
// holds an escape (which quoted does not check: encoding/json does, when
// it unquotes it).
func (s *webhookScan) quoted() (lit []byte, escaped, ok bool) {
	if !s.next('"') {
		return nil, false, false
	}
	start := s.i - 1
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start:s.i], escaped, true
		case c == '\\':
			escaped = true
			s.i++ // the escaped byte: a quote does not end the string
		case c < 0x20:
			return nil, false, false
		}
	}
	return nil, false, false
}

// str reads a string whose value is its bytes as they are (no escape,
// valid UTF-8), as every key the scanner knows is.
func (s *webhookScan) str() ([]byte, bool) {
	lit, escaped, ok := s.quoted()
	if !ok || escaped {
		return nil, false
	}
	v := lit[1 : len(lit)-1]
	return v, utf8.Valid(v)
}

// text reads a string value: its bytes when they are its value, else
// as encoding/json unquotes it (Meta escapes every non-ASCII character
// of a message's text as \uXXXX).
func (s *webhookScan) text(v *string) bool {
	lit, escaped, ok := s.quoted()
	if !ok {
		return false
	}
	if in := lit[1 : len(lit)-1]; !escaped && utf8.Valid(in) {
		*v = string(in)
		return true
	}
	return json.Unmarshal(lit, v) == nil
}

// literal reads a string, a number or true or false and
// returns its JSON text, as encoding/json hands it to an UnmarshalJSON.
func (s *webhookScan) literal() ([]byte, bool) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, false
	}
	start := s.i
	switch c := s.b[s.i]; {
	case c == '"':
		lit, escaped, ok := s.quoted()
		if !ok || escaped && !json.Valid(lit) {
			return nil, false
		}
	case c == 't' || c == 'f':
		word := "false"
		if c == 't' {
			word = "true"
		}
		if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
			return nil, false
		}
		s.i += len(word)
	case c == '-' || c >= '0' && c <= '9':
		if !s.number() {
			return nil, false
		}
	default:
		return nil, false
	}
	return s.b[start:s.i], true
}

// number reads a number as JSON writes one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *webhookScan) number() bool {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

// digits reads decimal digits and says how many.
func (s *webhookScan) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// id reads an ID's value.
func (s *webhookScan) id(v *ID) bool {
	b, ok := s.literal()
	return ok && v.UnmarshalJSON(b) == nil
}

// time reads a Timestamp's value.
func (s *webhookScan) time(v *Timestamp) bool {
	b, ok := s.literal()
	return ok && v.UnmarshalJSON(b) == nil
}

// entries reads entry[].
func (s *webhookScan) entries(out *[]Entry) bool {
	_, ok := s.array(func() bool {
		var id ID
		var at Timestamp
		var events []wireEvent
		var seen uint8
		if !s.object(func(key []byte) bool {
			switch string(key) {
			case "id":
				return s.once(&seen, 1) && s.id(&id)
			case "time":
				return s.once(&seen, 2) && s.time(&at)
			case "messaging":
				return s.once(&seen, 4) && s.events(&events)
			}
			return false
		}) {
			return false
		}
		*out = append(*out, entryOf(id, at, events))
		return true
	})
	return ok
}

// events reads messaging[], each event with its raw bytes.
func (s *webhookScan) events(out *[]wireEvent) bool {
	_, ok := s.array(func() bool {
		s.ws()
		start := s.i
		*out = append(*out, wireEvent{})
		w := &(*out)[len(*out)-1]
		if !s.event(w) {
			return false
		}
		w.raw = s.b[start:s.i:s.i]
		return true
	})
	return ok
}

// event reads one event of the kinds scanWebhook takes.
func (s *webhookScan) event(w *wireEvent) bool {
	var seen uint8
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "sender":
			var sub uint8
			return s.once(&seen, 1) && s.object(func(key []byte) bool {
				switch string(key) {
				case "id":
					return s.once(&sub, 1) && s.id(&w.Sender.ID)
				case "user_ref":
					return s.once(&sub, 2) && s.id(&w.Sender.UserRef)
				}
				return false
			})
		case "recipient":
			var sub uint8
			return s.once(&seen, 2) && s.object(func(key []byte) bool {
				return string(key) == "id" && s.once(&sub, 1) && s.id(&w.Recipient.ID)
			})
		case "timestamp":
			return s.once(&seen, 4) && s.time(&w.Timestamp)
		case "message":
			if !s.once(&seen, 8) {
				return false
			}
			w.Message = &wireMessage{}
			return s.message(w.Message)
		case "delivery":
			if !s.once(&seen, 16) {
				return false
			}
			w.Delivery = &wireDelivery{}
			return s.delivery(w.Delivery)
		case "read":
			if !s.once(&seen, 32) {
				return false
			}
			w.Read = &wireRead{}
			var sub uint8
			return s.object(func(key []byte) bool {
				return string(key) == "watermark" && s.once(&sub, 1) && s.time(&w.Read.Watermark)
			})
		}
		return false
	})
}

// message reads a message without attachments, quick reply or reply.
func (s *webhookScan) message(m *wireMessage) bool {
	var seen uint8
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "mid":
			return s.once(&seen, 1) && s.id(&m.MID)
		case "text":
			return s.once(&seen, 2) && s.text(&m.Text)
		case "is_echo":
			b, ok := s.literal()
			return ok && s.once(&seen, 4) && m.IsEcho.UnmarshalJSON(b) == nil
		case "app_id":
			return s.once(&seen, 8) && s.id(&m.AppID)
		}
		return false
	})
}

// delivery reads a delivery's mids and watermark.
func (s *webhookScan) delivery(d *wireDelivery) bool {
	var seen uint8
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "mids":
			if !s.once(&seen, 1) {
				return false
			}
			empty, ok := s.array(func() bool {
				var id ID
				if !s.id(&id) {
					return false
				}
				d.MIDs = append(d.MIDs, id)
				return true
			})
			if empty {
				d.MIDs = []ID{}
			}
			return ok
		case "watermark":
			return s.once(&seen, 2) && s.time(&d.Watermark)
		}
		return false
	})
}
