package main

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestBrowserDoubleClickS17: in headless Chromium, on SQLite and on
// PostgreSQL: reloading the page that answered "Create a staff key" (the
// secret, shown once) sends the form again — two posts, one key, and the
// page says "Already done"; a double click on "Add" (a task), two clicks
// as a mouse sends them, makes one task (Chromium posts such a double
// click once itself); back to the task form after it acted, the page is
// fetched anew with the task listed and the form empty, so Send again
// sends nothing.
func TestBrowserDoubleClickS17(t *testing.T) {
	t.Parallel()
	browser := startChromium(t)
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		doubleClickWalk(t, browser, newTestApp(t))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		doubleClickWalk(t, browser, newTestApp(t, "-db", db.DSN(), "-owner-db", db.OwnerDSN()))
	})
}

func doubleClickWalk(t *testing.T, browser context.Context, a *testApp) {
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancel()
	b := &tab{t: t, ctx: ctx, base: a.URL, audited: map[string]bool{}}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	var posts atomic.Int32
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request.Method == "POST" {
			if strings.HasSuffix(e.Request.URL, "/console/keys") || strings.HasSuffix(e.Request.URL, "/console/tasks") {
				posts.Add(1)
			}
		}
	}))
	b.run("signup form", chromedp.Navigate(a.URL+"/console/signup"), chromedp.WaitVisible(chromedp.ID("tenant_name")))
	b.run("sign up", chromedp.SendKeys(chromedp.ID("tenant_name"), "Double Click"), chromedp.SendKeys(chromedp.ID("name"), "Di"),
		chromedp.SendKeys(chromedp.ID("email"), "di@double.example"), chromedp.SendKeys(chromedp.ID("password"), "a long console password"))
	b.click("create", chromedp.Click(chromedp.ID("create")))

	// doubleClick presses the mouse twice on the button, as a person's
	// double click does (clicks 1 and 2), then waits for the page the
	// browser ends on.
	doubleClick := func(name, button, done string) {
		t.Helper()
		x := eval[float64](b, `(r => r.left + r.width/2)(document.getElementById("`+button+`").getBoundingClientRect())`)
		y := eval[float64](b, `(r => r.top + r.height/2)(document.getElementById("`+button+`").getBoundingClientRect())`)
		b.run(name, chromedp.MouseClickXY(x, y), chromedp.MouseClickXY(x, y, chromedp.ClickCount(2)))
		b.run(name+": the page after", chromedp.WaitVisible(chromedp.CSS(done)))
	}

	// The key's answer is a page of its own (the secret, shown once):
	// reloading it sends the form again.
	before := posts.Load()
	b.run("keys", chromedp.Navigate(a.URL+"/console/keys"), chromedp.WaitVisible(chromedp.ID("key-name")))
	b.run("name the key", chromedp.SendKeys(chromedp.ID("key-name"), "shop script"))
	b.click("create key", chromedp.Click(chromedp.ID("create-key")))
	require.NotEmpty(t, b.text("#new-key"))
	b.click("reload the key's page", chromedp.Reload())
	require.Contains(t, b.text("#flash"), "Already done: this form was sent twice and created one key.")
	keyPosts := posts.Load() - before
	require.Equal(t, int32(2), keyPosts, "the reload sent the form again")
	require.Equal(t, 1.0, eval[float64](b, `[...document.querySelectorAll("#keys tr")].filter(r => r.innerText.includes("shop script")).length`), "one key made")

	before = posts.Load()
	b.run("tasks", chromedp.Navigate(a.URL+"/console/tasks"), chromedp.WaitVisible(chromedp.ID("task_title")))
	b.run("name the task", chromedp.SendKeys(chromedp.ID("task_title"), "Polish the ring"))
	doubleClick("double-click add task", "create-task", "#flash")
	taskPosts := posts.Load() - before
	b.run("tasks again", chromedp.Navigate(a.URL+"/console/tasks"), chromedp.WaitVisible(chromedp.ID("task_title")))
	require.Equal(t, 1.0, eval[float64](b, `[...document.querySelectorAll("main tr")].filter(r => r.innerText.includes("Polish the ring")).length`), "one task made")
	t.Logf("the double click posted the task form %d time(s)", taskPosts)
	// Back to the form after it acted: the page is fetched anew (no-store)
	// with the task listed and a new key, and nothing typed is restored
	// (autocomplete="off"), so Send again sends nothing.
	b.run("type", chromedp.SendKeys(chromedp.ID("task_title"), "Back task"))
	b.click("add", chromedp.Click(chromedp.ID("create-task")))
	before = posts.Load()
	b.click("back", chromedp.NavigateBack())
	require.Empty(t, eval[string](b, `document.getElementById("task_title").value`), "the form comes back empty")
	require.Equal(t, 1.0, eval[float64](b, `[...document.querySelectorAll("main tr")].filter(r => r.innerText.includes("Back task")).length`), "the page shows the task made")
	b.run("send again", chromedp.Click(chromedp.ID("create-task")))
	require.Equal(t, "", eval[string](b, `document.getElementById("task_title").validationMessage === "" ? "sent" : ""`), "the empty form is not sent")
	require.Equal(t, before, posts.Load(), "nothing posted")
}
