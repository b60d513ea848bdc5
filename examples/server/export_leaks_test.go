package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// dropAfter asks for path and hangs up once it has read n bytes of the
// body: a client whose connection drops mid-stream.
func dropAfter(t *testing.T, c *client, path string, n int) {
	t.Helper()
	req, err := http.NewRequest("GET", c.base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+c.token)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = io.ReadFull(resp.Body, make([]byte, n))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close()) // before the end: the connection is closed
}

// auditActions returns the tenant's audit entries' actions, in order, and
// their metadata by action (the last entry of each); the whole log must
// hold none of values.
func auditActions(t *testing.T, c *client, values ...string) ([]string, map[string]map[string]any) {
	t.Helper()
	resp, body := c.do("GET", "/v1/audit", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	for _, v := range values {
		require.NotContains(t, string(body), v, "an audit entry holds a value")
	}
	var out struct {
		Entries []struct {
			Action   string         `json:"action"`
			Metadata map[string]any `json:"metadata"`
		} `json:"entries"`
	}
	require.NoError(t, json.Unmarshal(body, &out))
	var actions []string
	meta := map[string]map[string]any{}
	for _, e := range out.Entries {
		actions = append(actions, e.Action)
		meta[e.Action] = e.Metadata
	}
	return actions, meta
}

// waitForAction waits until the audit log has action (the server ends an
// export after it sees the connection gone), at most 10 seconds.
func waitForAction(t *testing.T, c *client, action string, values ...string) ([]string, map[string]map[string]any) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		actions, meta := auditActions(t, c, values...)
		if _, ok := meta[action]; ok || time.Now().After(deadline) {
			return actions, meta
		}
	}
}

// TestExportDroppedLeaks: a client whose connection drops while an export
// streams leaves the export in the audit log as begun and interrupted
// (never as delivered), with counts and no value: the contacts CSV export
// and a data-subject export, each served by the example server.
func TestExportDroppedLeaks(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Shop", "email": "o@shop.example", "name": "O", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: str(su, "tenant", "id"),
		MemberID: str(su, "owner", "id"), Role: tenancy.RoleOwner})

	// 1,500 contacts: three pages of the CSV export.
	var csv strings.Builder
	csv.WriteString("first_name,email\n")
	var values []string
	for i := range 1500 {
		fmt.Fprintf(&csv, "Dropcanary%d,dropcanary%d@example.com\n", i, i)
		values = append(values, fmt.Sprintf("dropcanary%d@example.com", i))
	}
	rep, err := a.sdk.CRM.Contacts().ImportCSV(ctx, strings.NewReader(csv.String()), crm.ImportOptions{BatchSize: 1000})
	require.NoError(t, err)
	require.Equal(t, 1500, rep.Created)
	var n int
	var person crm.Contact

	dropAfter(t, c, "/v1/contacts/export", 1024)
	actions, meta := waitForAction(t, c, "contacts.export_interrupted", values...)
	require.Contains(t, actions, "contacts.export_started")
	require.Contains(t, actions, "contacts.export_interrupted", "%v", actions)
	require.NotContains(t, actions, "contacts.exported")
	n, err = strconv.Atoi(fmt.Sprint(meta["contacts.export_interrupted"]["count"]))
	require.NoError(t, err)
	require.Less(t, n, 1500, "the export stopped before its end")

	// A person with 300 notes of 2 KB of noise (an archive of several
	// hundred kilobytes): the client drops after 1 KiB of it.
	person, err = a.sdk.CRM.Contacts().Create(ctx, crm.ContactInput{FirstName: "Nora", Email: "nora@example.com"})
	require.NoError(t, err)
	for range 300 {
		noise := make([]byte, 1000)
		_, _ = rand.Read(noise)
		_, err := a.sdk.CRM.Notes().Create(ctx, crm.NoteInput{ContactID: person.ID, Body: "noranote " + hex.EncodeToString(noise)})
		require.NoError(t, err)
	}
	id := c.privacyRequest("access", map[string]string{"email": "nora@example.com"})
	dropAfter(t, c, "/v1/privacy/requests/"+id+"/export", 1024)
	actions, meta = waitForAction(t, c, "retention.export_interrupted", "nora@example.com", "noranote")
	require.Contains(t, actions, "retention.export_started")
	require.Contains(t, actions, "retention.export_interrupted", "%v", actions)
	require.NotContains(t, actions, "retention.exported")
	require.NotEmpty(t, meta["retention.export_interrupted"]["bytes"])
	require.Equal(t, "open", str(c.call("GET", "/v1/privacy/requests/"+id, nil, 200), "request", "status"), "nothing was delivered")

	// Delivered whole: receipted, and no cache may keep the archive.
	resp, zipped := c.do("GET", "/v1/privacy/requests/"+id+"/export", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	text, _ := unzipText(t, zipped)
	require.Contains(t, text, "noranote")
	actions, _ = auditActions(t, c, "nora@example.com", "noranote")
	require.Contains(t, actions, "retention.exported")
	require.Equal(t, "completed", str(c.call("GET", "/v1/privacy/requests/"+id, nil, 200), "request", "status"))
}
