package crm_test

import "github.com/socialcrm/socialcrm/crm"

// nameRows is the size of the name index of contacts whose names have
// the words words (folded, distinct, sharing no prefix) on e's database:
// on SQLite one word of the FTS5 index per prefix of every word, on
// PostgreSQL one row of TableContactNames per keyed prefix.
func nameRows(e *env, words ...string) int {
	if e.db.Name == "postgres" {
		return crm.NameRows(words...)
	}
	n := 0
	for _, w := range words {
		n += len([]rune(w))
	}
	return n
}
