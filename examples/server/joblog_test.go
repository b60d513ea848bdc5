package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// TestRiverStopIsNotAnError: River logs an ERROR when its client stops in
// the middle of a job insert notification ("context canceled") — at every
// graceful shutdown on PostgreSQL; TestThreeReplicasS10 failed in CI on
// such a line. The server's River logger makes it a warning; any other
// River error stays an error.
func TestRiverStopIsNotAnError(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(stoppingHandler{slog.NewJSONHandler(&logs, nil)}).With("component", "river")
	log.Error("Client: Failed to send job insert notification", "queues", "default", "err", context.Canceled)
	log.Error("Client: Failed to send job insert notification", "err", fmt.Errorf("notify: %w", context.Canceled))
	log.Error("producer: fetch failed", "error", "context canceled")
	require.NotContains(t, logs.String(), `"level":"ERROR"`)
	require.Equal(t, 3, strings.Count(logs.String(), `"level":"WARN"`))
	require.Contains(t, logs.String(), `"queues":"default"`, "attributes kept")

	logs.Reset()
	log.Error("producer: fetch failed", "err", errors.New("connection refused"))
	require.Contains(t, logs.String(), `"level":"ERROR"`)
}
