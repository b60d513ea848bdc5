package socialcrm_test

import (
	"encoding/json"
	"os/exec"
	"path"
	"strings"
	"testing"
)

// allowed encodes the import arrows of the design: each top-level package
// may import only the socialcrm packages listed for it (and internal/ ones).
// Nothing imports upward. meta and tiktok import no crm: a host with a CRM
// of its own uses the platform clients alone; inbox is the bridge between
// Messenger events and crm conversations. Only the root facade (and the
// examples, another module) may import the root package.
var allowed = map[string][]string{
	"tenancy":           {},
	"vault":             {"tenancy", "retention"},
	"retention":         {"tenancy"},
	"crm":               {"tenancy", "vault", "retention"},
	"social":            {"tenancy", "vault", "retention"},
	"meta":              {"tenancy", "vault", "retention", "social"},
	"tiktok":            {"tenancy", "vault", "retention", "social"},
	"inbox":             {"tenancy", "vault", "retention", "social", "meta", "crm"},
	"meta/metatest":     {},
	"tiktok/tiktoktest": {},
}

const module = "github.com/socialcrm/socialcrm"

// goList runs go list on the library module's packages (./... stops at the
// nested modules: examples, retention/retentionriver, the conformance
// tests), one JSON object per package.
func goList(t *testing.T) []listedPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Name,Imports,Deps,Module", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Module == nil || p.Module.Path != module {
			t.Fatalf("go list ./... listed %s of module %v: run the test from the library module", p.ImportPath, p.Module)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list listed %d packages, want the whole library", len(pkgs))
	}
	return pkgs
}

type listedPackage struct {
	ImportPath string
	Name       string
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
}

func TestImportDirection(t *testing.T) {
	pkgs := goList(t)
	listed := map[string]bool{}
	for _, p := range pkgs {
		listed[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = true
	}
	for pkg := range allowed {
		if !listed[pkg] {
			t.Errorf("deps_test.go has import rules for %s, which is not a package of the library", pkg)
		}
	}
	for _, p := range pkgs {
		pkg := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok || imp == module {
				if imp == module {
					t.Errorf("%s imports the root package; only the examples may", pkg)
				}
				continue
			}
			isInternal := strings.HasPrefix(pkg, "internal/")
			switch {
			case pkg == "":
				// The root facade may import anything.
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

// forbidden are what no package of the library may pull in, directly or
// transitively: the examples' browser driver and YAML, the job queue (its
// integration is the module retention/retentionriver), the test-only
// authorization server, and the test support packages.
var forbidden = []string{
	"github.com/chromedp/",
	"github.com/riverqueue/",
	"github.com/ory/",
	"github.com/getkin/",
	"go.yaml.in/yaml/",
	"gopkg.in/yaml.",
	module + "/examples/",
	module + "/retention/retentionriver",
}

// testSupport are the packages forbidden to the library's other packages
// outside their tests (the emulators and the database test harness), and the
// standard library's test packages.
var testSupport = []string{
	module + "/meta/metatest",
	module + "/tiktok/tiktoktest",
	module + "/internal/dbtest",
	module + "/internal/testkit",
	"testing",
	"net/http/httptest",
}

// TestDeps fails when a non-test package of the library pulls in, at any
// depth, what an embedder must not pay for. Test support packages (named
// …test, and internal/testkit) may use the testing packages, not the rest.
func TestDeps(t *testing.T) {
	for _, p := range goList(t) {
		support := strings.HasSuffix(path.Base(p.ImportPath), "test") || p.ImportPath == module+"/internal/testkit"
		for _, dep := range p.Deps {
			for _, bad := range forbidden {
				if dep == strings.TrimSuffix(bad, "/") || strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s", p.ImportPath, dep)
				}
			}
			if !support && contains(testSupport, dep) {
				t.Errorf("%s depends on %s, a test support package", p.ImportPath, dep)
			}
		}
	}
}

// TestModuleRequirements fails when the library's go.mod requires (even
// indirectly, for a test) a module only the examples, the River integration
// or the conformance tests need: every requirement listed there takes part
// in an embedder's version selection.
func TestModuleRequirements(t *testing.T) {
	out, err := exec.Command("go", "mod", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var mod struct {
		Module  struct{ Path string }
		Require []struct{ Path string }
		Replace []struct{ Old struct{ Path string } }
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatalf("go.mod: %v", err)
	}
	if mod.Module.Path != module {
		t.Fatalf("go.mod is of module %q, want %q", mod.Module.Path, module)
	}
	if len(mod.Require) == 0 {
		t.Fatal("go.mod lists no requirements")
	}
	for _, r := range mod.Require {
		for _, bad := range []string{"github.com/chromedp/", "github.com/riverqueue/", "github.com/ory/", "github.com/getkin/"} {
			if strings.HasPrefix(r.Path, bad) {
				t.Errorf("go.mod requires %s", r.Path)
			}
		}
	}
	if len(mod.Replace) > 0 {
		t.Errorf("go.mod replaces %v: an embedder would not see the replacement", mod.Replace)
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
