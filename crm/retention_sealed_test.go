package crm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
)

// TestExportOpensSealedIdentifiers: with the Store's categories, a
// contact's data-subject export holds her sealed e-mail address and phone
// number in clear, in the JSON and the CSV file, and nobody else's; the
// package's Categories, which have no vault, leave them out.
func TestExportOpensSealedIdentifiers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store
		ada, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "Ada@Example.com", Phone: "+14155550100"})
		require.NoError(t, err)
		_, err = s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Bob", Email: "bob@example.com", Phone: "+14155550199"})
		require.NoError(t, err)
		noPhone, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Cy", Email: "cy@example.com"})
		require.NoError(t, err)
		_, err = s.Contacts().Create(e.B, crm.ContactInput{FirstName: "Ada", Email: "ada@other.example", Phone: "+14155550111"})
		require.NoError(t, err)

		files := contactExport(t, e, e.A, s.Categories(), ada.ID)
		js, csv := files["crm.contact.json"], files["crm.contact.csv"]
		require.Contains(t, js, `"email":"ada@example.com"`)
		require.Contains(t, js, `"phone":"+14155550100"`)
		require.Contains(t, csv, ",ada@example.com,")
		require.Contains(t, csv, ",+14155550100")
		for name, f := range files {
			for _, other := range []string{"bob@example.com", "+14155550199", "cy@example.com", "ada@other.example", "+14155550111", "email_sealed", "email_index"} {
				require.NotContains(t, f, other, "%s of another contact or tenant, or a sealed column, in %s", other, name)
			}
		}
		files = contactExport(t, e, e.A, s.Categories(), noPhone.ID)
		require.Contains(t, files["crm.contact.json"], `"email":"cy@example.com"`)
		require.Contains(t, files["crm.contact.json"], `"phone":null`, "no phone, no Open")

		// The package's categories cannot open them: left out.
		files = contactExport(t, e, e.A, crm.Categories(), ada.ID)
		require.NotContains(t, files["crm.contact.json"], "ada@example.com")
		require.NotContains(t, files["crm.contact.json"], "email_sealed")
	})
}

// contactExport exports a contact's data with the categories cats and
// returns the archive's files by name.
func contactExport(t *testing.T, e *env, ctx context.Context, cats []retention.Category, id string) map[string]string {
	t.Helper()
	return subjectExport(t, e, ctx, cats, retention.KindExport, map[string]string{crm.SubjectContact: id})
}

// subjectExport submits a request of kind for subject with the
// categories cats, exports it and returns the archive's files by name.
func subjectExport(t *testing.T, e *env, ctx context.Context, cats []retention.Category, kind retention.RequestKind, subject map[string]string) map[string]string {
	t.Helper()
	eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now))
	require.NoError(t, err)
	require.NoError(t, eng.Register(cats...))
	r := request(t, ctx, eng, kind, subject)
	var buf bytes.Buffer
	_, err = eng.Export(ctx, r.ID, &buf)
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
	return files
}

// TestExportOpensEveryProfileField: a contact's profile (every personal
// field sealed together) is exported opened as one column per field —
// names, e-mail, phone, UTM, birthday, preferences and tags — in the JSON
// and the CSV file, with no trace of the sealed column; empty fields are
// null.
func TestExportOpensEveryProfileField(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store
		ada, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", Phone: "+14155550100",
			UTM: crm.UTM{Source: "ig", Campaign: "spring"}, Birthday: crm.Birthday{Year: 1815, Month: 12, Day: 10},
			Preferences: map[string]string{"lang": "en"}, Tags: []string{"vip", "math"}})
		require.NoError(t, err)
		files := contactExport(t, e, e.A, s.Categories(), ada.ID)
		js, csv := files["crm.contact.json"], files["crm.contact.csv"]
		for _, want := range []string{`"first_name":"Ada"`, `"last_name":"Lovelace"`, `"email":"ada@example.com"`, `"phone":"+14155550100"`,
			`"utm":"{\"source\":\"ig\",\"campaign\":\"spring\"}"`, `"birthday":"{\"year\":1815,\"month\":12,\"day\":10}"`,
			`"preferences":"{\"lang\":\"en\"}"`, `"tags":"[\"vip\",\"math\"]"`} {
			require.Contains(t, js, want)
		}
		header, _, _ := strings.Cut(csv, "\n")
		require.Contains(t, header, "first_name,last_name,email,phone,utm,birthday,preferences,tags")
		require.Contains(t, csv, `Ada,Lovelace,ada@example.com,+14155550100,"{""source"":""ig"",""campaign"":""spring""}"`)
		for _, f := range files {
			require.NotContains(t, f, "profile")
		}

		// The data map says what the profile holds.
		eng, err := retention.New(e.db.DB)
		require.NoError(t, err)
		require.NoError(t, eng.Register(s.Categories()...))
		found := false
		for _, c := range eng.DataMap().Categories {
			if c.Name == "crm.contact" {
				found = true
				require.Equal(t, []string{"profile_sealed as first_name, last_name, email, phone, utm, birthday, preferences, tags"}, c.Sealed)
				require.Contains(t, c.Clear, "sealed together in profile_sealed")
			}
		}
		require.True(t, found, "the data map has the contacts")

		bo, err := s.Contacts().Create(e.A, crm.ContactInput{Email: "bo@example.com"})
		require.NoError(t, err)
		js = contactExport(t, e, e.A, s.Categories(), bo.ID)["crm.contact.json"]
		require.Contains(t, js, `"first_name":null,"last_name":null,"email":"bo@example.com","phone":null,"utm":null,"birthday":null,"preferences":null,"tags":null`)
	})
}
