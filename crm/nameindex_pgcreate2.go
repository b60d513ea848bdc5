package crm

import (
	"context"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
)

// On PostgreSQL a contact's name_index array holds the blind index of
// every prefix of its name words, but TableContactNames, the b-tree that
// a name search looks tokens up in, receives only those of the prefixes
// whose length (in characters) is one of pgNameKeyLengths: "Ada Lovelace
// 17" writes 8 rows instead of 13. The array lists those tokens first,
// then an empty element, then the others; the triggers write the rows of
// the tokens before the empty element (all of them in an array without
// one, as contacts written before migration 20261209010000 have).
//
// A search word of a keyed length looks its token up as before. A word of
// another length looks up the token of its longest keyed prefix and keeps
// the candidates whose name_index holds the word's own token: the same
// contacts, read through a wider look-up (a word of three characters
// reads the contacts with a word beginning with its first two).
//
// A prefix of one character gets a row only for the words that its
// prefix of two cannot stand for: a word of one character, and a word
// whose second character is not one of pgNameSecond ("ada" and
// "lovelace" write none, "o'brien" and "1" do). A search word of one
// character looks up its own token and the tokens of itself followed by
// each character of pgNameSecond, in one look-up of the token b-tree
// (pgNameShortKeys): the same contacts. "Ada Lovelace 1" writes 5 rows
// where it wrote 7.

// pgNameKeyLengths are the prefix lengths whose tokens TableContactNames
// holds on PostgreSQL, ascending; MaxNamePrefix is the last.
var pgNameKeyLengths = [...]int{1, 2, 4, 7, 11, 16, MaxNamePrefix}

// pgNameKeyed reports whether a prefix of n characters is keyed.
func pgNameKeyed(n int) bool {
	for _, k := range pgNameKeyLengths {
		if k == n {
			return true
		}
	}
	return false
}

// pgNameKeyLength is the longest keyed length of at most n characters (n
// ≥ 1).
func pgNameKeyLength(n int) int {
	best := pgNameKeyLengths[0]
	for _, k := range pgNameKeyLengths {
		if k <= n {
			best = k
		}
	}
	return best
}

// pgNameSecond are the characters whose two-character prefixes stand for
// the one-character prefix on PostgreSQL: a word whose second character
// is one of them gets no row for its first character alone, and a search
// of one character looks up the tokens of itself followed by each of
// them. Folded names hold no upper case.
const pgNameSecond = "abcdefghijklmnopqrstuvwxyz0123456789"

// pgNameSingles returns the one-character prefixes of the words of names
// (folded, as namePrefixes writes them) that get a row of
// TableContactNames: the words of one character, and those whose second
// character is not in pgNameSecond.
func pgNameSingles(names ...string) []string {
	var out []string
	for _, n := range names {
		for _, w := range strings.Fields(fold(n)) {
			first, size := utf8.DecodeRuneInString(w)
			second, _ := utf8.DecodeRuneInString(w[size:])
			if size < len(w) && second < utf8.RuneSelf && strings.IndexByte(pgNameSecond, byte(second)) >= 0 {
				continue
			}
			// As namePrefixes writes it: an invalid byte is U+FFFD.
			if p := string(first); !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// pgNameShortKeys returns the prefixes whose tokens a search word w of one
// character looks up on PostgreSQL: w, and w followed by each character of
// pgNameSecond.
func pgNameShortKeys(w string) []string {
	out := make([]string, 0, 1+len(pgNameSecond))
	out = append(out, w)
	for i := range len(pgNameSecond) {
		out = append(out, w+pgNameSecond[i:i+1])
	}
	return out
}

// pgNameIndexValue is the name_index column's value on PostgreSQL for
// the tokens of prefixes (tokens[i] the blind index of prefixes[i]): a
// text[] literal of the keyed tokens, an empty element, then the others
// (cut blind indexes in base64url need no quoting); "" (NULL) for none.
// A prefix of one character is keyed when it is one of singles
// (pgNameSingles).
func pgNameIndexValue(prefixes, tokens, singles []string) string {
	if len(tokens) == 0 {
		return ""
	}
	keyed := func(p string) bool {
		n := utf8.RuneCountInString(p)
		if n == 1 {
			return slices.Contains(singles, p)
		}
		return pgNameKeyed(n)
	}
	var b strings.Builder
	b.Grow(2 + len(tokens)*(nameTokenLen+1) + 3)
	b.WriteByte('{')
	for i, t := range tokens {
		if keyed(prefixes[i]) {
			b.WriteString(t)
			b.WriteByte(',')
		}
	}
	b.WriteString(`""`)
	for i, t := range tokens {
		if !keyed(prefixes[i]) {
			b.WriteByte(',')
			b.WriteString(t)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// pgNameLookup returns the prefix of a search word w (folded, at most
// MaxNamePrefix characters, as queryWords returns it) whose token a
// search looks up on PostgreSQL, and whether it is w itself; when it is
// not, the candidates must hold w's own token in their name_index.
func pgNameLookup(w string) (key string, exact bool) {
	r := []rune(w)
	n := pgNameKeyLength(len(r))
	if n >= len(r) {
		return w, true
	}
	return string(r[:n]), false
}

// migrateNamesKeyedPG (PostgreSQL; nothing on SQLite) makes the triggers
// of the contacts' name index write TableContactNames' rows for the
// tokens of name_index before its first empty element only (all of them
// in an array without one): see pgNameKeyLengths. A create writes fewer
// rows (8 for "Ada Lovelace 17" against 13), and a rename rewrites the
// contact's rows to its new keyed tokens. Contacts written before keep
// their rows, every prefix's: a search finds them as it finds the others,
// through their keyed prefixes' rows, and their own rows go with a rename
// or a delete as before. Running it again replaces the functions with the
// same. On a schema without the name_index column (an older release's,
// which tests build) it does nothing: the migrations that create the
// triggers come later there and write every token, which the search reads
// as before.
func migrateNamesKeyedPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if has, err := hasColumn(ctx, tx, TableContacts, "name_index"); err != nil || !has {
		return err
	}
	return migrations.Exec(ctx, tx, pgNameIndexNewFunc, pgNameIndexFunc)
}

// pgNameKeyedTokens is the part of NEW.name_index whose tokens get rows
// of TableContactNames: the tokens before its first empty element, all of
// them in an array without one.
const pgNameKeyedTokens = `NEW.name_index[1:coalesce(array_position(NEW.name_index, '') - 1, cardinality(NEW.name_index))]`

// pgNameIndexNewFunc is the function of the BEFORE INSERT trigger of the
// contacts (migration 20261206080200), which writes a new contact's rows
// of TableContactNames. Invoked with the application's rights: row-level
// security confines the rows it writes to the statement's tenant, which
// must be the row's.
const pgNameIndexNewFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index_new() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
			SELECT NEW.tenant_id, t, NEW.id FROM unnest(` + pgNameKeyedTokens + `) AS t;
		RETURN NEW;
	END $$`

// pgNameIndexFunc is the function of the AFTER UPDATE and DELETE triggers
// of the contacts (migration 20261123000570), which rewrite and delete a
// contact's rows of TableContactNames, with the application's rights. It
// finds the rows by the tokens of OLD.name_index, all of them (a contact
// written before migration 20261209010000 has a row for each), through
// the token b-tree: the table has no other (migration 20261211010000).
// Every row of a contact is one of those tokens: the triggers write rows
// of NEW.name_index's tokens only and delete them all when it changes,
// and a contact with no name_index has none.
const pgNameIndexFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF TG_OP <> 'INSERT' AND OLD.name_index IS NOT NULL THEN
			DELETE FROM socialcrm_crm_contact_names
				WHERE token = ANY(OLD.name_index) AND tenant_id = OLD.tenant_id AND contact_id = OLD.id;
		END IF;
		IF TG_OP <> 'DELETE' AND NEW.name_index IS NOT NULL THEN
			INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
				SELECT NEW.tenant_id, t, NEW.id FROM unnest(` + pgNameKeyedTokens + `) AS t;
		END IF;
		RETURN NULL;
	END $$`
