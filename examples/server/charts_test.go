package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/social"
)

// TestCharts: the follower chart has a valued axis and dated ends, marks a
// snapshot without a count as unknown (not 0); the posts chart dates each
// bar and titles it with every metric; text is escaped.
func TestCharts(t *testing.T) {
	day := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	snaps := []social.Snapshot{
		{TakenAt: day, Followers: social.KnownCount(1200)},
		{TakenAt: day.Add(24 * time.Hour)},
		{TakenAt: day.Add(72 * time.Hour), Followers: social.KnownCount(1350)},
	}
	got := string(trendChart(snaps))
	for _, want := range []string{"1 Nov 2026", "4 Nov 2026", ">1200<", ">1250<", ">1350<", "2026-11-02 09:00: unknown", "1 snapshot(s) without a follower count", "2026-11-04 09:00: 1350 followers"} {
		require.Contains(t, got, want)
	}
	require.NotContains(t, got, "2026-11-02 09:00: 0 followers")
	require.Contains(t, string(trendChart(snaps[1:2])), "Followers: unknown")

	media := []social.Media{
		{ExternalID: "v2", Title: "<b>Rings</b>", PublishedAt: day.Add(48 * time.Hour), Views: social.KnownCount(900), Likes: social.KnownCount(80), Comments: social.KnownCount(3), Shares: social.KnownCount(1)},
		{ExternalID: "v1", PublishedAt: day, Views: social.KnownCount(15000), Likes: social.KnownCount(700)},
	}
	got = string(barChart(media))
	require.Contains(t, got, "15.0k")
	require.Contains(t, got, ">1 Nov<")
	require.Contains(t, got, ">3 Nov<")
	require.Contains(t, got, "&lt;b&gt;Rings&lt;/b&gt;, 2026-11-03: 900 views, 80 likes, 3 comments, 1 shares")
	require.NotContains(t, got, "<b>")
	require.Less(t, strings.Index(got, "v1, 2026-11-01"), strings.Index(got, "Rings"), "oldest on the left")
}

// TestBarChartUnknownMetric: a post whose views the platform did not give
// draws no views bar and is marked "?", titled "unknown views", noted
// below the chart; it does not drag the scale to 0, and known metrics of
// the same post stay exact.
func TestBarChartUnknownMetric(t *testing.T) {
	day := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	media := []social.Media{
		{ExternalID: "img", PublishedAt: day, Likes: social.KnownCount(40), Comments: social.KnownCount(2)},
		{ExternalID: "v1", PublishedAt: day.Add(24 * time.Hour), Views: social.KnownCount(900), Likes: social.KnownCount(80),
			Comments: social.KnownCount(0), Shares: social.KnownCount(1)},
	}
	got := string(barChart(media))
	require.Contains(t, got, "img, 2026-11-01: unknown views, 40 likes, 2 comments, unknown shares")
	require.Contains(t, got, "v1, 2026-11-02: 900 views, 80 likes, 0 comments, 1 shares")
	require.NotContains(t, got, ": 0 views", "unknown is not drawn or titled as 0")
	require.Contains(t, got, ">?</text>")
	require.Equal(t, 1, strings.Count(got, ">?</text>"), "only the post with an unknown metric is marked")
	require.Contains(t, got, "1 post(s) whose views or likes the platform did not give")
	require.Equal(t, 3, strings.Count(got, `<rect`)-2, "two likes bars and one views bar (plus the two legend squares)")
	require.NotContains(t, string(barChart(media[1:])), "did not give")
}

// TestConnectionPostsUnknownMetric: the connection page's posts table
// prints a metric the platform did not give as "unknown", a known 0 as 0.
func TestConnectionPostsUnknownMetric(t *testing.T) {
	a := &app{}
	tmpl, err := a.consoleTemplates()
	require.NoError(t, err)
	media := []social.Media{{ExternalID: "img", PublishedAt: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC),
		Likes: social.KnownCount(40), Comments: social.KnownCount(0)}}
	cv := &connectionView{Connection: social.Connection{ID: "c1", Platform: "meta", DisplayName: "@gem"}, Media: media}
	var out bytes.Buffer
	require.NoError(t, tmpl.ExecuteTemplate(&out, "connection", &page{Data: cv, Mode: map[string]string{}}))
	html := out.String()
	require.Contains(t, html, `<td class="num">unknown</td><td class="num">40</td><td class="num">0</td><td class="num">unknown</td>`)
	require.Contains(t, html, "unknown views, 40 likes, 0 comments, unknown shares")
}
