package main

import (
	"archive/zip"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// axeSource is axe-core 4.14.1, the accessibility engine, as published on
// the npm registry (npm pack axe-core@4.14.1; package/axe.min.js, MPL-2.0,
// its licence header kept). It is vendored so that the test needs no
// network; sha256 29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c.
//
//go:embed testdata/axe.min.js
var axeSource string

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
// $SOCIALCRM_SCREENSHOTS/<database>, or a temporary directory.
func screenshotDir(t *testing.T, db string) string {
	if d := os.Getenv("SOCIALCRM_SCREENSHOTS"); d != "" {
		d = filepath.Join(d, db)
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// startChromium starts headless Chromium for a browser test (closed when
// t ends) and returns its browser context; subtests open isolated contexts
// of their own from it.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate("about:blank")), "start chromium")
	return browser
}

// TestBrowserConsole drives the console in headless Chromium as a person
// uses it, on SQLite and on PostgreSQL (one browser, an isolated browser
// context each): every page is visited, screenshotted, and audited with
// axe-core, which must find no serious or critical violation.
func TestBrowserConsole(t *testing.T) {
	t.Parallel()
	browser := startChromium(t)

	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		walkConsole(t, browser, newTestApp(t), screenshotDir(t, "sqlite"))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		walkConsole(t, browser, newTestApp(t, "-db", db.DSN(), "-owner-db", db.OwnerDSN()), screenshotDir(t, "postgres"))
	})
}

// tab is one browser context driving one server.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	n     int
	// audited are the pages axe checked, by path pattern.
	audited map[string]bool
}

// step bounds one step: generous, for CI runs under -race on a loaded
// machine; a step that hangs still fails.
func (b *tab) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 2*time.Minute)
}

func (b *tab) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if b.shots == "" { // a walk that keeps no screenshots
			return nil
		}
		jpg, err := chromedp.FullScreenshot(90)(ctx, tg) // quality below 100: JPEG
		if err != nil {
			return err
		}
		b.n++
		return os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.jpg", b.n, strings.NewReplacer(" ", "-", "/", "_").Replace(name))), jpg, 0o644)
	})
}

func (b *tab) fail(name string, err error) {
	b.t.Helper()
	sctx, cancel := b.step()
	defer cancel()
	_ = chromedp.Do(sctx, b.shot("failed-"+name))
	b.t.Fatalf("%s: %v (screenshots in %s)", name, err, b.shots)
}

// run runs actions as one step.
func (b *tab) run(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(name, err)
	}
}

// click clicks sel, waits for the page it navigates to, requires that page
// to be no 5xx, and audits it.
func (b *tab) click(name string, sel chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, sel)
	if err != nil {
		b.fail(name, err)
	}
	require.Less(b.t, resp.Status, int64(500), "%s: %s answered %d", name, resp.URL, resp.Status)
	if strings.HasPrefix(resp.URL, b.base) {
		b.audit(name)
	}
}

// visit opens path, waits for sel, screenshots and audits the page.
func (b *tab) visit(name, path, sel string) {
	b.t.Helper()
	b.run(name, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
	b.audit(name)
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, "read %s", sel)
	return s
}

func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, "evaluate %s", expr)
	return v
}

// violation is what the test keeps of an axe-core violation.
type violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// audit screenshots the current page and runs axe-core on it: no serious
// or critical violation is allowed. axe-core runs once per page (path
// pattern), in the page's first state, to keep the test's time down;
// every step is screenshotted.
func (b *tab) audit(name string) {
	b.t.Helper()
	b.run(name+" screenshot", b.shot(name))
	path := eval[string](b, `location.pathname`)
	key := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`).ReplaceAllString(path, "{id}")
	if b.audited[key] {
		return
	}
	if !eval[bool](b, `typeof window.axe === "object"`) {
		ctx, cancel := b.step()
		_, err := chromedp.Run(ctx, chromedp.Evaluate[any](axeSource+";0"))
		cancel()
		require.NoError(b.t, err, "inject axe-core")
	}
	raw := eval[string](b, `axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations
		.filter(v => v.impact === "serious" || v.impact === "critical")
		.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))))`)
	var vs []violation
	require.NoError(b.t, json.Unmarshal([]byte(raw), &vs))
	b.audited[key] = true
	require.Empty(b.t, vs, "%s (%s): axe-core found serious or critical violations", name, path)
}

// noOverflow requires the current page to fit the viewport's width.
func (b *tab) noOverflow(name string) {
	b.t.Helper()
	w := eval[float64](b, `document.documentElement.scrollWidth - window.innerWidth`)
	require.LessOrEqual(b.t, w, 0.0, "%s: the page is %vpx wider than the 390 px screen", name, w)
}

// walkConsole is a shop owner's day with the console.
func walkConsole(t *testing.T, browser context.Context, a *testApp, shots string) {
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancel()
	b := &tab{t: t, ctx: ctx, base: a.URL, shots: shots, audited: map[string]bool{}}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))

	// Sign up; a validation error keeps what was typed.
	b.visit("signup form", "/console/signup", "#tenant_name")
	b.run("sign up",
		chromedp.SendKeys(chromedp.ID("tenant_name"), "Gem Atelier"),
		chromedp.SendKeys(chromedp.ID("name"), "Ada"),
		chromedp.SendKeys(chromedp.ID("email"), "ada@gem.example"),
		chromedp.SendKeys(chromedp.ID("password"), "a long console password"),
	)
	b.click("create", chromedp.Click(chromedp.ID("create")))
	require.Contains(t, b.text("#flash"), "Welcome to Gem Atelier")
	require.Equal(t, "sandbox", b.text("#mode-tiktok"))

	// Settings, team, API keys.
	b.visit("settings", "/console/settings", "#tenant-id")
	b.visit("team", "/console/team", "#members")
	b.run("add member", chromedp.SendKeys(chromedp.ID("member_name"), "Bo"), chromedp.SendKeys(chromedp.ID("member_email"), "bo@gem.example"),
		chromedp.SendKeys(chromedp.ID("member_password"), "another long password"))
	b.click("add", chromedp.Click(chromedp.ID("add-member")))
	require.Contains(t, b.text("#members"), "bo@gem.example")
	b.visit("keys", "/console/keys", "#key-name")
	b.run("key name", chromedp.SendKeys(chromedp.ID("key-name"), "shop website"))
	b.click("create key", chromedp.Click(chromedp.ID("create-key")))
	require.Greater(t, len(b.text("#new-key")), 20, "the new key is shown once")

	// TikTok through the emulator's consent page.
	b.visit("accounts", "/console/connections", "#connect-tiktok")
	b.click("connect", chromedp.Click(chromedp.ID("connect-tiktok")))
	b.run("consent page", chromedp.WaitVisible(chromedp.CSS(`select[name="open_id"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="open_id"]`), sandboxCreator), b.shot("tiktok consent"))
	b.click("authorize", chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	require.Contains(t, b.text("#flash"), "Connected "+sandboxCreator)
	b.click("sync", chromedp.Click(chromedp.ID("sync")))
	b.click("sync again", chromedp.Click(chromedp.ID("sync")))
	require.Equal(t, 2, eval[int](b, `document.querySelectorAll("svg.chart").length`))
	require.Contains(t, b.text("#media"), "Q&A")
	require.Contains(t, eval[string](b, `document.querySelector("svg.chart").outerHTML`), "followers</title>", "each point has its value")

	// The post form follows TikTok's content-sharing guidelines: the
	// creator's nickname, no audience chosen in advance, interactions off
	// and the one the creator turned off greyed out, the disclosure.
	require.Equal(t, "Mia Sandbox", b.text("#creator"))
	require.Equal(t, "", eval[string](b, `document.getElementById("privacy_level").value`))
	require.True(t, eval[bool](b, `document.getElementById("privacy_level").required`))
	require.Equal(t, "false false false", eval[string](b, `["allow_comment","allow_duet","allow_stitch"].map(id => document.getElementById(id).checked).join(" ")`))
	require.True(t, eval[bool](b, `document.getElementById("allow_stitch").disabled`), "stitch is off in the creator's settings")
	require.False(t, eval[bool](b, `document.getElementById("allow_comment").disabled`))
	require.Contains(t, b.text("#consent-text"), "Music Usage Confirmation")
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	require.NoError(t, os.WriteFile(clip, bytes.Repeat([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p'}, 1<<17), 0o644))
	b.run("post form",
		chromedp.SendKeys(chromedp.ID("title"), "New collection"),
		chromedp.SetValue(chromedp.ID("privacy_level"), "SELF_ONLY"),
		chromedp.Click(chromedp.ID("allow_comment")),
		chromedp.SetUploadFiles(chromedp.ID("video"), []string{clip}),
	)
	b.click("post", chromedp.Click(chromedp.ID("publish")))
	require.Contains(t, b.text("#publish-status"), "PUBLISH_COMPLETE")
	inits := a.plat.tiktokSrv.RequestsTo("/v2/post/publish/video/init/")
	require.NotEmpty(t, inits)
	var sent struct {
		PostInfo map[string]any `json:"post_info"`
	}
	require.NoError(t, json.Unmarshal(inits[len(inits)-1].Body, &sent))
	require.Equal(t, map[string]any{"privacy_level": "SELF_ONLY", "title": "New collection", "disable_comment": false, "disable_duet": true,
		"disable_stitch": true, "brand_content_toggle": false, "brand_organic_toggle": false}, sent.PostInfo, "as chosen on the form")

	// Facebook Page and Instagram through the login dialog.
	b.visit("accounts again", "/console/connections", "#connect-meta")
	b.click("connect meta", chromedp.Click(chromedp.ID("connect-meta")))
	b.run("login dialog", chromedp.WaitVisible(chromedp.CSS(`select[name="metatest_user"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="metatest_user"]`), sandboxFBUser), b.shot("meta login"))
	b.click("allow", chromedp.Click(chromedp.CSS(`button[value="allow"]`)))
	require.Contains(t, b.text("#flash"), "1 Page(s), 1 Instagram account(s)")
	kinds := b.text("#connections")
	for _, k := range []string{"TikTok account", "Facebook user (login)", "Facebook Page", "Instagram account"} {
		require.Contains(t, kinds, k)
	}
	b.click("open page", chromedp.Click(chromedp.Search(`//a[contains(., "sandbox Page")]`)))
	b.run("page post", chromedp.SendKeys(chromedp.ID("page-message"), "Our new collection is in the shop"))
	b.click("page publish", chromedp.Click(chromedp.ID("page-publish")))
	require.Equal(t, "Published.", b.text("#flash"))
	require.Len(t, a.plat.metaSrv.Posts(sandboxPage), 1)

	// The inbox: a stranger writes; the conversation is linked to a new
	// contact and then titled by her name; the reply goes out.
	b.visit("inbox", "/console/inbox", "#sandbox-text")
	b.run("write", chromedp.SendKeys(chromedp.ID("sandbox-text"), "Do you resize rings?"))
	b.click("deliver", chromedp.Click(chromedp.ID("sandbox-send")))
	require.Contains(t, b.text("#conversations"), "Unknown Messenger sender")
	b.click("open conversation", chromedp.Click(chromedp.CSS("a.conversation")))
	b.run("link", chromedp.SendKeys(chromedp.ID("link_first"), "Mia"), chromedp.SendKeys(chromedp.ID("link_last"), "Rossi"))
	b.click("link", chromedp.Click(chromedp.ID("link")))
	require.Equal(t, "Mia Rossi", b.text("#linked-contact"))
	b.run("reply form", chromedp.SendKeys(chromedp.ID("reply-text"), "Yes, within a week."))
	b.click("reply", chromedp.Click(chromedp.ID("reply")))
	require.Equal(t, "Sent.", b.text("#flash"))
	require.Contains(t, b.text("#messages"), "Do you resize rings?")
	require.Contains(t, b.text("#messages"), "Yes, within a week.")
	b.visit("inbox titled", "/console/inbox", "#conversations")
	require.Contains(t, b.text("#conversations"), "Mia Rossi")

	// Contacts: a validation error keeps the input; create, search, the
	// timeline, edit, export and erasure.
	b.visit("contacts", "/console/contacts", "#first_name")
	b.run("contact form", chromedp.SendKeys(chromedp.ID("first_name"), "Ann"), chromedp.SendKeys(chromedp.ID("last_name"), "Lee"),
		chromedp.SendKeys(chromedp.ID("contact_email"), "ann@lee.example"), chromedp.SendKeys(chromedp.ID("phone"), "12345"))
	b.click("create contact (bad phone)", chromedp.Click(chromedp.ID("create-contact")))
	require.Contains(t, b.text("#error"), "phone")
	require.Equal(t, "ann@lee.example", eval[string](b, `document.getElementById("contact_email").value`), "kept input")
	b.run("fix phone", chromedp.SetValue(chromedp.ID("phone"), "+15551234567"))
	b.click("create contact", chromedp.Click(chromedp.ID("create-contact")))
	require.Equal(t, "Contact created.", b.text("#flash"))
	b.run("note", chromedp.SendKeys(chromedp.ID("note_body"), "Ring size 52"))
	b.click("add note", chromedp.Click(chromedp.ID("add-note")))
	b.run("task", chromedp.SendKeys(chromedp.ID("task_title"), "Call about the ring"), chromedp.SetValue(chromedp.ID("task_due"), "2026-12-20"))
	b.click("add task", chromedp.Click(chromedp.ID("add-task")))
	b.run("activity", chromedp.SendKeys(chromedp.ID("activity_subject"), "Visited the shop"))
	b.click("log activity", chromedp.Click(chromedp.ID("log-activity")))
	b.run("consent", chromedp.SendKeys(chromedp.ID("consent_source"), "signed the newsletter form"))
	b.click("grant consent", chromedp.Click(chromedp.ID("consent-grant")))
	tl := b.text("#timeline")
	for _, s := range []string{"Ring size 52", "Call about the ring — due 2026-12-20", "Visited the shop", "consent granted"} {
		require.Contains(t, tl, s)
	}
	b.run("edit", chromedp.Click(chromedp.CSS("#edit summary")), chromedp.SetValue(chromedp.CSS("#edit #tags"), "vip, rings"))
	b.click("save", chromedp.Click(chromedp.ID("save-contact")))
	require.Contains(t, b.text("#contact"), "vip")
	b.visit("contacts to search", "/console/contacts", "#q")
	b.run("search", chromedp.SetValue(chromedp.ID("q"), "lee"))
	b.click("search", chromedp.Click(chromedp.ID("search")))
	require.Equal(t, "?search=1", eval[string](b, `location.search`), "the query stays out of the URL")
	require.Contains(t, b.text("#contacts"), "Ann Lee")
	require.NotContains(t, b.text("#contacts"), "Mia Rossi")
	b.click("open contact", chromedp.Click(chromedp.Search(`//a[contains(., "Ann Lee")]`)))
	b.click("request export", chromedp.Click(chromedp.ID("request-export")))
	b.click("verify identity", chromedp.Click(chromedp.CSS("button.verify")))
	ctx2, cancel2 := b.step()
	href, err := chromedp.Run(ctx2, chromedp.AttributeValue(chromedp.CSS("a.export"), "href"))
	cancel2()
	require.NoError(t, err)
	zipped := downloadWithBrowserCookies(t, ctx, a.URL+href.Value)
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	require.NoError(t, err, "the export is a zip")
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	require.Contains(t, names, "crm.contact.json")

	b.visit("tasks", "/console/tasks", "#tasks")
	require.Contains(t, b.text("#tasks"), "Call about the ring")
	b.click("task done", chromedp.Click(chromedp.CSS("button.done")))
	require.Contains(t, b.text("#flash"), "Done")

	// Deals, invoices, proposals.
	b.visit("deals", "/console/deals", "#pipeline_name")
	b.run("pipeline", chromedp.SendKeys(chromedp.ID("pipeline_name"), "Commissions"), chromedp.SendKeys(chromedp.ID("pipeline_stages"), "new, design, won"))
	b.click("create pipeline", chromedp.Click(chromedp.ID("create-pipeline")))
	b.run("deal", chromedp.SendKeys(chromedp.ID("deal_title"), "Engagement ring"), chromedp.SendKeys(chromedp.ID("deal_amount"), "2400"))
	b.click("create deal", chromedp.Click(chromedp.ID("create-deal")))
	b.run("move", chromedp.SetValue(chromedp.CSS(`#board select[name="stage"]`), "design"))
	b.click("move deal", chromedp.Click(chromedp.CSS("button.move")))
	require.Contains(t, b.text("#flash"), "to design")
	b.visit("invoices", "/console/invoices", "#inv_client_name")
	b.run("invoice", chromedp.SendKeys(chromedp.ID("inv_client_name"), "Lee family"), chromedp.SendKeys(chromedp.ID("inv_desc"), "Ring resizing"),
		chromedp.SendKeys(chromedp.ID("inv_price"), "45.50"), chromedp.SetValue(chromedp.ID("inv_tax"), "20"))
	b.click("create invoice", chromedp.Click(chromedp.ID("create-invoice")))
	require.Contains(t, b.text("#flash"), "54.60 EUR")
	b.click("issue", chromedp.Click(chromedp.CSS("button.issue")))
	b.click("pay", chromedp.Click(chromedp.CSS("button.pay")))
	require.Contains(t, b.text("#flash"), "is paid")
	b.visit("proposals", "/console/proposals", "#prop_title")
	b.run("proposal", js(`(s => s.value = [...s.options].find(o => o.text === "Lee family").value)(document.getElementById("prop_client"))`),
		chromedp.SendKeys(chromedp.ID("prop_title"), "Wedding set"), chromedp.SendKeys(chromedp.ID("prop_amount"), "5200"))
	b.click("create proposal", chromedp.Click(chromedp.ID("create-proposal")))
	b.click("mark sent", chromedp.Click(chromedp.CSS("button.to-sent")))
	require.Contains(t, b.text("#proposals"), "sent")

	// Erasure, with its confirmation.
	b.visit("contacts again", "/console/contacts", "#contacts")
	b.click("open contact again", chromedp.Click(chromedp.Search(`//a[contains(., "Ann Lee")]`)))
	b.click("request erasure", chromedp.Click(chromedp.ID("request-erasure")))
	b.click("verify erasure identity", chromedp.Click(chromedp.CSS("button.verify")))
	b.run("confirm erase", chromedp.Click(chromedp.CSS("details.confirm summary")), chromedp.Click(chromedp.CSS(`details.confirm input[name="confirm"]`)))
	b.click("erase", chromedp.Click(chromedp.CSS("button.erase")))
	require.Contains(t, b.text("#flash"), "Erased")
	b.visit("contacts after erasure", "/console/contacts", "#contacts")
	require.NotContains(t, b.text("#contacts"), "Ann")

	b.visit("data map", "/console/datamap", "#datamap")
	require.Contains(t, b.text("#cat-social\\.connection"), "Sealed")
	b.visit("privacy", "/console/privacy", "#requests")
	b.visit("not found", "/console/no-such-page", "#error")

	// A phone's width: nothing overflows sideways.
	b.run("390 px", chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/console/", "/console/contacts", "/console/deals", "/console/invoices", "/console/inbox",
		"/console/connections", "/console/privacy", "/console/datamap", "/console/tasks", "/console/keys", "/console/team"} {
		b.visit("narrow "+path, path, "main")
		b.noOverflow(path)
	}
	b.visit("narrow contacts", "/console/contacts", "#contacts")
	b.click("narrow contact", chromedp.Click(chromedp.Search(`//a[contains(., "Mia Rossi")]`)))
	b.noOverflow("contact")
	b.run("wide", chromedp.EmulateReset())

	// Close the organization, see that nothing leads to a 403, reopen.
	b.visit("settings again", "/console/settings", "#tenant-id")
	b.run("close", chromedp.Click(chromedp.CSS("details.confirm summary")), chromedp.SendKeys(chromedp.ID("confirm-close"), "Gem Atelier"))
	b.click("close tenant", chromedp.Click(chromedp.ID("close-tenant")))
	require.Contains(t, b.text("#closed"), "closed")
	links := eval[[]string](b, `[...document.querySelectorAll("a[href]")].map(a => a.href)`)
	for _, l := range links {
		resp, err := http.DefaultClient.Do(withBrowserCookies(t, ctx, l))
		require.NoError(t, err)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 400, "%s on a closed organization", l)
	}
	b.click("reopen", chromedp.Click(chromedp.ID("reopen")))
	require.Equal(t, "Reopened.", b.text("#flash"))

	// Sign out, sign in with e-mail and password.
	b.click("sign out", chromedp.Click(chromedp.ID("logout")))
	b.run("sign in", chromedp.WaitVisible(chromedp.ID("email")), chromedp.SendKeys(chromedp.ID("email"), "ada@gem.example"),
		chromedp.SendKeys(chromedp.ID("password"), "a long console password"))
	b.click("signin", chromedp.Click(chromedp.ID("signin")))
	require.Equal(t, "Gem Atelier", b.text("h1"))

	// Cookies are HttpOnly and SameSite=Lax; not Secure over plain http
	// (the browser would keep them from a LAN address).
	cctx, ccancel := b.step()
	res, err := chromedp.Call(cctx, network.GetCookies, network.GetCookiesParams{URLs: []string{a.URL + "/console/"}})
	ccancel()
	require.NoError(t, err)
	require.NotEmpty(t, res.Cookies)
	for _, c := range res.Cookies {
		require.True(t, c.HTTPOnly && !c.Secure, "cookie %s", c.Name)
		require.Equal(t, network.CookieSameSiteLax, c.SameSite, "cookie %s", c.Name)
	}

	// Every console page was audited.
	for _, r := range a.routes {
		if r.Console && r.Method == "GET" && strings.HasPrefix(r.Path, "/console/") && !strings.Contains(r.Path, "export") {
			p := strings.ReplaceAll(r.Path, "{$}", "")
			require.True(t, b.audited[p] || p == "/console/" && b.audited["/console/no-such-page"], "page %s was not audited", p)
		}
	}
	t.Logf("%d screenshots in %s", b.n, shots)
}

// withBrowserCookies is a request for url with the browser's cookies for it.
func withBrowserCookies(t *testing.T, ctx context.Context, url string) *http.Request {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	require.NoError(t, err)
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	var parts []string
	for _, c := range res.Cookies {
		parts = append(parts, c.Name+"="+c.Value)
	}
	req.Header.Set("Cookie", strings.Join(parts, "; "))
	return req
}

// downloadWithBrowserCookies fetches url with the browser's cookies for
// it (the console's session), as the browser's download would.
func downloadWithBrowserCookies(t *testing.T, ctx context.Context, url string) []byte {
	t.Helper()
	resp, err := http.DefaultClient.Do(withBrowserCookies(t, ctx, url))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	require.Equal(t, "application/zip", resp.Header.Get("Content-Type"))
	return b
}
