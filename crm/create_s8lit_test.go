package crm_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// createNasty are values a user controls that a literal rewriter could
// read otherwise than the database: quotes doubled and run into words,
// backslashes, comment marks, dollar and question marks, prefixes, names.
var createNasty = []string{
	"'", "''", `\`, `\'`, `'\`, "o'Brien", "x'00'", "E'x", "U&'d", "B'0", "a'--", "--", "/*", "*/",
	"$1", "$$", "$t$x$t$", "?", "?1", ":a", "@a", ";", "'; DELETE FROM socialcrm_crm_contacts; --",
	"' OR '1'='1", `"`, `"'"`, "[x]", "`", "é'", "\u2028", "a\nb\r\t", strings.Repeat("'", 100),
	strings.Repeat("(", 30) + "'" + strings.Repeat(")", 30), strings.Repeat("ab'--$;?", 12),
}

// Contacts.Create with user-controlled clear and sealed fields holding
// nasty strings stores them exactly as given, on both databases, changes
// no other row, and a company id crafted as SQL finds no company and
// stores nothing.
func TestCreateNastyValuesS8Lit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		guard, err := contacts.Create(e.B, crm.ContactInput{FirstName: "Guard", Source: "b"})
		require.NoError(t, err)
		for i, v := range createNasty {
			require.True(t, utf8.ValidString(v) && len(v) <= 100, v)
			in := crm.ContactInput{
				FirstName: v, LastName: v + v[:0], Source: v,
				Preferences: map[string]string{"k": v},
				Email:       "n" + strings.Repeat("x", i) + "@example.com",
			}
			if strings.TrimSpace(v) != "" && len(v) <= 50 {
				in.Tags = []string{strings.TrimSpace(v)}
			}
			c, err := contacts.Create(e.A, in)
			require.NoError(t, err, "value %q", v)
			got, err := contacts.Get(e.A, c.ID)
			require.NoError(t, err)
			// Names are stored trimmed (Contacts.Create).
			require.Equal(t, strings.TrimSpace(v), got.FirstName, "first name")
			require.Equal(t, strings.TrimSpace(v), got.LastName, "last name")
			require.Equal(t, strings.TrimSpace(v), got.Source, "source (stored trimmed)")
			require.Equal(t, map[string]string{"k": v}, got.Preferences, "preferences")
			require.Equal(t, in.Tags, nonNil(got.Tags, in.Tags), "tags")

			_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "co", CompanyID: v})
			require.Error(t, err, "company id %q", v)
		}
		p, err := contacts.List(e.A, crm.ContactFilter{}, crm.ListOptions{Limit: 200})
		require.NoError(t, err)
		require.Len(t, p.Items, len(createNasty), "one contact per value, none for a missing company")
		g, err := contacts.Get(e.B, guard.ID)
		require.NoError(t, err)
		require.Equal(t, "Guard", g.FirstName)
		require.Equal(t, "b", g.Source)
		pb, err := contacts.List(e.B, crm.ContactFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, pb.Items, 1, "the other tenant's contacts are as they were")
	})
}

func nonNil(got, want []string) []string {
	if len(got) == 0 && want == nil {
		return nil
	}
	return got
}

var _ = context.Background
