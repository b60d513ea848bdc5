package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIMatchesRoutes checks that every route the server registers is
// in the OpenAPI document and every operation of the document is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(openapiYAML, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	var documented, served []string
	for path, item := range doc.Paths {
		for method := range item {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	for _, r := range a.routes {
		path := strings.ReplaceAll(r.Path, "{$}", "")
		served = append(served, r.Method+" "+path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	require.Equal(t, served, documented, "routes registered vs. operations in openapi.yaml")
}
