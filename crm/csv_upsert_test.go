package crm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// TestCSVImportUsualHeadersAndUpsert: headers in the usual spellings are
// mapped, national phone numbers read in the default region, a row that
// names nobody is rejected rather than stored empty; importing again
// updates what changed, leaves the rest unchanged (or skips it on request)
// and creates nothing; the report holds no value.
func TestCSVImportUsualHeadersAndUpsert(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, crm.WithDefaultRegion("US"))
		c := e.store.Contacts()
		first := "\ufeffFirst Name,Surname,Email Address,Mobile,Lifecycle Stage,Date of Birth,Labels,Favourite Colour\n" +
			"Ada,Lovelace,ada@example.com,(555) 123-4567,customer,1815-12-10,vip,green\n" +
			",,,,lead,,,blue\n" +
			"Grace,Hopper,GRACE@example.com,,,,,red\n"
		rep, err := c.ImportCSV(e.A, strings.NewReader(first), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, 3, rep.Rows)
		require.Equal(t, 2, rep.Created)
		require.Equal(t, 1, rep.Rejected)
		require.Equal(t, []crm.RowError{{Row: 1, Field: "Favourite Colour", Problem: "unknown column, ignored"},
			{Row: 3, Field: "first_name", Problem: "a contact needs a name, an e-mail address or a phone number"}}, rep.Errors)
		require.Equal(t, crm.RowResult{Row: 3, Action: crm.ImportRejected, Reason: "no name, e-mail address or phone number"}, rep.Results[1])
		p, err := c.List(e.A, crm.ContactFilter{Phone: "+15551234567"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		ada := p.Items[0]
		require.Equal(t, "Lovelace", ada.LastName)
		require.Equal(t, crm.StageCustomer, ada.Stage)
		require.Equal(t, []string{"vip"}, ada.Tags)
		require.Equal(t, crm.Birthday{Year: 1815, Month: 12, Day: 10}, ada.Birthday)
		require.Equal(t, crm.RowResult{Row: 2, Action: crm.ImportCreated, ContactID: ada.ID}, rep.Results[0])

		// Again, with a full-name column: Ada's phone given another way
		// changes nothing; Grace gains a tag; a new row by phone only
		// finds Ada.
		second := "Full Name,E-mail,Phone Number,Tags\n" +
			"Ada Lovelace,ada@example.com,555-123-4567,vip\n" +
			"Grace Hopper,grace@example.com,,navy\n" +
			"Countess,,+1 555 123 4567,\n" +
			"Alan Mathison Turing,alan@example.com,,\n"
		rep, err = c.ImportCSV(e.A, strings.NewReader(second), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, 1, rep.Created)
		require.Equal(t, 2, rep.Updated, "%+v", rep.Results)
		require.Equal(t, 1, rep.Unchanged, "%+v", rep.Results)
		require.Equal(t, crm.ImportUnchanged, rep.Results[0].Action)
		require.Equal(t, "email", rep.Results[0].MatchedBy)
		require.Equal(t, crm.ImportUpdated, rep.Results[1].Action)
		require.Equal(t, crm.RowResult{Row: 4, Action: crm.ImportUpdated, ContactID: ada.ID, MatchedBy: "phone"}, rep.Results[2])
		require.Equal(t, 3, count(t, e.A, c.List, crm.ContactFilter{}))
		grace, err := c.Get(e.A, rep.Results[1].ContactID)
		require.NoError(t, err)
		require.Equal(t, []string{"navy"}, grace.Tags)
		require.Equal(t, "grace@example.com", grace.Email)
		alan, err := c.Get(e.A, rep.Results[3].ContactID)
		require.NoError(t, err)
		require.Equal(t, [2]string{"Alan Mathison", "Turing"}, [2]string{alan.FirstName, alan.LastName})
		ada, err = c.Get(e.A, ada.ID)
		require.NoError(t, err)
		require.Equal(t, "Countess", ada.FirstName, "the row's non-empty values are written")

		rep, err = c.ImportCSV(e.A, strings.NewReader(second), crm.ImportOptions{OnMatch: crm.ImportSkip})
		require.NoError(t, err)
		require.Equal(t, 4, rep.Skipped)
		require.Equal(t, 3, count(t, e.A, c.List, crm.ContactFilter{}))
		_, err = c.ImportCSV(e.A, strings.NewReader(second), crm.ImportOptions{OnMatch: "merge"})
		require.ErrorIs(t, err, crm.ErrInvalid)

		b, err := json.Marshal(rep)
		require.NoError(t, err)
		// The phone number's digits as the rows wrote them, long enough
		// that no random contact id in the report holds them by chance.
		for _, v := range []string{"ada@", "Ada", "Lovelace", "123-4567", "1234567", "555 123", "navy", "Grace"} {
			require.NotContains(t, string(b), v, "the report holds no values")
		}
	}, setup)
}

// TestCSVExportImportedBackCreatesNothing: a tenant's own export imported
// back — contacts without e-mail or phone included, found by their id —
// creates nothing and changes nothing; the export and the import wrote
// audit entries with their counts and no value.
func TestCSVExportImportedBackCreatesNothing(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.store.Contacts()
		for _, in := range []crm.ContactInput{
			{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100", Tags: []string{"vip"}, Preferences: map[string]string{"lang": "fr"}},
			{FirstName: "Name", LastName: "Only"},
			{Phone: "+14155550111"},
		} {
			_, err := c.Create(e.A, in)
			require.NoError(t, err)
		}
		var out bytes.Buffer
		n, err := c.ExportCSV(e.A, &out, crm.ContactFilter{})
		require.NoError(t, err)
		require.Equal(t, 3, n)
		rep, err := c.ImportCSV(e.A, bytes.NewReader(out.Bytes()), crm.ImportOptions{})
		require.NoError(t, err)
		require.Empty(t, rep.Errors)
		require.Equal(t, 3, rep.Unchanged, "%+v", rep.Results)
		for _, r := range rep.Results {
			require.Equal(t, "id", r.MatchedBy)
		}
		require.Equal(t, 3, count(t, e.A, c.List, crm.ContactFilter{}))

		log, err := tenancy.NewAuditLog(e.db.DB)
		require.NoError(t, err)
		entries, err := log.List(e.A, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		var exported, imported []tenancy.AuditEntry
		for _, en := range entries {
			switch en.Action {
			case "contacts.exported":
				exported = append(exported, en)
			case "contacts.imported":
				imported = append(imported, en)
			}
			b, _ := json.Marshal(en)
			require.NotContains(t, string(b), "ada@example.com")
			require.NotContains(t, string(b), "4155550100")
		}
		require.Len(t, exported, 1)
		require.Equal(t, "3", exported[0].Metadata["count"])
		require.Equal(t, "true", exported[0].Metadata["complete"])
		require.Equal(t, principal(e.A).Actor(), exported[0].Actor)
		require.Len(t, imported, 1)
		require.Equal(t, map[string]string{"rows": "3", "created": "0", "updated": "0", "rejected": "0"}, imported[0].Metadata)
	})
}

// distinctCSV is an import of n rows naming distinct e-mail addresses,
// every fifth row repeated further on, in order or reversed.
func distinctCSV(n int, reversed bool) (string, int) {
	var rows []string
	for i := range n {
		rows = append(rows, fmt.Sprintf("P%d,p%d@example.com", i, i))
		if i%5 == 0 {
			rows = append(rows, fmt.Sprintf("Again%d,P%d@Example.com", i, i))
		}
	}
	if reversed {
		for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
			rows[i], rows[j] = rows[j], rows[i]
		}
	}
	return "first_name,email\n" + strings.Join(rows, "\n") + "\n", n
}

// TestCSVConcurrentImportsCreateEachAddressOnce: two imports of the same
// addresses at once, in opposite orders, create one contact per address.
func TestCSVConcurrentImportsCreateEachAddressOnce(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		reps := make([]crm.ImportReport, 2)
		for i := range 2 {
			in, _ := distinctCSV(120, i == 1)
			wg.Go(func() {
				reps[i], errs[i] = e.store.Contacts().ImportCSV(e.A, strings.NewReader(in), crm.ImportOptions{BatchSize: 15})
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		require.Equal(t, 120, reps[0].Created+reps[1].Created)
		require.Equal(t, 120, count(t, e.A, e.store.Contacts().List, crm.ContactFilter{}))
	})
}

// The crash test: a child process (this test binary, running
// TestCSVImportCrashChild) imports a file and dies (os.Exit) when the
// import reads past a given byte; the parent then sends the same file
// again, and again after a second crash, and the tenant holds one contact
// per distinct e-mail address.
const (
	envImportDB   = "CRM_IMPORT_CRASH_DB" // "sqlite:<path>" or "postgres:<dsn>"
	envImportKEK  = "CRM_IMPORT_CRASH_KEK"
	envImportFile = "CRM_IMPORT_CRASH_FILE"
	envImportAt   = "CRM_IMPORT_CRASH_AT"
	envImportTid  = "CRM_IMPORT_CRASH_TENANT"
	importExit    = 3
)

// dieAfter reads r and exits the process once more than at bytes were
// asked for: the import dies between two batches or while reading one.
type dieAfter struct {
	r    io.Reader
	at   int
	read int
}

func (d *dieAfter) Read(p []byte) (int, error) {
	if d.read > d.at {
		fmt.Fprintf(os.Stderr, "killed after %d bytes\n", d.read)
		os.Exit(importExit)
	}
	if len(p) > 512 {
		p = p[:512] // small reads: the kill lands near the byte asked for
	}
	n, err := d.r.Read(p)
	d.read += n
	return n, err
}

func crashStore(t testing.TB, db *bun.DB, kekPath string) *crm.Store {
	kek, err := insecurekeyfile.Open(kekPath)
	require.NoError(t, err)
	v, err := vault.New(db, kek, vault.WithColumns(crm.SealedColumns()...))
	require.NoError(t, err)
	s, err := crm.New(db, v)
	require.NoError(t, err)
	return s
}

func TestCSVImportCrashChild(t *testing.T) {
	target := os.Getenv(envImportDB)
	if target == "" {
		return
	}
	var db *bun.DB
	var err error
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok {
		db, err = sqldb.SQLite(path)
	} else {
		db, err = dbtest.OpenPostgres(strings.TrimPrefix(target, "postgres:"))
	}
	require.NoError(t, err)
	require.NoError(t, setup(context.Background(), db))
	s := crashStore(t, db, os.Getenv(envImportKEK))
	at, err := strconv.Atoi(os.Getenv(envImportAt))
	require.NoError(t, err)
	f, err := os.Open(os.Getenv(envImportFile))
	require.NoError(t, err)
	_, err = s.Contacts().ImportCSV(owner(os.Getenv(envImportTid)), &dieAfter{r: f, at: at}, crm.ImportOptions{BatchSize: 25})
	require.NoError(t, err)
	t.Fatal("the import finished before its kill point")
}

func TestCSVImportResentAfterCrash(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		dir := t.TempDir()
		kekPath := filepath.Join(dir, "kek.json")
		s := crashStore(t, db.DB, kekPath)
		tid := tenancy.NewID()
		ctx := owner(tid)
		_, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Before", Email: "p7@example.com"}) // keys made, one address known
		require.NoError(t, err)
		in, distinct := distinctCSV(200, false)
		file := filepath.Join(dir, "import.csv")
		require.NoError(t, os.WriteFile(file, []byte(in), 0o600))
		target := "sqlite:" + db.Path
		if db.Name == "postgres" {
			target = "postgres:" + db.DSN()
		}
		for _, frac := range []int{35, 70} {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCSVImportCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), envImportDB+"="+target, envImportKEK+"="+kekPath, envImportFile+"="+file,
				envImportAt+"="+strconv.Itoa(len(in)*frac/100), envImportTid+"="+tid)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit) && exit.ExitCode() == importExit, "child: %v\n%s", err, out)
			n := count(t, ctx, s.Contacts().List, crm.ContactFilter{})
			require.Greater(t, n, 1, "the child committed batches before it died")
			require.LessOrEqual(t, n, distinct)
		}
		rep, err := s.Contacts().ImportCSV(ctx, strings.NewReader(in), crm.ImportOptions{BatchSize: 25})
		require.NoError(t, err)
		require.Greater(t, rep.Unchanged, 0, "the re-sent import finds what the crashed ones committed")
		require.Equal(t, distinct, count(t, ctx, s.Contacts().List, crm.ContactFilter{}), "one contact per distinct e-mail address")
	}, setup)
}
