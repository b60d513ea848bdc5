package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/crm"
)

// BenchmarkPostgresNameSearchTwoWords measures a name search of two words
// on PostgreSQL, "lovelace 5", among 1,000 contacts of the tenant named
// "Ada Lovelace <n>": every contact holds "lovelace" (whose token is not
// keyed: its keyed prefix "lovelac" is looked up and the candidates
// filtered), 111 a word beginning with "5". It alternates it with a
// search of one word, "lovelace 5"'s rarer word "5" alone, and reports
// each one's median (two_words_us-figure, one_word_us-figure).
func BenchmarkPostgresNameSearchTwoWords(b *testing.B) {
	w := newPGBench(b)
	contacts := w.sdk.Contacts()
	for i := range 1000 {
		if _, err := contacts.Create(w.e.A, benchContact(i)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.db.Owner.ExecContext(context.Background(), "ANALYZE "+crm.TableContacts+", "+crm.TableContactNames); err != nil {
		b.Fatal(err)
	}
	search := func(prefix string) float64 {
		t0 := time.Now()
		p, err := contacts.List(w.e.A, crm.ContactFilter{NamePrefix: prefix}, crm.ListOptions{Limit: 200})
		d := time.Since(t0)
		if err != nil || len(p.Items) != 111 {
			b.Fatal(prefix, err, len(p.Items))
		}
		return float64(d.Microseconds())
	}
	var two, one []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			two, one = append(two, search("lovelace 5")), append(one, search("5"))
		} else {
			one, two = append(one, search("5")), append(two, search("lovelace 5"))
		}
	}
	b.ReportMetric(median(two), "two_words_us-figure")
	b.ReportMetric(median(one), "one_word_us-figure")
}
