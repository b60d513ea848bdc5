package socialcrm_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// canaries plants a distinct value in every personal field of the crm
// records of the tenant acting in ctx and returns them.
type canaries struct {
	all  []string
	next int
}

func (c *canaries) text(label string) string {
	c.next++
	v := fmt.Sprintf("Canary%s%03dzq", label, c.next)
	c.all = append(c.all, v)
	return v
}

func (c *canaries) email() string {
	c.next++
	v := fmt.Sprintf("canary%03dzq@example.com", c.next)
	c.all = append(c.all, v)
	return v
}

func (c *canaries) phone() string {
	c.next++
	v := fmt.Sprintf("+1415557%04d", c.next)
	c.all = append(c.all, v)
	return v
}

// seedEveryField creates one record of every crm kind with a canary in
// each personal field, through the public API.
func seedEveryField(t *testing.T, ctx context.Context, s *crm.Store, c *canaries) {
	t.Helper()
	contact, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: c.text("First"), LastName: c.text("Last"),
		Email: c.email(), Phone: c.phone(), Source: "web",
		UTM:      crm.UTM{Source: c.text("Us"), Medium: c.text("Um"), Campaign: c.text("Uc"), Term: c.text("Ut"), Content: c.text("Uo")},
		Birthday: crm.Birthday{Year: 1987, Month: 3, Day: 14}, Preferences: map[string]string{"size": c.text("Pref")},
		Tags: []string{c.text("Tag")}})
	require.NoError(t, err)
	_, err = s.Notes().Create(ctx, crm.NoteInput{Body: c.text("Note"), ContactID: contact.ID})
	require.NoError(t, err)
	_, err = s.Tasks().Create(ctx, crm.TaskInput{Title: c.text("TaskT"), Description: c.text("TaskD"), ContactID: contact.ID})
	require.NoError(t, err)
	_, err = s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, Subject: c.text("ActS"), Body: c.text("ActB"),
		ContactID: contact.ID, OccurredAt: time.Now()})
	require.NoError(t, err)
	pl, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Sales", Stages: []string{"new", "won"}})
	require.NoError(t, err)
	_, err = s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: c.text("Deal"), ContactID: contact.ID})
	require.NoError(t, err)
	psid := c.text("Psid")
	_, err = s.Conversations().Record(ctx, crm.NewMessage{
		Conversation: crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: psid},
		Direction:    crm.Inbound, ExternalID: "mid-1", Text: c.text("Msg"), SentAt: time.Now(),
		Attachments: []crm.MessageAttachment{{Type: "image", URL: "https://cdn.example.com/" + c.text("Url")}}})
	require.NoError(t, err)
	_, err = s.Consents().Grant(ctx, crm.ConsentChange{ContactID: contact.ID, Channel: crm.ChannelEmail,
		Purpose: crm.PurposeMarketing, Source: c.text("Consent")})
	require.NoError(t, err)
	_, err = s.Fields().Define(ctx, crm.FieldDefInput{RecordKind: "contact", Name: "nickname", Type: crm.FieldText})
	require.NoError(t, err)
	_, err = s.Fields().Set(ctx, "contact", contact.ID, map[string]any{"nickname": c.text("Custom")})
	require.NoError(t, err)
	_, err = s.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: contact.ID,
		FileName: c.text("File") + ".pdf", ContentType: "application/pdf"}, strings.NewReader("bytes "+c.text("Bytes")))
	require.NoError(t, err)
	client, err := s.Clients().Create(ctx, crm.ClientInput{Name: c.text("Client"), Email: c.email(), Phone: c.phone()})
	require.NoError(t, err)
	_, err = s.Invoices().Create(ctx, crm.InvoiceInput{Number: "INV-1", ClientID: client.ID, Currency: "EUR",
		Lines:     []crm.LineItem{{Description: c.text("Line"), Quantity: 1, UnitPrice: 1000}},
		BillTo:    crm.BillTo{Name: c.text("BillName"), Address: c.text("BillAddr"), TaxID: c.text("Tax")},
		Recipient: &crm.Recipient{ContactID: contact.ID, Email: c.email(), Phone: c.phone()}})
	require.NoError(t, err)
	p, err := s.Proposals().Create(ctx, crm.ProposalInput{ClientID: client.ID,
		ProposalContent: crm.ProposalContent{Title: c.text("PropT"), Body: c.text("PropB"), Currency: "EUR"}})
	require.NoError(t, err)
	_, err = s.Proposals().Transition(ctx, p.ID, p.Version, crm.ProposalSent, c.text("PropNote"))
	require.NoError(t, err)
}

// TestCanariesSealedAtRestAndInBackups plants a canary in every personal
// field of the crm records, then checks that none is readable in the live
// database (every table, and the raw SQLite file), in the attachment
// storage, and — after the tenant is purged and the key-encryption key
// rotated and its old version retired, as the vault documents — in a
// backup taken before: neither in its bytes nor through a Store opened on
// it with the current key.
func TestCanariesSealedAtRestAndInBackups(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx, clk := context.Background(), fakeclock.New()
		kekPath := filepath.Join(t.TempDir(), "kek.json")
		kf, err := insecurekeyfile.Open(kekPath)
		require.NoError(t, err)
		dir := t.TempDir()
		st, err := crm.NewDirStorage(dir)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kf, Now: clk.Now, Attachments: st})
		require.NoError(t, err)

		var c, k canaries
		_, erasedOwner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Erased",
			Owner: tenancy.NewMember{Email: "owner@erased.example", Name: c.text("Owner")}})
		require.NoError(t, err)
		_, keptOwner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Kept",
			Owner: tenancy.NewMember{Email: "owner@kept.example", Name: k.text("Owner")}})
		require.NoError(t, err)
		erased := tenancy.WithPrincipal(ctx, erasedOwner.Principal())
		kept := tenancy.WithPrincipal(ctx, keptOwner.Principal())
		staff, err := sdk.Tenants.AddMember(erased, tenancy.NewMember{Email: "staff@erased.example", Name: c.text("Staff"), Role: tenancy.RoleStaff})
		require.NoError(t, err)
		require.Equal(t, c.all[1], staff.Name)
		members, err := sdk.Tenants.Members(erased)
		require.NoError(t, err)
		require.Len(t, members, 2)
		require.ElementsMatch(t, c.all[:2], []string{members[0].Name, members[1].Name}, "member names open")
		seedEveryField(t, erased, sdk.CRM, &c)
		seedEveryField(t, kept, sdk.CRM, &k)
		require.Len(t, c.all, 38)

		// The API gives the values back: the scans below are not vacuous.
		page, err := sdk.CRM.Contacts().List(erased, crm.ContactFilter{NamePrefix: c.all[2][:12]}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.Equal(t, c.all[2], page.Items[0].FirstName)

		// Live: no table and no stored file holds a canary in clear.
		hits, err := leakscan.Tables(ctx, db.Admin(t), c.all)
		require.NoError(t, err)
		require.Empty(t, hits, "plaintext in the live database")
		hits, err = leakscan.Files(c.all, dir)
		require.NoError(t, err)
		require.Empty(t, hits, "plaintext in the attachment storage")
		if db.Name == "sqlite" {
			hits, err = leakscan.Files(c.all, db.Path, db.Path+"-wal")
			require.NoError(t, err)
			require.Empty(t, hits, "plaintext in the SQLite file or its WAL")
		}

		// A backup of the database and of the storage, taken now.
		backup := db.Backup(t)
		storageCopy := t.TempDir()
		require.NoError(t, os.CopyFS(storageCopy, os.DirFS(dir)))
		// Before anything happens, the backup opens with the key file.
		readable := func(kek *insecurekeyfile.KeyFile, ctx context.Context) []string {
			t.Helper()
			v, err := vault.New(backup.DB, kek)
			require.NoError(t, err)
			bst, err := crm.NewDirStorage(storageCopy)
			require.NoError(t, err)
			defer bst.Close()
			s, err := crm.New(backup.DB, v, crm.WithStorage(bst, 0))
			require.NoError(t, err)
			var got []string
			page, err := s.Contacts().List(ctx, crm.ContactFilter{}, crm.ListOptions{})
			if err != nil {
				return nil
			}
			for _, ct := range page.Items {
				got = append(got, ct.FirstName, ct.LastName, ct.Email)
				atts, err := s.Attachments().List(ctx, "contact", ct.ID, crm.ListOptions{})
				if err != nil {
					continue
				}
				for _, a := range atts.Items {
					got = append(got, strings.TrimSuffix(a.FileName, ".pdf"))
					if _, rc, err := s.Attachments().Open(ctx, a.ID); err == nil {
						b, _ := io.ReadAll(rc)
						rc.Close()
						got = append(got, strings.TrimPrefix(string(b), "bytes "))
					}
				}
			}
			return got
		}
		require.Contains(t, readable(kf, erased), c.all[2], "the backup opens before the purge")

		// Purge the erased tenant, then rotate the key-encryption key,
		// rewrap every live tenant and retire the old version.
		_, err = sdk.Tenants.CloseTenant(erased, 0)
		require.NoError(t, err)
		sys := tenancy.System(ctx, "test")
		_, err = sdk.Retention.PurgeTenants(sys, clk.Now().Add(time.Second))
		require.NoError(t, err)
		require.NoError(t, kf.Rotate())
		_, err = sdk.Vault.RotateKEK(sys, kf)
		require.NoError(t, err)
		require.NoError(t, kf.Retire())
		current, err := insecurekeyfile.Open(kekPath)
		require.NoError(t, err)

		// The backup: no canary in its bytes, none readable through it.
		hits, err = leakscan.Tables(ctx, backup.DB, c.all)
		require.NoError(t, err)
		require.Empty(t, hits, "plaintext in the backup")
		hits, err = leakscan.Files(c.all, storageCopy)
		require.NoError(t, err)
		require.Empty(t, hits, "plaintext in the storage copy")
		if backup.Name == "sqlite" {
			hits, err = leakscan.Files(c.all, backup.Path)
			require.NoError(t, err)
			require.Empty(t, hits)
		}
		for _, v := range readable(current, erased) {
			require.NotContains(t, c.all, v, "a canary of the erased tenant opened from the backup")
		}
		// The kept tenant stays readable in the live database.
		page, err = sdk.CRM.Contacts().List(kept, crm.ContactFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Equal(t, k.all[1], page.Items[0].FirstName)
	}, migrated)
}

// TestOpenSealsMemberNamesStoredInClear: names a Store without a Sealer
// stored in clear are sealed when the SDK opens, and read back the same.
func TestOpenSealsMemberNamesStoredInClear(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		require.NoError(t, socialcrm.Migrate(ctx, db.Owner))
		dbtest.GrantApp(t, db)
		plain, err := tenancy.NewStore(db.DB)
		require.NoError(t, err)
		_, owner, err := plain.CreateTenant(ctx, tenancy.SignUp{TenantName: "Old", Owner: tenancy.NewMember{Email: "o@old.example", Name: "CanaryOldName"}})
		require.NoError(t, err)
		hits, err := leakscan.Tables(ctx, db.Admin(t), []string{"CanaryOldName"}, tenancy.TableMembers)
		require.NoError(t, err)
		require.Len(t, hits, 1, "stored in clear without a Sealer")

		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t)})
		require.NoError(t, err)
		hits, err = leakscan.Tables(ctx, db.Admin(t), []string{"CanaryOldName"}, tenancy.TableMembers)
		require.NoError(t, err)
		require.Empty(t, hits, "sealed by Open")
		ms, err := sdk.Tenants.Members(tenancy.WithPrincipal(ctx, owner.Principal()))
		require.NoError(t, err)
		require.Equal(t, "CanaryOldName", ms[0].Name)
		n, err := sdk.Tenants.SealNames(tenancy.System(ctx, "test"))
		require.NoError(t, err)
		require.Zero(t, n, "nothing left: a no-op")
	}, migrated)
}
