package meta_test

import (
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/meta"
)

// BenchmarkParseWebhook decodes the webhook benchmark's deliveries
// (ParseWebhook alone).
func BenchmarkParseWebhook(b *testing.B) {
	ds := benchDeliveries(0, 0, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := meta.ParseWebhook(ds[i%len(ds)].body); err != nil {
			b.Fatal(err)
		}
	}
}
