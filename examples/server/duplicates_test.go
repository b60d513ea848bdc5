package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestContactDuplicatesImportAndMerge drives duplicates through the API: a
// second contact with the same e-mail (or the same phone in a national
// format) is a 409 naming the first, unless allow_duplicate=true; a CSV in
// the usual header spellings imports with a per-row report, and sent again
// creates nothing; the duplicate merges into the first, its notes with it.
func TestContactDuplicatesImportAndMerge(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Dups", "email": "o@dups.example", "name": "O", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")

	ada := str(c.call("POST", "/v1/contacts", map[string]any{"first_name": "Ada", "email": "ada@example.com", "phone": "+14155550100"}, 201), "contact", "id")
	dupErr := c.call("POST", "/v1/contacts", map[string]any{"first_name": "Ada L", "email": " ADA@example.com "}, 409)
	require.Equal(t, "duplicate", str(dupErr, "error", "code"))
	require.Equal(t, ada, str(dupErr, "error", "contact_id"))
	require.NotContains(t, str(dupErr, "error", "message"), "ada@example.com")
	// The server reads national numbers in its region (US by default).
	byPhone := c.call("POST", "/v1/contacts", map[string]any{"first_name": "Ada", "phone": "(415) 555-0100"}, 409)
	require.Equal(t, ada, str(byPhone, "error", "contact_id"))
	c.call("POST", "/v1/contacts?allow_duplicate=maybe", map[string]any{"first_name": "Ada", "email": "ada@example.com"}, 400)
	dup := str(c.call("POST", "/v1/contacts?allow_duplicate=true", map[string]any{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}, 201), "contact", "id")
	c.call("POST", "/v1/notes", map[string]any{"body": "met at the fair", "contact_id": dup}, 201)
	require.Len(t, c.call("GET", "/v1/contacts?phone=%28415%29%20555-0100", nil, 200)["items"], 1)

	// Import: usual header spellings, a row that names nobody, a national
	// phone number; sent again, nothing new.
	csv := "First Name,Last Name,E-mail,Mobile,Notes\n" +
		"Grace,Hopper,grace@example.com,(212) 555-0199,x\n" +
		",,,,just a note\n" +
		"Ada,,ada@example.com,,\n"
	resp, raw := c.do("POST", "/v1/contacts/import", "text/csv", strings.NewReader(csv))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	var rep struct {
		Report struct {
			Created, Updated, Unchanged, Rejected int
			Results                               []struct {
				Row       int    `json:"row"`
				Action    string `json:"action"`
				ContactID string `json:"contact_id"`
				MatchedBy string `json:"matched_by"`
				Reason    string `json:"reason"`
			}
		}
	}
	require.NoError(t, json.Unmarshal(raw, &rep))
	require.Equal(t, 1, rep.Report.Created, "%s", raw)
	require.Equal(t, 1, rep.Report.Rejected, "%s", raw)
	require.Equal(t, 1, rep.Report.Unchanged, "%s", raw)
	require.Len(t, rep.Report.Results, 3)
	require.Equal(t, 3, rep.Report.Results[1].Row)
	require.Equal(t, "rejected", rep.Report.Results[1].Action)
	require.Equal(t, "email", rep.Report.Results[2].MatchedBy)
	for _, v := range []string{"grace@example.com", "Grace", "555-0199", "just a note"} {
		require.NotContains(t, string(raw), v, "the report holds no values")
	}
	require.Len(t, c.call("GET", "/v1/contacts?phone=%2B12125550199", nil, 200)["items"], 1)
	resp, raw = c.do("POST", "/v1/contacts/import", "text/csv", strings.NewReader(csv))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.Contains(t, string(raw), `"created":0`)
	c.call("POST", "/v1/contacts/import?on_match=merge", nil, 400)

	// Merge the duplicate into the first.
	c.call("POST", "/v1/contacts/"+ada+"/merge", map[string]any{"duplicate_id": ada}, 400)
	c.call("POST", "/v1/contacts/"+ada+"/merge", map[string]any{"duplicate_id": "nope"}, 400)
	kept := c.call("POST", "/v1/contacts/"+ada+"/merge", map[string]any{"duplicate_id": dup}, 200)
	require.Equal(t, "Lovelace", str(kept, "contact", "last_name"), "an empty field filled from the duplicate")
	c.call("GET", "/v1/contacts/"+dup, nil, 404)
	require.Len(t, c.call("GET", "/v1/notes?contact_id="+ada, nil, 200)["items"], 1)
	c.call("POST", "/v1/contacts/"+ada+"/merge", map[string]any{"duplicate_id": dup}, 404)

	// The console's form sends a duplicate to the contact it duplicates.
	const csrf = "0123456789abcdef0123456789abcdef0123"
	form := url.Values{"csrf": {csrf}, "first_name": {"Ada"}, "email": {"Ada@example.com"}, "form_key": {randomToken()}}
	req, err := http.NewRequest("POST", a.URL+"/console/contacts", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: cookieAccess, Value: c.token})
	resp, err = noRedirect().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/console/contacts/"+ada, resp.Header.Get("Location"))
	require.Contains(t, flashOf(t, a, resp), "same email")
}
