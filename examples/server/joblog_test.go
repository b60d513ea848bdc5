package main

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// TestJobFailureLogLevel: a failed attempt that River will retry (a
// replica stopping mid-job, a transient database error) logs a warning
// with the attempt's error; a job River gave up on logs an error. Both
// count in /readyz's report. Before, every failed attempt logged an error
// without its cause, and a job cut short by a graceful stop read like a
// failed request in the logs.
func TestJobFailureLogLevel(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	a := startTestApp(t, slog.New(slog.NewJSONHandler(&logs, nil)), nil)
	logs.Reset() // start-up lines

	failed := func(state rivertype.JobState, attempt int) *river.Event {
		return &river.Event{Kind: river.EventKindJobFailed, Job: &rivertype.JobRow{
			Kind: kindSync, Attempt: attempt, State: state,
			Errors: []rivertype.AttemptError{{Attempt: attempt, Error: "context canceled"}},
		}}
	}
	a.recordJob(failed(rivertype.JobStateRetryable, 1))
	require.Contains(t, logs.String(), `"level":"WARN"`)
	require.Contains(t, logs.String(), `"err":"context canceled"`)
	require.NotContains(t, logs.String(), `"level":"ERROR"`)

	logs.Reset()
	a.recordJob(failed(rivertype.JobStateDiscarded, 25))
	require.Contains(t, logs.String(), `"level":"ERROR"`)
	require.Contains(t, logs.String(), `"msg":"scheduled job failed for good"`)

	logs.Reset()
	a.recordJob(&river.Event{Kind: river.EventKindJobCompleted, Job: &rivertype.JobRow{Kind: kindSync, Attempt: 2, State: rivertype.JobStateCompleted}})
	require.Contains(t, logs.String(), `"level":"INFO"`)
	rep := a.jobReport()
	require.Equal(t, 2, rep.Failed)
	require.Contains(t, rep.Completed, kindSync)
}
