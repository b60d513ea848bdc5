package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// consoleGet fetches a console page with the session cookie (csrf is
// left over from the token scheme CrossOriginProtection replaced).
func consoleGet(t *testing.T, a *testApp, token, csrf, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", a.URL+path, nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: cookieAccess, Value: token})
	resp, err := noRedirect().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestConsoleDealsAndInvoices: the deals board shows a pipeline's stages as
// columns with their deals and totals, a deal moves between columns through
// its form (a stale form is refused), and the invoices list shows totals
// and status.
func TestConsoleDealsAndInvoices(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Board", "email": "b@b.example", "name": "B", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")
	pl := c.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new", "proposal", "won"}}, 201)
	plID := str(pl, "pipeline", "id")
	d := c.call("POST", "/v1/deals", map[string]any{"pipeline_id": plID, "title": "Emerald set", "amount": 123456, "currency": "EUR"}, 201)
	c.call("POST", "/v1/deals", map[string]any{"pipeline_id": plID, "title": "Pearl <b>necklace</b>", "amount": 50000, "currency": "EUR"}, 201)
	cl := c.call("POST", "/v1/clients", map[string]any{"name": "Brand A"}, 201)
	inv := c.call("POST", "/v1/invoices", map[string]any{"number": "INV-7", "client_id": str(cl, "client", "id"), "currency": "EUR",
		"bill_to": map[string]any{"bill_to_name": "Brand A"}, "lines": []map[string]any{{"description": "Posts", "quantity": 3, "unit_price": 10000, "tax_rate": 2000}}}, 201)
	c.call("POST", "/v1/invoices/"+str(inv, "invoice", "id")+"/issue", map[string]any{"version": 1}, 200)

	const csrf = "0123456789abcdef0123456789abcdef0123"
	status, html := consoleGet(t, a, c.token, csrf, "/console/deals")
	require.Equal(t, http.StatusOK, status, html)
	for _, s := range []string{">new <", ">proposal <", ">won <", "Emerald set", "1,734.56 EUR", "Pearl &lt;b&gt;necklace&lt;/b&gt;"} {
		require.Contains(t, html, s)
	}
	require.Less(t, strings.Index(html, ">new <"), strings.Index(html, "Emerald set"))
	require.Less(t, strings.Index(html, "Emerald set"), strings.Index(html, ">proposal <"), "the deal sits in its stage's column")

	move := func(version string) int {
		form := url.Values{"csrf": {csrf}, "version": {version}, "stage": {"won"}, "form_key": {randomToken()}}
		req, err := http.NewRequest("POST", a.URL+"/console/deals/"+str(d, "deal", "id")+"/stage", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: cookieAccess, Value: c.token})
		resp, err := noRedirect().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusSeeOther, move("1"))
	require.Equal(t, http.StatusConflict, move("1"), "a stale form")
	require.Equal(t, "won", str(c.call("GET", "/v1/deals/"+str(d, "deal", "id"), nil, 200), "deal", "stage"))
	_, html = consoleGet(t, a, c.token, csrf, "/console/deals?pipeline="+plID)
	require.Less(t, strings.Index(html, ">won <"), strings.Index(html, "Emerald set"), "moved to the won column")

	status, html = consoleGet(t, a, c.token, csrf, "/console/invoices")
	require.Equal(t, http.StatusOK, status, html)
	for _, s := range []string{"INV-7", "Brand A", "issued", "300.00 EUR", "60.00 EUR", "360.00 EUR", "0.00 EUR"} {
		require.Contains(t, html, s)
	}
	_, html = consoleGet(t, a, c.token, csrf, "/console/invoices?status=paid")
	require.NotContains(t, html, "INV-7")
}

func TestMoney(t *testing.T) {
	t.Parallel()
	require.Equal(t, "1,234,567.89 EUR", money(123456789, "EUR"))
	require.Equal(t, "-0.05 USD", money(-5, "USD"))
	require.Equal(t, "1,200 JPY", money(1200, "JPY"))
	require.Equal(t, "-92,233,720,368,547,758.08 EUR", money(-1<<63, "EUR"))
	for in, want := range map[string]int64{"": 0, "12": 1200, "12.5": 1250, "0.05": 5} {
		got, err := parseMoney(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"-1", "1.234", "x", "1.-5", "99999999999999999999", "1.+5"} {
		_, err := parseMoney(in)
		require.Error(t, err, in)
	}
}
