package tenancy

import (
	"fmt"
	"slices"
	"strings"
)

// SQLite's connection settings and statistics the Guard keeps from the
// application's statements (see sqliteRefusal):
//
//   - A PRAGMA that changes a setting of the connection outlives the
//     statement: the pool hands the connection to the next caller, of any
//     tenant. secure_delete off (or FAST) leaves what an erasure deletes
//     in the file's free space — another tenant's erased contact, name
//     tokens and all; recursive_triggers off lets REPLACE skip the
//     triggers that keep indexes exact; foreign_keys off, query_only on and
//     the like change what every tenant's statements do. Only the
//     pragmas of pragmaCallsAllowed may take a value or an argument.
//   - The dbstat virtual table (and sqlite_dbpage, where compiled in)
//     reads every table's pages whoever owns the rows: counts of cells
//     per table, such as how many contacts every tenant together holds.
//   - The pragmas that count the file's pages or its commits
//     (fileCounters), as statements or as the table-valued functions
//     pragma_page_count and the like: page_count and freelist_count are
//     the size of every tenant's rows together (PostgreSQL's
//     pg_database_size, refused there), read before and after another
//     tenant's work they told how much it wrote or erased; data_version
//     changes when another connection commits, every tenant's
//     (TestGuardRefusesSQLiteFileCounters). The pragmas that read a
//     table's schema run.
//   - VACUUM INTO writes a copy of the whole database — every tenant's
//     rows, and what an erasure removes later — to any path; ATTACH opens
//     any file beside it. A plain VACUUM runs.
//   - The statistics tables ANALYZE writes (sqlite_stat1, sqlite_stat4;
//     stat2 and stat3 of old releases) count every table's rows, and
//     sqlite_stat4 keeps sample keys of every index: other tenants' ids,
//     blind indexes and timestamps, and the term prefixes of a full-text
//     index. ANALYZE itself runs; its tables are for the planner.
//   - SQLite's functions that answer about the connection rather than the
//     statement (connStateFuncs): last_insert_rowid(), changes() and
//     total_changes() report the rowid and row counts of the statements
//     the connection ran before — on a pooled connection, another
//     tenant's: how many rows its last insert made the table hold, how
//     many rows its last update or delete touched, how many rows every
//     tenant changed since the connection opened
//     (TestGuardRefusesConnectionStateFunctions). The SDK reads neither:
//     bun takes an insert's rowid from the driver's result of that
//     statement, never from the connection afterwards.

// pragmaCallsAllowed are the pragmas a guarded statement may give a value
// or an argument: a checkpoint, the planner's optimize, and reads of a
// table's schema (a full-text index and tenant-owned tables are walled
// off by name as elsewhere). Not busy_timeout: 0 on a pooled connection
// made the next tenant's writes fail at once on a lock instead of waiting.
var pragmaCallsAllowed = []string{"wal_checkpoint", "optimize", "table_info", "table_xinfo", "table_list",
	"index_list", "index_info", "index_xinfo", "foreign_key_list", "foreign_key_check", "integrity_check",
	"quick_check"}

// pageReaders are SQLite's virtual tables that read every table's pages;
// statsPrefix begins the names of its statistics tables.
var pageReaders = []string{"dbstat", "sqlite_dbpage"}

const statsPrefix = "sqlite_stat"

// fileCounters are the pragmas that count the file's pages or commits.
var fileCounters = []string{"page_count", "freelist_count", "data_version"}

// fileCounter reports whether name, a pragma's name or a word of a
// statement, is one of fileCounters, as PRAGMA name or as the table-valued
// function pragma_name, ignoring case.
func fileCounter(name string, pragma bool) bool {
	name = strings.ToLower(name)
	if !pragma {
		var ok bool
		if name, ok = strings.CutPrefix(name, "pragma_"); !ok {
			return false
		}
	}
	return slices.Contains(fileCounters, name)
}

// connStateFuncs are SQLite's core functions whose answer is state of the
// connection left by earlier statements (SQLite's list of core functions:
// the others answer from their arguments, the build or the file). On
// PostgreSQL no function has these names; they are refused there too, as
// the Guard reads one SQL for both.
var connStateFuncs = []string{"last_insert_rowid", "changes", "total_changes"}

// connStateFunc reports whether name is one of connStateFuncs, ignoring
// case.
func connStateFunc(name string) bool {
	return slices.ContainsFunc(connStateFuncs, func(f string) bool { return strings.EqualFold(f, name) })
}

// connStateWhy is why a statement calling name, a connStateFuncs
// function, is refused.
func connStateWhy(name string) string {
	return strings.ToLower(name) + "() answers about the statements the pooled connection ran before, another tenant's among them"
}

// callsConnState returns the first connStateFuncs function bare calls (its
// name as a word followed by an opening parenthesis), or "".
func callsConnState(bare string) string {
	for _, f := range connStateFuncs {
		for at := 0; ; {
			i := strings.Index(bare[at:], f)
			if i < 0 {
				break
			}
			i += at
			at = i + len(f)
			if i > 0 && identByte(bare[i-1]) || at < len(bare) && identByte(bare[at]) {
				continue
			}
			if strings.HasPrefix(strings.TrimLeft(bare[at:], " \t\r\n"), "(") {
				return f
			}
		}
	}
	return ""
}

// sqliteRefusal returns why a statement of bare (lower case, comments
// stripped, quotes dropped; split at semicolons) may not run, or nil: a
// PRAGMA that changes a setting, a read of the pages or statistics of the
// file, a call of a function that answers about the connection
// (connStateFuncs), VACUUM INTO or ATTACH.
func sqliteRefusal(bare string) error {
	if f := callsConnState(bare); f != "" {
		return fmt.Errorf("%w: %s", ErrUnscoped, connStateWhy(f))
	}
	for _, stmt := range strings.Split(bare, ";") {
		w := identWords(stmt)
		for _, word := range w {
			if pageReader(word) {
				return fmt.Errorf("%w: %s reads what every tenant's rows hold (pages or statistics)", ErrUnscoped, word)
			}
		}
		if len(w) > 0 && (w[0] == "attach" || w[0] == "vacuum" && slices.Contains(w, "into")) {
			return fmt.Errorf("%w: %s on a guarded handle: a copy or an attached file is out of every tenant's walls (and of erasure)", ErrUnscoped, strings.ToUpper(w[0]))
		}
		if len(w) < 2 || w[0] != "pragma" {
			continue
		}
		// PRAGMA [schema.]name [= value | (value)]
		rest := strings.TrimSpace(stmt[strings.Index(stmt, "pragma")+len("pragma"):])
		name := w[1]
		rest = strings.TrimSpace(rest[len(name):])
		if strings.HasPrefix(rest, ".") && len(w) > 2 {
			name = w[2]
			rest = strings.TrimSpace(rest[1:])
			rest = strings.TrimSpace(rest[strings.Index(rest, name)+len(name):])
		}
		if fileCounter(name, true) {
			return fmt.Errorf("%w: PRAGMA %s counts the pages or commits of every tenant's rows", ErrUnscoped, name)
		}
		if rest != "" && !slices.Contains(pragmaCallsAllowed, name) {
			return fmt.Errorf("%w: PRAGMA %s may not be changed on a guarded handle: it outlives the statement on a pooled connection (set it when opening the database)", ErrUnscoped, name)
		}
	}
	return nil
}

// pageReader reports whether name is a virtual table or function that
// reads every table's pages (pageReaders) or one of SQLite's statistics
// tables, ignoring case.
func pageReader(name string) bool {
	return slices.ContainsFunc(pageReaders, func(p string) bool { return strings.EqualFold(p, name) }) || fileCounter(name, false) ||
		len(name) >= len(statsPrefix) && strings.EqualFold(name[:len(statsPrefix)], statsPrefix)
}
