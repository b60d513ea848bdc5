package crm_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

// TestS16ClearMergedIDReachesKeptContact: once Merge folded contact cyd
// into amy and then amy into bea, a request by amy's id — or by cyd's —
// finds nothing of either (both are deleted) but must reach bea, who now
// holds their data: the export by amy's id holds bea and the two merge
// records (ids only), and the erasure by amy's id erases bea, her note
// and the merge records, leaving a control contact and the other
// tenant's merge record untouched.
func TestS16ClearMergedIDReachesKeptContact(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, _ := storageEnv(t, db, 0)
		s := e.store
		eng := commerceEngine(t, e)
		create := func(first, email string) crm.Contact {
			t.Helper()
			c, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: first, Email: email})
			require.NoError(t, err)
			return c
		}
		amy, bea, cyd := create("Amy", "amy@example.com"), create("Bea", "bea@example.com"), create("Cyd", "cyd@example.com")
		control := create("Dot", "dot@example.com")
		_, err := s.Notes().Create(e.A, crm.NoteInput{ContactID: amy.ID, Body: "zqmergedcanary"})
		require.NoError(t, err)
		_, err = s.Contacts().Merge(e.A, amy.ID, cyd.ID)
		require.NoError(t, err)
		_, err = s.Contacts().Merge(e.A, bea.ID, amy.ID)
		require.NoError(t, err)
		// The other tenant merges too.
		o1, err := s.Contacts().Create(e.B, crm.ContactInput{FirstName: "Amy", Email: "amy@example.com"})
		require.NoError(t, err)
		o2, err := s.Contacts().Create(e.B, crm.ContactInput{FirstName: "Bea", Email: "bea@example.com"})
		require.NoError(t, err)
		_, err = s.Contacts().Merge(e.B, o2.ID, o1.ID)
		require.NoError(t, err)
		require.Equal(t, 2, countRows(t, e, e.A, crm.TableContactMerges))

		for _, id := range []string{amy.ID, cyd.ID} {
			r := request(t, e.A, eng, retention.KindExport, map[string]string{crm.SubjectContact: id})
			var buf bytes.Buffer
			_, err = eng.Export(e.A, r.ID, &buf)
			require.NoError(t, err)
			zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			require.NoError(t, err)
			files := map[string]string{}
			for _, f := range zr.File {
				rc, err := f.Open()
				require.NoError(t, err)
				b, err := io.ReadAll(rc)
				require.NoError(t, err)
				rc.Close()
				files[f.Name] = string(b)
			}
			var m retention.Manifest
			require.NoError(t, json.Unmarshal([]byte(files["manifest.json"]), &m))
			rows := map[string]int64{}
			for _, c := range m.Categories {
				rows[c.Name] = c.Rows
			}
			require.EqualValues(t, 1, rows["crm.contact"], "the export by a merged id finds the kept contact: %v", rows)
			require.EqualValues(t, 1, rows["crm.note"], "and what was merged into her: %v", rows)
			require.EqualValues(t, 2, rows["crm.contact_merge"], "%v", rows)
			var all string
			for _, f := range files {
				all += f
			}
			require.Contains(t, all, bea.ID)
			require.Contains(t, all, "zqmergedcanary")
			require.NotContains(t, all, control.ID)
		}

		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: amy.ID})
		rc, err := eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeDataFound, rc.Outcome)
		_, err = s.Contacts().Get(e.A, bea.ID)
		require.True(t, errors.Is(err, crm.ErrNotFound), "the kept contact is erased: %v", err)
		require.Zero(t, countRows(t, e, e.A, crm.TableContactMerges), "the merge records go with her")
		require.Zero(t, countRows(t, e, e.A, crm.TableNotes))
		_, err = s.Contacts().Get(e.A, control.ID)
		require.NoError(t, err, "the control contact stays")
		require.Equal(t, 1, countRows(t, e, e.B, crm.TableContactMerges), "the other tenant's merge record stays")
	}, setup)
}
