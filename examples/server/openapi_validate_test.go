package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The e2e clients validate every exchange with the server against
// openapi.yaml (kin-openapi): each answer's status, headers and body, and
// each request that succeeded (a refused request may well break the
// document: that is what it tests). validated notes each operation that
// answered 2xx and passed.
var (
	apiDoc = sync.OnceValues(func() (routers.Router, error) {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openapiYAML)
		if err != nil {
			return nil, err
		}
		if err := doc.Validate(loader.Context); err != nil {
			return nil, fmt.Errorf("openapi.yaml: %w", err)
		}
		doc.Servers = nil // any host: the tests' servers listen on free ports
		return legacy.NewRouter(doc)
	})
	validatedMu sync.Mutex
	validated   = map[string]bool{}
)

// validateExchange checks one exchange against the document; a request to
// another host (an emulator's consent page) or a console page is skipped.
func validateExchange(t testing.TB, base string, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if !strings.HasPrefix(req.URL.String(), base) {
		return
	}
	router, err := apiDoc()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil && resp.StatusCode >= 300 {
		return // a route the server does not have either (404, 405, a redirect to the clean path)
	}
	if err != nil {
		t.Errorf("%s %s is not an operation of openapi.yaml: %v", req.Method, req.URL.Path, err)
		return
	}
	if slices.Contains(route.Operation.Tags, "console") {
		return
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// A CSV import is any text: the server reports bad rows one by one.
		ExcludeRequestBody: strings.HasPrefix(req.Header.Get("Content-Type"), "text/csv")}
	r2 := req.Clone(ctx)
	r2.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{Request: r2, PathParams: params, Route: route, Options: opts}
	ok := resp.StatusCode < 300
	if ok {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s %s: the request breaks openapi.yaml: %v", req.Method, route.Path, err)
			ok = false
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: opts}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s answered %d against openapi.yaml: %v\n%s", req.Method, route.Path, resp.StatusCode, err, truncate(string(respBody), 2000))
		ok = false
	}
	if ok {
		validatedMu.Lock()
		validated[req.Method+" "+route.Path] = true
		validatedMu.Unlock()
	}
}

// TestMain checks, after a run of every test, that every operation of the
// API (beyond the console's pages and the platforms' webhooks, which the
// emulators call) was validated at least once.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && !testing.Short() {
		if err := openapiCoverage(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: openapi coverage:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func openapiCoverage() error {
	router, err := apiDoc()
	if err != nil {
		return err
	}
	_ = router
	var doc struct{ ops []string }
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(openapiYAML)
	if err != nil {
		return err
	}
	for path, item := range d.Paths.Map() {
		for method, op := range item.Operations() {
			if slices.Contains(op.Tags, "console") || slices.Contains(op.Tags, "webhooks") {
				continue
			}
			if !validated[method+" "+path] {
				doc.ops = append(doc.ops, method+" "+path)
			}
		}
	}
	if len(doc.ops) > 0 {
		slices.Sort(doc.ops)
		return errors.New("operations never validated:\n  " + strings.Join(doc.ops, "\n  "))
	}
	return nil
}
