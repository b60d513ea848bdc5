package crm

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// BenchmarkPlainMessage: Ingest's check by hand of a common message, the
// webhook's hot path (the checks of validate_values.go included).
func BenchmarkPlainMessage(b *testing.B) {
	m := NewMessage{Conversation: ConversationKey{Channel: ChannelMessenger, AccountID: "106201234567890", ThreadID: "7012345678901234"},
		Direction: Inbound, ExternalID: "m_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", Text: "Hallo, ist das Roggenbrot noch da? Ich komme um 5.",
		SentAt: time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	for b.Loop() {
		if !plainMessage(&m) {
			b.Fatal("refused")
		}
	}
}

// TestCleanText: cleanText agrees with its definition (valid UTF-8, no
// NUL) over strings of every length up to 40 bytes with a NUL, a byte
// beyond ASCII, or an invalid sequence at every position, and random
// ones.
func TestCleanText(t *testing.T) {
	want := func(s string) bool { return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) }
	var cases []string
	for n := range 41 {
		base := strings.Repeat("a", n)
		cases = append(cases, base)
		for i := range n {
			for _, ins := range []string{"\x00", "\x80", "\xff", "é", "日", "\xc3", "\xed\xa0\x80", "\x7f", "\x01"} {
				cases = append(cases, base[:i]+ins+base[i:])
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte{0, 1, 'a', 0x7f, 0x80, 0xbf, 0xc3, 0xa9, 0xe6, 0x97, 0xa5, 0xed, 0xa0, 0xf0, 0xff}
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(rng.IntN(26))
			}
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got := cleanText(s); got != want(s) {
			t.Fatalf("cleanText(%q) = %v, want %v", s, got, want(s))
		}
	}
}
