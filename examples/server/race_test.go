package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadyzWhileJobsRun: /readyz encodes this replica's job report while
// River's events go on noting job runs in it. Under the race detector this
// failed when /readyz encoded the report's map outside the lock.
func TestReadyzWhileJobsRun(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	var writer, readers sync.WaitGroup
	stop := make(chan struct{})
	failed := 0
	writer.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a.noteJob(jobRun{kind: fmt.Sprintf("example.job_%d", i%40), failed: i%7 == 0, attempt: 1})
			if i%7 == 0 {
				failed++
			}
		}
	})
	for range 4 {
		readers.Go(func() {
			for range 25 {
				rec := httptest.NewRecorder()
				a.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				if rec.Code != http.StatusOK {
					t.Errorf("GET /readyz = %d, want 200", rec.Code)
					return
				}
				var body struct {
					Jobs jobReport `json:"jobs"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Errorf("GET /readyz: %v", err)
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writer.Wait()
	rep := a.jobReport()
	require.Equal(t, failed, rep.Failed)
	if failed > 40 {
		require.Len(t, rep.Completed, 40, "every kind noted")
	}
}

// TestConsolePageConcurrentErrors: a console page with no template of its
// own renders its failures with the error template, from many requests at
// once. Under the race detector this failed when each request wrote the
// template name into the route's closure.
func TestConsolePageConcurrentErrors(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	a.page("POST /console/test/fails", public, "", func(http.ResponseWriter, *http.Request, *page) error {
		return &apiError{Status: http.StatusConflict, Code: "conflict", Message: "refused for the test"}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			a.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/console/test/fails", strings.NewReader("")))
			if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "refused for the test") {
				errs <- fmt.Errorf("POST = %d %q", rec.Code, rec.Body.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	require.NoError(t, errors.Join(all...))
}
