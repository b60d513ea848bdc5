package socialcrm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

const envExportOut = "S10AUDIT_EXPORT_OUT" // the file the killed child's client wrote

// killingClient writes half of what it is first sent to a file, then
// sends the process SIGKILL: an export killed while its archive streams.
type killingClient struct{ f *os.File }

func (k killingClient) Write(p []byte) (int, error) {
	_, _ = k.f.Write(p[:len(p)/2])
	_ = k.f.Sync()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// TestS10AuditKilledExportChild is the child's body; it does nothing
// unless started by TestS10AuditKilledExport.
func TestS10AuditKilledExportChild(t *testing.T) {
	target := os.Getenv(envKillDB)
	if target == "" || os.Getenv(envExportOut) == "" {
		return
	}
	sdk := killOpen(t, target, os.Getenv(envKillKEK), os.Getenv(envKillFiles), nil)
	actor := strings.Fields(os.Getenv(envKillActor))
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: actor[0], MemberID: actor[1], Role: tenancy.RoleOwner})
	f, err := os.Create(os.Getenv(envExportOut))
	require.NoError(t, err)
	_, _ = sdk.Retention.Export(ctx, os.Getenv(envKillRequest), killingClient{f})
	t.Fatal("the export finished before its kill point")
}

// TestS10AuditKilledExport: a data-subject export killed with SIGKILL
// while its archive streams leaves no file behind in the temporary
// directory (where the CSV spool lives), no plaintext there, and what the
// client got is not a readable archive; the request is neither answered
// nor given an outcome, the audit log shows an export began for it (no
// receipt of a delivery), and exporting again delivers it whole.
func TestS10AuditKilledExport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		kek := filepath.Join(t.TempDir(), "kek.json")
		files, tmp, outDir := t.TempDir(), t.TempDir(), t.TempDir()
		target := "sqlite:" + db.Path
		if db.Name == "postgres" {
			target = "postgres:" + db.DSN() + " " + db.OwnerDSN()
		}
		sdk := killOpen(t, target, kek, files, nil)
		ctx := dsarTenant(t, sdk, "s10kill")
		p := seedPerson(t, sdk, ctx, "kira", "+14155550166")
		// Enough rows that the CSV spool is in use when the kill comes.
		for i := range 400 {
			_, err := sdk.CRM.Notes().Create(ctx, crm.NoteInput{ContactID: p.contact.ID, Body: strings.Repeat("about kira ", 20) + string(rune('a'+i%26))})
			require.NoError(t, err)
		}
		req := submitVerified(t, sdk, ctx, retention.KindAccess, map[string]string{crm.SubjectEmail: p.email})
		owner, _ := tenancy.FromContext(ctx)

		out := filepath.Join(outDir, "export.zip")
		cmd := exec.Command(os.Args[0], "-test.run=^TestS10AuditKilledExportChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, envExportOut+"="+out, envKillDB+"="+target, envKillKEK+"="+kek,
			envKillFiles+"="+files, envKillRequest+"="+req.ID, envKillActor+"="+owner.TenantID+" "+owner.MemberID)
		outp, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s", outp)
		ws, ok := ee.Sys().(syscall.WaitStatus)
		require.True(t, ok)
		require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child was killed: %v\n%s", err, outp)

		got, err := os.ReadFile(out)
		require.NoError(t, err)
		require.NotEmpty(t, got, "part of the archive left")
		_, err = zip.NewReader(bytes.NewReader(got), int64(len(got)))
		require.Error(t, err, "a cut archive does not open as a whole one")
		left, err := os.ReadDir(tmp)
		require.NoError(t, err)
		require.Empty(t, left, "nothing left in the temporary directory")
		hits, err := leakscan.Files(p.crmValues, tmp)
		require.NoError(t, err)
		require.Empty(t, hits)

		r, err := sdk.Retention.Get(ctx, req.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusOpen, r.Status)
		require.Empty(t, r.Outcome, "no outcome recorded for an export never delivered")
		require.Len(t, auditOf(t, sdk, ctx, "retention.export_started", p.crmValues...), 1, "the export that began is in the log")
		require.Empty(t, auditOf(t, sdk, ctx, "retention.exported"), "and no delivery")

		text, _, m := exportOf(t, sdk, ctx, map[string]string{crm.SubjectEmail: p.email})
		require.Equal(t, retention.OutcomeDataFound, m.Outcome)
		require.Empty(t, slicesMissing(text, p.crmValues), "exported again, whole")
	}, migrated)
}
