package crm

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestPhoneFastPath: for numbers written as "+" and digits, of every
// calling code the parser knows, with national numbers of every leading
// digit and of many lengths (national prefixes, leading zeros,
// too short, too long), and for other shapes, normalizePhone returns
// what the parser alone returns, in every default region; and it skips
// the parser for the common numbers (else it would not be faster).
func TestPhoneFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	var in []string
	codes := make([]int, 0, len(phonenumbers.GetSupportedCallingCodes()))
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		codes = append(codes, cc)
	}
	slices.Sort(codes)
	for _, cc := range codes {
		for lead := range 10 { // each leading digit, at three lengths
			for range 3 {
				in = append(in, "+"+strconv.Itoa(cc)+strconv.Itoa(lead)+digits(1+rng.IntN(14)))
			}
		}
		in = append(in, "+"+strconv.Itoa(cc), "+"+strconv.Itoa(cc)+"1", "+"+strconv.Itoa(cc)+"0")
	}
	generated := len(in)
	in = append(in, "+", "+0", "+00", "+012345678", "+999123456789", "+28123456789", "+1"+digits(17),
		"+44 20 7946 0958", "+44(0)2079460958", "+440207946095", "+4402079460958", "+14155550100", "+114155550100",
		"+14155550100#12", "+14155550100x12", "+14155550100;ext=12", "+７１２３４５６７８９", "++14155550100",
		"(415) 555-0100", "415-555-0100", "0044 20 7946 0958", "tel:+14155550100", "+1-415-555-0100", "+8613800138000",
		"+390612345678", "+3906123", "+79161234567", "+89161234567", "+5511987654321", "+551198765432")
	regions := []string{"", "US", "GB", "IT", "BR", "RU"}
	fast := &Store{phones: newE164Prefixes()}
	skipped := 0
	for i, p := range in {
		rs := regions
		if i < generated {
			rs = regions[:1] // a number with its calling code reads alike in every region (the hand-written ones check it)
		}
		for _, r := range rs {
			slow := &Store{phoneRegion: r}
			fast.phoneRegion = r
			if got, want := fast.normalizePhone(p), slow.normalizePhone(p); got != want {
				t.Fatalf("normalizePhone(%q) in region %q returned %q, want %q (the parser's)", p, r, got, want)
			}
		}
		if fast.phones.unchanged(p) {
			skipped++
		}
	}
	for _, p := range []string{"+14155550100", "+447946095800", "+33612345678", "+4915123456789", "+8613800138000"} {
		if !fast.phones.unchanged(p) {
			t.Errorf("the parser ran for %q", p)
		}
	}
	if skipped < len(in)/2 {
		t.Errorf("the parser ran for %d of %d numbers", len(in)-skipped, len(in))
	}
	t.Logf("%d numbers, the parser skipped for %d", len(in), skipped)
}
