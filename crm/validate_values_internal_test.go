package crm

import (
	"testing"
	"time"
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
