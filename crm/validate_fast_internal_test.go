package crm

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestContactFastValidation: plainlyValid never says yes where the
// validator says no — over contacts whose every field takes values at
// and around its limits, and e-mail addresses, phone numbers and owner
// ids written at random from the characters that matter — and it says
// yes for the common contact (else the validator would always run).
func TestContactFastValidation(t *testing.T) {
	s := &Store{validate: newValidator()}
	base := ContactInput{FirstName: "Ada", LastName: "Lovelace 17", Email: "ada17@example.com", Phone: "+14155550117",
		Stage: StageLead, Source: "web", UTM: UTM{Source: "ig", Campaign: "spring"}, Birthday: Birthday{Month: 12, Day: 10},
		Preferences: map[string]string{"lang": "en"}, Tags: []string{}}
	if !plainlyValid(&base) {
		t.Fatal("plainlyValid refuses the common contact")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	random := func(alphabet string, n int) string {
		r := []rune(alphabet)
		var b strings.Builder
		for range n {
			b.WriteRune(r[rng.IntN(len(r))])
		}
		return b.String()
	}
	long := func(r string, n int) string { return strings.Repeat(r, n) }
	var cases []ContactInput
	with := func(f func(c *ContactInput)) {
		c := base
		c.Preferences = map[string]string{"lang": "en"}
		c.Tags = []string{}
		f(&c)
		cases = append(cases, c)
	}
	for _, n := range []int{0, 1, 99, 100, 101, 200} {
		for _, r := range []string{"a", "é", "日"} {
			v := long(r, n)
			with(func(c *ContactInput) { c.FirstName = v })
			with(func(c *ContactInput) { c.LastName = v })
			with(func(c *ContactInput) { c.Source = v })
			with(func(c *ContactInput) { c.CompanyID = v[:min(len(v), 3*n)] })
			with(func(c *ContactInput) { c.CompanyID = long(r, n*64/100) })
			with(func(c *ContactInput) { c.CompanyID = long(r, n*65/100) })
			with(func(c *ContactInput) { c.UTM.Source, c.UTM.Medium = long(r, 2*n), v })
			with(func(c *ContactInput) { c.UTM.Term, c.UTM.Content = v, long(r, 2*n+1) })
			with(func(c *ContactInput) { c.Tags = []string{long(r, n/2)} })
			with(func(c *ContactInput) { c.Preferences = map[string]string{long(r, n*64/100): long(r, 10*n)} })
			with(func(c *ContactInput) { c.Preferences = map[string]string{"k": long(r, 10*n+1)} })
			with(func(c *ContactInput) { c.Preferences = map[string]string{long(r, n*65/100): "v"} })
		}
	}
	for _, n := range []int{0, 49, 50, 51} {
		with(func(c *ContactInput) {
			c.Tags, c.Preferences = make([]string, n), map[string]string{}
			for i := range n {
				c.Tags[i] = "t" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
				c.Preferences[c.Tags[i]] = "v"
			}
		})
	}
	with(func(c *ContactInput) { c.Tags = []string{"a", ""} })
	// Values no column holds (validate_values.go), in every string field.
	for _, bad := range []string{"\x00", "A\x00B", "ok\xff", "\xc3"} {
		with(func(c *ContactInput) { c.FirstName = bad })
		with(func(c *ContactInput) { c.LastName = bad })
		with(func(c *ContactInput) { c.Source = bad })
		with(func(c *ContactInput) { c.CompanyID = bad })
		with(func(c *ContactInput) {
			c.UTM.Source, c.UTM.Medium, c.UTM.Campaign, c.UTM.Term, c.UTM.Content = bad, bad, bad, bad, bad
		})
		with(func(c *ContactInput) { c.UTM.Content = bad })
		with(func(c *ContactInput) { c.Tags = []string{"a", bad} })
		with(func(c *ContactInput) { c.Preferences = map[string]string{"k": bad} })
		with(func(c *ContactInput) { c.Preferences = map[string]string{bad: "v"} })
	}
	with(func(c *ContactInput) { c.Tags = nil; c.Preferences = nil })
	for _, st := range []Stage{"", "lead", "qualified", "opportunity", "customer", "inactive", "Lead", "won", " lead"} {
		with(func(c *ContactInput) { c.Stage = st })
	}
	emails := []string{"", "a@b.co", "a.b@c.de", ".a@b.co", "a.@b.co", "a..b@c.de", "a@b", "a@-b.co", "a@b-.co", "a@b.c",
		"a@b.c1", "a@1.co", "a@b..co", "a+b@c.io", "-@a.co", "_@a.co", "a@b.co.", "a@@b.co", "@b.co", "a@", "a b@c.co",
		"a@b_c.co", "A@b.co", "a@B.co", "a@b.co ", "\"a\"@b.co", "a@[1.2.3.4]", "a@b.c-o", "a@b.co-", "a@xn--bcher-kva.ch",
		long("x", 64) + "@" + long("y", 63) + ".com", long("x", 240) + "@example.com", long("x", 241) + "@example.com",
		long("a", 10) + "@" + long("b.", 120) + "co"}
	for range 4000 {
		emails = append(emails, random("ab1.@-_+Z~ \"é", 1+rng.IntN(12)), random("ab.", 1+rng.IntN(4))+"@"+random("ab1.-", 1+rng.IntN(8)))
	}
	for _, e := range emails {
		with(func(c *ContactInput) { c.Email = e })
	}
	phones := []string{"", "+14155550117", "+1415555011", "+141555501", "+14155", "+012345678", "+123456789012345",
		"+1234567890123456", "14155550117", "+1 415 555 0117", "+１４１５５５５０１１７", "++14155550117", "+99999999"}
	for range 2000 {
		phones = append(phones, random("+0123456789 -", 1+rng.IntN(18)), "+"+random("0123456789", rng.IntN(18)))
	}
	for _, p := range phones {
		with(func(c *ContactInput) { c.Phone = p })
	}
	owners := []string{"", "0190b3a4-7c1e-7a2b-9c3d-4e5f60718293", "0190B3A4-7C1E-7A2B-9C3D-4E5F60718293", "0190b3a47c1e7a2b9c3d4e5f60718293",
		"0190b3a4-7c1e-7a2b-9c3d-4e5f6071829", "0190b3a4-7c1e-7a2b-9c3d-4e5f607182934", "g190b3a4-7c1e-7a2b-9c3d-4e5f60718293",
		"0190b3a4_7c1e-7a2b-9c3d-4e5f60718293"}
	for range 2000 {
		owners = append(owners, random("0123456789abcdefAg-", 36))
	}
	for _, o := range owners {
		with(func(c *ContactInput) { c.OwnerID = o })
	}
	fast := 0
	for i := range cases {
		c := &cases[i]
		if !plainlyValid(c) {
			continue
		}
		fast++
		if err := s.check(kindContact, c); err != nil {
			t.Fatalf("plainlyValid accepts what the validator refuses (%v): %+v", err, *c)
		}
	}
	t.Logf("%d contacts, %d plainly valid", len(cases), fast)
	if fast < 100 {
		t.Errorf("plainlyValid accepts only %d of %d contacts", fast, len(cases))
	}
}
