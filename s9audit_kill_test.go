package socialcrm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// The kill -9 test of a data-subject erasure. A child process (this test
// binary, running TestS9AuditKilledChild) opens the SDK on the parent's
// database, key file and attachment directory, and erases a verified
// request as the tenant's owner; it sends itself SIGKILL right after its
// N-th DELETE statement ran (inside a batch's transaction, before its
// commit), or, with kill point "bytes", when the attachment storage is
// asked to delete a file (after the batch that erased its row committed,
// before the bytes go).

const (
	envKillDB      = "S9AUDIT_KILL_DB" // "sqlite:<path>" or "postgres:<dsn> <owner dsn>"
	envKillKEK     = "S9AUDIT_KILL_KEK"
	envKillFiles   = "S9AUDIT_KILL_FILES"
	envKillAt      = "S9AUDIT_KILL_AT" // a number of DELETE statements, or "bytes"
	envKillRequest = "S9AUDIT_KILL_REQUEST"
	envKillActor   = "S9AUDIT_KILL_ACTOR" // tenant id, member id
)

// killHook sends the process SIGKILL after the n-th DELETE statement.
type killHook struct{ n, seen int }

func (h *killHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *killHook) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	if ev.Err == nil && strings.HasPrefix(strings.ToUpper(strings.TrimSpace(ev.Query)), "DELETE") {
		if h.seen++; h.seen == h.n {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}

// killStorage is a crm.Storage that sends the process SIGKILL when asked
// to delete a file.
type killStorage struct{ crm.Storage }

func (killStorage) Delete(context.Context, string, string) error {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	return errors.New("unreachable")
}

// killOpen opens the SDK on the database target names, the key file kek
// and the attachment directory files.
func killOpen(t testing.TB, target, kek, files string, wrap func(db *bun.DB, st crm.Storage) crm.Storage) *socialcrm.SDK {
	var db, owner *bun.DB
	var err error
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok {
		db, err = socialcrm.OpenDB(path)
		owner = db
	} else {
		dsns := strings.Fields(strings.TrimPrefix(target, "postgres:"))
		db, err = dbtest.OpenPostgres(dsns[0])
		require.NoError(t, err)
		owner, err = dbtest.OpenPostgres(dsns[1])
	}
	require.NoError(t, err)
	kf, err := insecurekeyfile.Open(kek)
	require.NoError(t, err)
	dir, err := crm.NewDirStorage(files)
	require.NoError(t, err)
	var st crm.Storage = dir
	if wrap != nil {
		st = wrap(db, dir)
	}
	sdk, err := socialcrm.Open(context.Background(), socialcrm.Config{DB: db, Owner: owner, KEK: kf, Attachments: st})
	require.NoError(t, err)
	return sdk
}

// TestS9AuditKilledChild is the child's body; it does nothing unless
// started by TestS9AuditKilledErasureFinishesItself.
func TestS9AuditKilledChild(t *testing.T) {
	target := os.Getenv(envKillDB)
	if target == "" {
		return
	}
	at := os.Getenv(envKillAt)
	sdk := killOpen(t, target, os.Getenv(envKillKEK), os.Getenv(envKillFiles), func(db *bun.DB, st crm.Storage) crm.Storage {
		if at == "bytes" {
			return killStorage{st}
		}
		n, err := strconv.Atoi(at)
		require.NoError(t, err)
		db.AddQueryHook(&killHook{n: n})
		return st
	})
	actor := strings.Fields(os.Getenv(envKillActor))
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: actor[0], MemberID: actor[1], Role: tenancy.RoleOwner})
	_, err := sdk.Retention.Erase(ctx, os.Getenv(envKillRequest))
	require.NoError(t, err)
}

// TestS9AuditKilledErasureFinishesItself: an erasure killed with SIGKILL
// inside its first batch, inside a later one, or between a committed
// batch and the deletion of its attachment bytes, stays open — never
// "completed" half done — and the scheduled ResumeErasures finishes it by
// itself: every row of the person (two contacts, her records, her
// attachment's bytes) is gone, the final receipt counts exactly the rows
// removed over both runs, the request is completed, and the control
// person in the same tenant keeps hers.
func TestS9AuditKilledErasureFinishesItself(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		kek := filepath.Join(t.TempDir(), "kek.json")
		files := t.TempDir()
		target := "sqlite:" + db.Path
		if db.Name == "postgres" {
			target = "postgres:" + db.DSN() + " " + db.OwnerDSN()
		}
		sdk := killOpen(t, target, kek, files, nil)
		tables := dsarTables(t, sdk)
		// Each kill point costs a child process (tens of seconds under
		// the race detector on a loaded machine): CI runs one per
		// database — on PostgreSQL a kill inside a later batch, after
		// earlier batches committed; on SQLite the kill between a batch
		// and its attachment bytes (retention's crash test kills SQLite
		// inside batches at dozens of points). S9AUDIT_KILL_ALL=1 runs
		// every point on both (all passed when this test was written).
		points := []string{"4"}
		if db.Name == "sqlite" {
			points = []string{"bytes"}
		}
		if os.Getenv("S9AUDIT_KILL_ALL") != "" {
			points = []string{"1", "4", "bytes"}
		}
		for _, at := range points {
			t.Run("kill_at_"+at, func(t *testing.T) {
				ctx := dsarTenant(t, sdk, "s9kill"+at)
				p, _ := tenancy.FromContext(ctx)
				c := sdk.CRM.Contacts()
				ann, err := c.Create(ctx, crm.ContactInput{FirstName: "Ann", Email: "ann@kill.example", Phone: "+14155550142"})
				require.NoError(t, err)
				dup, err := c.Create(ctx, crm.ContactInput{FirstName: "Annie", Email: " ANN@kill.example"}, crm.AllowDuplicate())
				require.NoError(t, err)
				for _, id := range []string{ann.ID, dup.ID} {
					for range 3 {
						_, err = sdk.CRM.Notes().Create(ctx, crm.NoteInput{ContactID: id, Body: "about ann"})
						require.NoError(t, err)
					}
					_, err = sdk.CRM.Tasks().Create(ctx, crm.TaskInput{Title: "call ann", ContactID: id})
					require.NoError(t, err)
				}
				att, err := sdk.CRM.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: dup.ID, FileName: "ann.pdf",
					ContentType: "application/pdf"}, strings.NewReader("ann's bytes"))
				require.NoError(t, err)
				bob, err := c.Create(ctx, crm.ContactInput{FirstName: "Bob", Email: "bob@kill.example"})
				require.NoError(t, err)
				_, err = sdk.CRM.Notes().Create(ctx, crm.NoteInput{ContactID: bob.ID, Body: "about bob"})
				require.NoError(t, err)
				_, bobFiles := fileCount(t, files)
				bobFiles-- // hers

				_, before := dump(t, sdk, ctx, tables)
				req := submitVerified(t, sdk, ctx, retention.KindErasure, map[string]string{crm.SubjectEmail: "Ann@Kill.example"})

				cmd := exec.Command(os.Args[0], "-test.run=^TestS9AuditKilledChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), envKillDB+"="+target, envKillKEK+"="+kek, envKillFiles+"="+files, envKillAt+"="+at,
					envKillRequest+"="+req.ID, envKillActor+"="+p.TenantID+" "+p.MemberID)
				began := time.Now()
				out, err := cmd.CombinedOutput()
				t.Logf("the child ran %v", time.Since(began))
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee, "%s", out)
				ws, ok := ee.Sys().(syscall.WaitStatus)
				require.True(t, ok)
				require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child was killed at %s: %v\n%s", at, err, out)

				r, err := sdk.Retention.Get(ctx, req.ID)
				require.NoError(t, err)
				require.Equal(t, retention.StatusOpen, r.Status, "killed half way, the erasure stays open")
				_, err = c.Get(ctx, bob.ID)
				require.NoError(t, err)

				// The scheduled job finishes it.
				rcs, err := sdk.Retention.ResumeErasures(tenancy.System(context.Background(), "s9audit"))
				require.NoError(t, err)
				var rc retention.Receipt
				for _, x := range rcs {
					if x.RequestID == req.ID {
						rc = x
					}
				}
				require.Equal(t, req.ID, rc.RequestID, "ResumeErasures finished the request")
				require.Equal(t, retention.OutcomeDataFound, rc.Outcome)
				_, after := dump(t, sdk, ctx, tables)
				var anonymized int64
				for _, cr := range rc.Categories {
					if cr.Category == "crm.deal" {
						anonymized = cr.Erased
					}
				}
				require.Equal(t, int64(before-after)+anonymized, rc.Erased(), "the receipt counts every row removed, over both runs: %+v", rc.Categories)
				r, err = sdk.Retention.Get(ctx, req.ID)
				require.NoError(t, err)
				require.Equal(t, retention.StatusCompleted, r.Status)

				for _, id := range []string{ann.ID, dup.ID} {
					_, err = c.Get(ctx, id)
					require.ErrorIs(t, err, crm.ErrNotFound)
				}
				_, err = sdk.CRM.Attachments().Get(ctx, att.ID)
				require.ErrorIs(t, err, crm.ErrNotFound)
				mine, total := fileCount(t, files)
				require.Equal(t, bobFiles, total, "her attachment's bytes are deleted: %v", mine)
				notes, err := sdk.CRM.Notes().List(ctx, crm.NoteFilter{ContactID: bob.ID}, crm.ListOptions{})
				require.NoError(t, err)
				require.Len(t, notes.Items, 1, "the control person keeps hers")
				rcs, err = sdk.Retention.ResumeErasures(tenancy.System(context.Background(), "s9audit"))
				require.NoError(t, err)
				require.Empty(t, rcs, "nothing is left open")
			})
		}
	}, migrated)
}

// fileCount returns the files under dir and their number.
func fileCount(t *testing.T, dir string) ([]string, int) {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, path)
		}
		return nil
	}))
	return out, len(out)
}
