package crm

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestMessageFastValidation: plainMessage and plainKey, Ingest's checks by
// hand, give the validator's verdict — over messages whose every field
// takes values at and around its limits, in one-, two- and three-byte
// characters and invalid UTF-8, the allowed words and near misses, and
// thousands of random combinations: exactly for keys and for messages
// without attachments, and never a yes where the validator says no for
// the rest. The common message passes (else the validator would always
// run).
func TestMessageFastValidation(t *testing.T) {
	s := &Store{validate: newValidator()}
	sent := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	base := NewMessage{Conversation: ConversationKey{Channel: ChannelMessenger, AccountID: "3001", ThreadID: "9001"},
		Direction: Inbound, ExternalID: "m_1", Text: "Hallo, ist das Roggenbrot da? äöå", SentAt: sent}
	if !plainMessage(&base) || !plainKey(&base.Conversation) {
		t.Fatal("plainMessage refuses the common message")
	}
	long := strings.Repeat
	channels := []Channel{ChannelMessenger, ChannelInstagram, ChannelEmail, ChannelSMS, ChannelWhatsApp, ChannelRCS,
		"", "Messenger", "fax", " sms", "sms ", "messengerx"}
	directions := []Direction{Inbound, Outbound, "", "In", "inbound", "out "}
	statuses := []DeliveryStatus{"", StatusPending, StatusSent, StatusDelivered, StatusRead, StatusFailed, "Sent", "lost", " "}
	var ids, texts []string
	for _, r := range []string{"a", "é", "日", "\xff"} {
		for _, n := range []int{0, 1, 254, 255, 256, 300} {
			ids = append(ids, long(r, n))
		}
		for _, n := range []int{0, 1, 19999, 20000, 20001} {
			texts = append(texts, long(r, n))
		}
	}
	texts = append(texts, long("日", 6667)+"a"+long("é", 9999), long("a", 20000)+"\xff")
	// Values no column holds (validate_values.go): a NUL, invalid UTF-8
	// among valid text. A NUL is refused in the ids and taken in the text
	// (crm:"sealed").
	for _, bad := range []string{"\x00", "m\x00id", "id\x00", "ok\xff\xfe", "\xc3", "é\xed\xa0\x80"} {
		ids = append(ids, bad)
		texts = append(texts, bad)
	}

	var exact []NewMessage
	with := func(f func(m *NewMessage)) {
		m := base
		f(&m)
		exact = append(exact, m)
	}
	for _, c := range channels {
		with(func(m *NewMessage) { m.Conversation.Channel = c })
	}
	for _, id := range ids {
		with(func(m *NewMessage) { m.Conversation.AccountID = id })
		with(func(m *NewMessage) { m.Conversation.ThreadID = id })
		with(func(m *NewMessage) { m.ExternalID = id })
	}
	for _, d := range directions {
		with(func(m *NewMessage) { m.Direction = d })
	}
	for _, st := range statuses {
		with(func(m *NewMessage) { m.Status = st })
	}
	for _, tx := range texts {
		with(func(m *NewMessage) { m.Text = tx })
	}
	times := []time.Time{{}, time.Unix(0, 0), time.Unix(0, 1).UTC(), sent.In(time.FixedZone("x", 3600)),
		minStorableTime.Add(time.Microsecond), minStorableTime.Add(-time.Nanosecond), maxStorableTime,
		maxStorableTime.Add(time.Nanosecond), maxStorableTime.In(time.FixedZone("e", -5*3600)),
		time.UnixMilli(1<<63 - 1), time.UnixMilli(-1 << 63), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, at := range times {
		with(func(m *NewMessage) { m.SentAt = at })
	}
	// Random combinations, each field changed with probability 1/3 (so
	// that a good share stays valid).
	rng := rand.New(rand.NewPCG(5, 6))
	change := func() bool { return rng.IntN(3) == 0 }
	for range 3000 {
		with(func(m *NewMessage) {
			if change() {
				m.Conversation.Channel = channels[rng.IntN(len(channels))]
			}
			if change() {
				m.Conversation.AccountID = ids[rng.IntN(len(ids))]
			}
			if change() {
				m.Conversation.ThreadID = ids[rng.IntN(len(ids))]
			}
			if change() {
				m.Direction = directions[rng.IntN(len(directions))]
			}
			if change() {
				m.Status = statuses[rng.IntN(len(statuses))]
			}
			if change() {
				m.ExternalID = ids[rng.IntN(len(ids))]
			}
			if change() {
				m.Text = texts[rng.IntN(len(texts))]
			}
			if rng.IntN(8) == 0 {
				m.SentAt = times[rng.IntN(len(times))]
			}
		})
	}
	yes := 0
	for _, m := range exact {
		want := s.check(kindMessage, m) == nil
		if got := plainMessage(&m); got != want {
			t.Fatalf("plainMessage(%.80v) = %v, the validator says %v", m, got, want)
		}
		if got, want := plainKey(&m.Conversation), s.check(kindConversation, m.Conversation) == nil; got != want {
			t.Fatalf("plainKey(%.80v) = %v, the validator says %v", m.Conversation, got, want)
		}
		if want {
			yes++
		}
	}
	if yes < len(exact)/5 || yes == len(exact) {
		t.Fatalf("only %d of %d messages valid: the cases test little", yes, len(exact))
	}

	// Attachments, and a zero instant with a location, go to the
	// validator: plainMessage says no, whatever the validator says.
	conservative := []NewMessage{base, base, base, base}
	conservative[0].Attachments = []MessageAttachment{{Type: "image", URL: "https://example.com/a.jpg"}}
	conservative[1].Attachments = []MessageAttachment{{Type: "image", URL: "not a url"}}
	conservative[2].Attachments = make([]MessageAttachment, 21)
	conservative[3].SentAt = time.Time{}.In(time.FixedZone("x", 3600))
	for _, m := range conservative {
		if plainMessage(&m) {
			t.Fatalf("plainMessage(%.80v) = true, want the validator asked", m)
		}
	}
}
