package sqldb

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// namesSettingsByEveryByte is namesSettings as it was written first,
// every underscore compared: the reference TestNamesSettingsAgrees
// compares with.
func namesSettingsByEveryByte(query string) bool {
	for i := 0; i < len(query); i++ {
		if query[i] == '_' && (hasFoldPrefix(query[i:], "_config") || hasFoldPrefix(query[i:], "_settings")) ||
			query[i] == '&' && i > 0 && (query[i-1] == 'u' || query[i-1] == 'U') && i+1 < len(query) && query[i+1] == '"' {
			return true
		}
	}
	return false
}

// TestNamesSettingsAgrees: namesSettings, which looks at the byte after
// an underscore before comparing names, finds what comparing at every
// underscore finds — over spellings of set_config, pg_settings and
// Unicode-escaped names, and over random texts built from their pieces.
func TestNamesSettingsAgrees(t *testing.T) {
	queries := []string{
		`SELECT "ct"."id", "ct"."created_at" FROM "socialcrm_crm_contacts" AS "ct" WHERE ("ct".id = 'a') AND ("ct".tenant_id = 'b')`,
		"SELECT set_config('app.tenant_id', 'x', false)", "select SET_CONFIG('a','b',true)", "SELECT pg_catalog.set_Config('a','b',false)",
		"SELECT * FROM pg_settings", "select * from PG_SETTINGS", "UPDATE pg_Settings SET setting = 'x'",
		`SELECT U&"set\005fconfig"('a','b',false)`, `SELECT u&"x"`, "SELECT a & b", "SELECT _", "SELECT x_", "SELECT x_ſettings",
		"SELECT _c", "SELECT _s", "SELECT _configx", "SELECT _\u212aconfig",
	}
	for _, q := range queries {
		if got, want := namesSettings(q), namesSettingsByEveryByte(q); got != want {
			t.Errorf("namesSettings(%q) = %v, want %v", q, got, want)
		}
	}
	pieces := []string{"_", "config", "CONFIG", "settings", "Settings", "s", "c", "ſ", "\u212a", "&", "u", "U", `"`, "x", " ", "set"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range 1 + r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		q := b.String()
		if got, want := namesSettings(q), namesSettingsByEveryByte(q); got != want {
			t.Fatalf("namesSettings(%q) = %v, want %v", q, got, want)
		}
	}
}
