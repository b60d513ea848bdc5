package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oapi-codegen/oapi-codegen/v2/pkg/codegen"
	_ "github.com/oapi-codegen/runtime" // the generated client's runtime
	"github.com/stretchr/testify/require"
)

// TestOpenAPIClientCompiles generates a typed Go client (models and client)
// from openapi.yaml with oapi-codegen and builds it: a client in another
// language's generator reads the same document.
func TestOpenAPIClientCompiles(t *testing.T) {
	t.Parallel()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiYAML)
	require.NoError(t, err)
	code, err := codegen.Generate(doc, codegen.Configuration{
		PackageName: "apiclient",
		Generate:    codegen.GenerateOptions{Client: true, Models: true},
		// The document has a Client schema (an agency's client).
		OutputOptions: codegen.OutputOptions{ClientTypeName: "APIClient"},
	})
	require.NoError(t, err)
	require.Contains(t, code, "func (c *APIClient) PostV1Contacts(")
	require.Contains(t, code, "type Contact struct")

	// A directory starting with "." is part of the module but no pattern
	// (./...) matches it.
	dir, err := os.MkdirTemp(".", ".apiclient-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client.go"), []byte(code), 0o600))
	out, err := exec.Command("go", "vet", "./"+dir).CombinedOutput()
	require.NoError(t, err, "the generated client does not build:\n%s", out)
}
