package csvsafe

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"Ada":                    "Ada",
		"=1+2":                   "'=1+2",
		`=HYPERLINK("x")`:        `'=HYPERLINK("x")`,
		"@SUM(A1)":               "'@SUM(A1)",
		"+14155550100":           "+14155550100",
		"+1 (415) 555-0100":      "+1 (415) 555-0100",
		"-5":                     "-5",
		"-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
		"+HYPERLINK(1)":          "'+HYPERLINK(1)",
		"\tx":                    "'\tx",
		"'quoted":                "'quoted",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) returned %q, want %q", in, got, want)
		}
		if got := Unescape(Escape(in)); got != in {
			t.Errorf("Unescape(Escape(%q)) returned %q", in, got)
		}
	}
}
