package crm

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestNamePrefixesAsRunes: namePrefixes, which slices each word, gives
// the prefixes the rune-by-rune reading gives (1 to MaxNamePrefix
// characters of each folded word, each once, in order), for names of
// ASCII, accented and wide letters, invalid bytes, and words at and
// around the longest prefix.
func TestNamePrefixesAsRunes(t *testing.T) {
	byRunes := func(names ...string) []string {
		var out []string
		for _, n := range names {
			for _, w := range strings.Fields(fold(n)) {
				r := []rune(w)
				for i := 1; i <= len(r) && i <= MaxNamePrefix; i++ {
					if p := string(r[:i]); !slices.Contains(out, p) {
						out = append(out, p)
					}
				}
			}
		}
		return out
	}
	names := [][]string{{"Ada", "Lovelace 17"}, {"", ""}, {"Ådå", "Ünïcödé"}, {"日本語", "名前"}, {"a\xffb", "\xc3"},
		{strings.Repeat("x", 19), strings.Repeat("y", 20)}, {strings.Repeat("é", 21), strings.Repeat("z", 40)}, {"Ada Ada", "ada"}}
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"a", "B", "é", "日", " ", "\xff", "ß", "İ", "1"}
	for range 500 {
		var b [2]strings.Builder
		for i := range b {
			for range rng.IntN(30) {
				b[i].WriteString(alphabet[rng.IntN(len(alphabet))])
			}
		}
		names = append(names, []string{b[0].String(), b[1].String()})
	}
	for _, n := range names {
		if got, want := namePrefixes(n...), byRunes(n...); !slices.Equal(got, want) {
			t.Fatalf("namePrefixes(%q) returned %q, want %q", n, got, want)
		}
	}
}
