package main

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds Debian's chromium. Without it the test fails in CI
// (CI=true: .ci/run installs it) and is skipped on a developer machine.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("SOCIALCRM_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; .ci/run installs it with apt-get install -y chromium")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); CI runs this test")
	return ""
}

// screenshotDir is where the browser test saves its screenshots:
// $SOCIALCRM_SCREENSHOTS, or a temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("SOCIALCRM_SCREENSHOTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// TestBrowserConsole drives the console in headless Chromium: sign up,
// connect the emulated TikTok account through its consent page, sync,
// publish a video, record, verify and export an access request, erase the
// account's data, and read the data map, saving a screenshot of each step.
func TestBrowserConsole(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	shots := screenshotDir(t)
	a := newTestApp(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")), "start chromium")
	// A bound per step, on a context that has run once (see chromedp.Run).
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(bctx, 30*time.Second) }

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	run := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			sctx, cancel := step()
			defer cancel()
			_ = chromedp.Do(sctx, shot("failed-"+strings.ReplaceAll(name, " ", "-")))
			t.Fatalf("%s: %v (screenshot in %s)", name, err, shots)
		}
	}
	// click clicks sel and waits for the page it navigates to.
	click := func(name string, sel chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		resp, err := chromedp.RunResponse(ctx, sel)
		if err != nil {
			sctx, cancel := step()
			defer cancel()
			_ = chromedp.Do(sctx, shot("failed-"+strings.ReplaceAll(name, " ", "-")))
			t.Fatalf("%s: %v (screenshot in %s)", name, err, shots)
		}
		require.Less(t, resp.Status, int64(500), "%s: %s answered %d", name, resp.URL, resp.Status)
		t.Logf("%s: %s %d", name, resp.URL, resp.Status)
	}
	text := func(sel string) string {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, "read %s", sel)
		return s
	}

	// Sign up.
	run("sign up",
		chromedp.Navigate(a.URL+"/console/signup"),
		chromedp.WaitVisible(chromedp.ID("tenant_name")),
		chromedp.SendKeys(chromedp.ID("tenant_name"), "Gem Atelier"),
		chromedp.SendKeys(chromedp.ID("name"), "Ada"),
		chromedp.SendKeys(chromedp.ID("email"), "ada@gem.example"),
		chromedp.SendKeys(chromedp.ID("password"), "a long console password"),
		shot("01-signup"),
	)
	click("create", chromedp.Click(chromedp.ID("create")))
	run("overview", chromedp.WaitVisible(chromedp.ID("tenant-id")), shot("02-overview"))
	require.Contains(t, text("#flash"), "Welcome")
	require.Equal(t, "sandbox", text("#mode-tiktok"))

	// Connect the emulated TikTok account through its consent page.
	run("accounts", chromedp.Navigate(a.URL+"/console/connections"), chromedp.WaitVisible(chromedp.ID("connect-tiktok")))
	click("connect", chromedp.Click(chromedp.ID("connect-tiktok")))
	run("consent page",
		chromedp.WaitVisible(chromedp.CSS(`select[name="open_id"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="open_id"]`), sandboxCreator),
		shot("03-tiktok-consent"),
	)
	click("authorize", chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	run("connected", chromedp.WaitVisible(chromedp.ID("sync")))
	require.Contains(t, text("#flash"), "Connected "+sandboxCreator)

	// Sync twice: the follower trend and the post metrics are drawn.
	click("sync", chromedp.Click(chromedp.ID("sync")))
	click("sync again", chromedp.Click(chromedp.ID("sync")))
	run("insights", chromedp.WaitVisible(chromedp.CSS("svg.chart")), shot("04-insights"))
	ctx, cancelStep := step()
	charts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart").length`))
	cancelStep()
	require.NoError(t, err)
	require.Equal(t, 2, charts)
	require.Contains(t, text("#media"), "Q&A")

	// Publish a video at the user's instruction.
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	require.NoError(t, os.WriteFile(clip, bytes.Repeat([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p'}, 1<<17), 0o644))
	run("publish form",
		chromedp.SendKeys(chromedp.ID("title"), "New collection"),
		chromedp.SetValue(chromedp.ID("privacy_level"), "SELF_ONLY"),
		chromedp.SetUploadFiles(chromedp.ID("video"), []string{clip}),
	)
	click("publish", chromedp.Click(chromedp.ID("publish")))
	run("published", chromedp.WaitVisible(chromedp.ID("publish-status")), shot("05-published"))
	require.Contains(t, text("#publish-status"), "PUBLISH_COMPLETE")

	// Connect the emulated Facebook Page and Instagram account through the
	// login dialog, publish to the Page.
	run("accounts again", chromedp.Navigate(a.URL+"/console/connections"), chromedp.WaitVisible(chromedp.ID("connect-meta")))
	click("connect meta", chromedp.Click(chromedp.ID("connect-meta")))
	run("login dialog",
		chromedp.WaitVisible(chromedp.CSS(`select[name="metatest_user"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="metatest_user"]`), sandboxFBUser),
		shot("06-meta-login"),
	)
	click("allow", chromedp.Click(chromedp.CSS(`button[value="allow"]`)))
	run("meta connected", chromedp.WaitVisible(chromedp.ID("connections")), shot("07-connections"))
	require.Contains(t, text("#flash"), "1 Page(s), 1 Instagram account(s)")
	require.Contains(t, a.plat.metaSrv.Subscriptions(a.plat.metaCfg.AppID, sandboxPage), "messages",
		"the Page was subscribed to the app's webhooks when it connected")
	click("open page", chromedp.Click(chromedp.Search(`//a[contains(., "sandbox Page")]`)))
	run("page publish form", chromedp.WaitVisible(chromedp.ID("page-message")),
		chromedp.SendKeys(chromedp.ID("page-message"), "Our new collection is in the shop"))
	click("page publish", chromedp.Click(chromedp.ID("page-publish")))
	run("page published", chromedp.WaitVisible(chromedp.ID("flash")), shot("08-page-published"))
	require.Equal(t, "Published.", text("#flash"))
	require.Len(t, a.plat.metaSrv.Posts(sandboxPage), 1)

	// The Messenger inbox: a person writes to the sandbox Page, the reply
	// goes out through the Send API.
	run("inbox", chromedp.Navigate(a.URL+"/console/inbox"), chromedp.WaitVisible(chromedp.ID("sandbox-text")),
		chromedp.SendKeys(chromedp.ID("sandbox-text"), "Do you resize rings?"))
	click("deliver", chromedp.Click(chromedp.ID("sandbox-send")))
	click("open conversation", chromedp.Click(chromedp.CSS("a.conversation")))
	run("reply form", chromedp.WaitVisible(chromedp.ID("reply-text")), chromedp.SendKeys(chromedp.ID("reply-text"), "Yes, within a week."))
	click("reply", chromedp.Click(chromedp.ID("reply")))
	run("replied", chromedp.WaitVisible(chromedp.ID("messages")), shot("09-inbox"))
	require.Equal(t, "Sent.", text("#flash"))
	require.Contains(t, text("#messages"), "Do you resize rings?")
	require.Contains(t, text("#messages"), "Yes, within a week.")
	require.Len(t, a.plat.metaSrv.SentMessages(), 1)

	// A contact: create, export their data, erase them.
	run("contacts", chromedp.Navigate(a.URL+"/console/contacts"), chromedp.WaitVisible(chromedp.ID("first_name")),
		chromedp.SendKeys(chromedp.ID("first_name"), "Ann"), chromedp.SendKeys(chromedp.ID("last_name"), "Lee"),
		chromedp.SendKeys(chromedp.ID("contact_email"), "ann@lee.example"))
	click("create contact", chromedp.Click(chromedp.ID("create-contact")))
	run("contact page", chromedp.WaitVisible(chromedp.ID("request-export")), shot("10-contact"))
	click("request export", chromedp.Click(chromedp.ID("request-export")))
	click("verify identity", chromedp.Click(chromedp.CSS("button.verify")))
	run("export link", chromedp.WaitVisible(chromedp.CSS("a.export")), shot("11-privacy-requests"))
	ctx, cancelStep = step()
	href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("a.export"), "href"))
	cancelStep()
	require.NoError(t, err)
	require.True(t, href.Exists)
	zipped := downloadWithBrowserCookies(t, bctx, a.URL+href.Value)
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	require.NoError(t, err, "the export is a zip")
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	require.Contains(t, names, "crm.contact.json")

	run("contacts again", chromedp.Navigate(a.URL+"/console/contacts"), chromedp.WaitVisible(chromedp.ID("contacts")))
	click("open contact", chromedp.Click(chromedp.Search(`//a[contains(., "Ann Lee")]`)))
	click("request erasure", chromedp.Click(chromedp.ID("request-erasure")))
	click("verify erasure identity", chromedp.Click(chromedp.CSS("button.verify")))
	click("erase", chromedp.Click(chromedp.CSS("button.erase")))
	run("erased", chromedp.WaitVisible(chromedp.ID("flash")), shot("12-erased"))
	require.Contains(t, text("#flash"), "Erased")
	run("contacts after erasure", chromedp.Navigate(a.URL+"/console/contacts"), chromedp.WaitVisible(chromedp.ID("contacts")))
	require.NotContains(t, text("#contacts"), "Ann")

	// The data map.
	run("data map", chromedp.Navigate(a.URL+"/console/datamap"), chromedp.WaitVisible(chromedp.ID("datamap")), shot("13-datamap"))
	require.Contains(t, text("#datamap"), "social.connection")

	// Close the tenant, then reopen it during the grace period.
	run("overview", chromedp.Navigate(a.URL+"/console/"), chromedp.WaitVisible(chromedp.ID("confirm-close")),
		chromedp.SendKeys(chromedp.ID("confirm-close"), "Gem Atelier"))
	click("close tenant", chromedp.Click(chromedp.ID("close-tenant")))
	run("closed", chromedp.WaitVisible(chromedp.ID("closed")), shot("14-closed"))
	click("reopen", chromedp.Click(chromedp.ID("reopen")))
	require.Equal(t, "Reopened.", text("#flash"))

	// Cookies are HttpOnly and SameSite=Lax; not Secure over plain http
	// (the browser would keep them from a LAN address).
	ctx, cancelStep = step()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{a.URL + "/console/"}})
	cancelStep()
	require.NoError(t, err)
	require.NotEmpty(t, res.Cookies)
	for _, c := range res.Cookies {
		require.True(t, c.HTTPOnly && !c.Secure, "cookie %s", c.Name)
		require.Equal(t, network.CookieSameSiteLax, c.SameSite, "cookie %s", c.Name)
	}
	t.Logf("screenshots in %s", shots)
}

// downloadWithBrowserCookies fetches url with the browser's cookies for
// it (the console's session), as the browser's download would.
func downloadWithBrowserCookies(t *testing.T, ctx context.Context, url string) []byte {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	require.NoError(t, err)
	cookies := res.Cookies
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	var parts []string
	for _, c := range cookies {
		parts = append(parts, c.Name+"="+c.Value)
	}
	req.Header.Set("Cookie", strings.Join(parts, "; "))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	require.Equal(t, "application/zip", resp.Header.Get("Content-Type"))
	return b
}
