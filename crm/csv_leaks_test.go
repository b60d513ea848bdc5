package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// auditActions returns ctx's tenant's audit entries by action, with the
// chain verified; none may hold any of values.
func auditActions(t *testing.T, e *env, ctx context.Context, values ...string) map[string][]tenancy.AuditEntry {
	t.Helper()
	log, err := tenancy.NewAuditLog(e.db.DB)
	require.NoError(t, err)
	_, err = log.Verify(ctx)
	require.NoError(t, err)
	es, err := log.List(ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(t, err)
	out := map[string][]tenancy.AuditEntry{}
	for _, en := range es {
		b, err := json.Marshal(en)
		require.NoError(t, err)
		for _, v := range values {
			require.NotContains(t, string(b), v, "an audit entry holds a value")
		}
		out[en.Action] = append(out[en.Action], en)
	}
	return out
}

// dropWriter is a client of an export: at its first write it records
// what the audit log holds then and cancels the export's context (a
// client that hung up); it takes limit bytes, then fails.
type dropWriter struct {
	atFirst func()
	cancel  context.CancelFunc
	limit   int
	n       int
	text    strings.Builder
}

var errDropped = errors.New("connection dropped")

func (d *dropWriter) Write(p []byte) (int, error) {
	if d.atFirst != nil {
		d.atFirst()
		d.atFirst = nil
	}
	if d.cancel != nil {
		d.cancel()
	}
	if d.limit > 0 && d.n+len(p) > d.limit {
		k := d.limit - d.n
		d.n += k
		d.text.Write(p[:k])
		return k, errDropped
	}
	d.n += len(p)
	d.text.Write(p)
	return len(p), nil
}

// TestCSVExportAuditLeaks: a contacts CSV export is in the audit log
// before its first byte leaves ("contacts.export_started"), and one that
// stops midway — a client whose connection drops, a context cancelled
// between pages — ends with "contacts.export_interrupted" giving the count
// and the bytes taken, never a value; one that finishes with
// "contacts.exported". A refused export writes no entry.
func TestCSVExportAuditLeaks(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		var in strings.Builder
		in.WriteString("first_name,email\n")
		var values []string
		for i := range 501 { // two export pages
			in.WriteString(fmt.Sprintf("Leakcanary%d,leakcanary%d@example.com\n", i, i))
			values = append(values, fmt.Sprintf("leakcanary%d@example.com", i))
		}
		rep, err := contacts.ImportCSV(e.A, strings.NewReader(in.String()), crm.ImportOptions{BatchSize: 1000})
		require.NoError(t, err)
		require.Equal(t, 501, rep.Created)

		// The connection drops after 100 bytes.
		var startedFirst int
		d := &dropWriter{limit: 100, atFirst: func() { startedFirst = len(auditActions(t, e, e.A)["contacts.export_started"]) }}
		n, err := contacts.ExportCSV(e.A, d, crm.ContactFilter{})
		require.ErrorIs(t, err, errDropped)
		require.Equal(t, 1, startedFirst, "the start is in the log before the first byte")
		es := auditActions(t, e, e.A, values...)
		require.Len(t, es["contacts.export_interrupted"], 1)
		require.Empty(t, es["contacts.exported"])
		got := es["contacts.export_interrupted"][0]
		require.Equal(t, "100", got.Metadata["bytes"])
		require.Equal(t, fmt.Sprint(n), got.Metadata["count"])
		require.Equal(t, principal(e.A).Actor(), got.Actor)

		// The context ends (the client hung up) after the first page left.
		ctx, cancel := context.WithCancel(e.A)
		d = &dropWriter{cancel: cancel}
		n, err = contacts.ExportCSV(ctx, d, crm.ContactFilter{})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 500, n, "the first page left")
		require.Contains(t, d.text.String(), "@example.com")
		es = auditActions(t, e, e.A, values...)
		require.Len(t, es["contacts.export_started"], 2)
		require.Len(t, es["contacts.export_interrupted"], 2)
		got = es["contacts.export_interrupted"][1]
		require.Equal(t, "500", got.Metadata["count"])
		require.Equal(t, fmt.Sprint(d.n), got.Metadata["bytes"])

		// Whole.
		d = &dropWriter{}
		n, err = contacts.ExportCSV(e.A, d, crm.ContactFilter{})
		require.NoError(t, err)
		require.Equal(t, 501, n)
		es = auditActions(t, e, e.A, values...)
		require.Len(t, es["contacts.export_started"], 3)
		require.Len(t, es["contacts.exported"], 1)
		require.Equal(t, "501", es["contacts.exported"][0].Metadata["count"])

		// Refused: no entry.
		_, err = contacts.ExportCSV(context.Background(), &dropWriter{}, crm.ContactFilter{})
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		require.Len(t, auditActions(t, e, e.A)["contacts.export_started"], 3)
	})
}
