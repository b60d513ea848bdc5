package socialcrm_test

import (
	"os/exec"
	"strings"
	"testing"
)

// allowed encodes the import arrows of the design: each top-level package
// may import only the socialcrm packages listed for it (and internal/ ones).
// Nothing imports upward.
var allowed = map[string][]string{
	"tenancy":           {},
	"vault":             {"tenancy", "retention"},
	"retention":         {"tenancy"},
	"crm":               {"tenancy", "vault", "retention"},
	"social":            {"tenancy", "vault", "retention"},
	"meta":              {"tenancy", "vault", "retention", "social", "crm"},
	"tiktok":            {"tenancy", "vault", "retention", "social", "crm"},
	"meta/metatest":     {},
	"tiktok/tiktoktest": {},
}

const module = "github.com/socialcrm/socialcrm"

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		for _, imp := range fields[1:] {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok || imp == module {
				if imp == module && !strings.HasPrefix(pkg, "examples") {
					t.Errorf("%s imports the root package; only examples may", pkg)
				}
				continue
			}
			isInternal := strings.HasPrefix(pkg, "internal/")
			switch {
			case pkg == "" || strings.HasPrefix(pkg, "examples"):
				// The root facade and the examples may import anything.
			case isInternal:
				if !strings.HasPrefix(dep, "internal/") {
					t.Errorf("%s imports %s: internal packages import only internal packages", pkg, dep)
				}
			case strings.HasPrefix(dep, "internal/"):
			default:
				rule, known := allowed[pkg]
				if !known {
					// A sub-package inherits its parent's arrows.
					rule, known = allowed[strings.SplitN(pkg, "/", 2)[0]]
				}
				if !known {
					t.Errorf("%s is not in the import rules of deps_test.go", pkg)
					continue
				}
				if !contains(rule, dep) && !strings.HasPrefix(dep, pkg+"/") && !strings.HasPrefix(pkg, dep+"/") {
					t.Errorf("%s imports %s, against the design's arrows", pkg, dep)
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
