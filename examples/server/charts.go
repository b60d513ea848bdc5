package main

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/social"
)

// Charts are small inline SVGs rendered on the server from numbers and
// dates only (user text goes through html/template escaping), so the
// console needs no script and no external asset. Each has axes with
// values and dates, and a title per point; a value the platform did not
// give is marked "unknown", never drawn as 0.

const (
	chartW, chartH            = 640.0, 220.0
	chartLeft, chartRight     = 56.0, 16.0
	chartTop, chartBottom     = 16.0, 40.0
	chartPlotW, chartPlotH    = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
	chartAxis, chartInk       = "#555", "#1a55b8"
	chartLight, chartFontSize = "#9cc1f5", 11
)

// niceTicks returns about n round values spanning lo..hi.
func niceTicks(lo, hi int64, n int) []int64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := float64(hi-lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	s := max(int64(step), 1)
	var out []int64
	for v := lo / s * s; v <= hi+s-1; v += s {
		out = append(out, v)
		if v >= hi {
			break
		}
	}
	return out
}

// compact writes 12345 as "12.3k".
func compact(n int64) string {
	switch a := math.Abs(float64(n)); {
	case a >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

type svg struct{ b strings.Builder }

func (s *svg) f(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

// axes draws the y axis with ticks from lo to hi and returns the y of a value.
func (s *svg) axes(ticks []int64) func(int64) float64 {
	lo, hi := ticks[0], ticks[len(ticks)-1]
	span := float64(hi - lo)
	if span == 0 {
		span = 1
	}
	y := func(v int64) float64 { return chartTop + chartPlotH - float64(v-lo)/span*chartPlotH }
	for _, t := range ticks {
		s.f(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#e3e3e3"/>`, chartLeft, y(t), chartW-chartRight, y(t))
		s.f(`<text x="%.0f" y="%.1f" font-size="%d" text-anchor="end" fill="%s">%s</text>`, chartLeft-6, y(t)+4, chartFontSize, chartAxis, compact(t))
	}
	s.f(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s"/>`, chartLeft, chartTop, chartLeft, chartTop+chartPlotH, chartAxis)
	s.f(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s"/>`, chartLeft, chartTop+chartPlotH, chartW-chartRight, chartTop+chartPlotH, chartAxis)
	return y
}

// dateLabel writes a date under the x axis at x.
func (s *svg) dateLabel(x float64, t time.Time, anchor string) {
	s.f(`<text x="%.1f" y="%.0f" font-size="%d" text-anchor="%s" fill="%s">%s</text>`, x, chartTop+chartPlotH+16, chartFontSize, anchor, chartAxis, t.UTC().Format("2 Jan 2006"))
}

func (s *svg) open(label string) {
	s.f(`<svg class="chart" role="img" aria-label="%s" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`,
		template.HTMLEscapeString(label), chartW, chartH, chartW, chartH)
}

// trendChart draws the follower count of snapshots over time: dated x
// axis (by the snapshots' times), valued y axis, a point per known count
// and an "unknown" mark where the platform gave none.
func trendChart(snaps []social.Snapshot) template.HTML {
	if len(snaps) == 0 {
		return template.HTML(`<p class="muted">No snapshots yet: sync the account to start its follower trend.</p>`)
	}
	var known []social.Snapshot
	for _, s := range snaps {
		if s.Followers.Known {
			known = append(known, s)
		}
	}
	if len(known) == 0 {
		return template.HTML(`<p class="muted">Followers: unknown (the account did not grant access to its counts).</p>`)
	}
	lo, hi := known[0].Followers.N, known[0].Followers.N
	for _, s := range known {
		lo, hi = min(lo, s.Followers.N), max(hi, s.Followers.N)
	}
	first, last := snaps[0].TakenAt, snaps[len(snaps)-1].TakenAt
	x := func(t time.Time) float64 {
		if !last.After(first) {
			return chartLeft + chartPlotW/2
		}
		return chartLeft + float64(t.Sub(first))/float64(last.Sub(first))*chartPlotW
	}
	var s svg
	s.open(fmt.Sprintf("Followers from %s (%v) to %s (%v), %d snapshots", first.UTC().Format("2 Jan 2006"), known[0].Followers,
		last.UTC().Format("2 Jan 2006"), known[len(known)-1].Followers, len(snaps)))
	y := s.axes(niceTicks(lo, hi, 4))
	var pts []string
	for _, sn := range known {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(sn.TakenAt), y(sn.Followers.N)))
	}
	s.f(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, chartInk, strings.Join(pts, " "))
	for _, sn := range snaps {
		if sn.Followers.Known {
			s.f(`<circle r="3.5" fill="%s" cx="%.1f" cy="%.1f"><title>%s: %d followers</title></circle>`, chartInk, x(sn.TakenAt), y(sn.Followers.N),
				sn.TakenAt.UTC().Format("2006-01-02 15:04"), sn.Followers.N)
		} else {
			s.f(`<text x="%.1f" y="%.0f" font-size="%d" text-anchor="middle" fill="%s">?<title>%s: unknown</title></text>`, x(sn.TakenAt), chartTop+chartPlotH-4, chartFontSize, chartAxis,
				sn.TakenAt.UTC().Format("2006-01-02 15:04"))
		}
	}
	s.dateLabel(chartLeft, first, "start")
	if last.Sub(first) >= 24*time.Hour {
		s.dateLabel(chartW-chartRight, last, "end")
	}
	s.f(`<text x="%.0f" y="%.0f" font-size="%d" fill="%s">followers</text>`, chartLeft+4, chartTop+10, chartFontSize, chartAxis)
	s.f(`</svg>`)
	if n := len(snaps) - len(known); n > 0 {
		s.f(`<p class="muted">%d snapshot(s) without a follower count, marked “?”: unknown, not zero.</p>`, n)
	}
	return template.HTML(s.b.String())
}

// chartPosts is how many posts the bar chart shows: the latest.
const chartPosts = 12

// barChart draws views per post, oldest of the latest posts on the left,
// with likes as a darker bar inside, each bar dated below the axis. A
// metric the platform did not give draws no bar and a "?" mark.
func barChart(media []social.Media) template.HTML {
	if len(media) == 0 {
		return template.HTML(`<p class="muted">No posts fetched yet.</p>`)
	}
	// The latest posts, then left to right in time.
	posts := slices.SortedStableFunc(slices.Values(media), func(a, b social.Media) int { return b.PublishedAt.Compare(a.PublishedAt) })
	posts = posts[:min(len(posts), chartPosts)]
	slices.Reverse(posts)
	var top int64
	unknown := 0
	for _, m := range posts {
		for _, c := range []social.Count{m.Views, m.Likes} {
			if c.Known {
				top = max(top, c.N)
			}
		}
		if !m.Views.Known || !m.Likes.Known {
			unknown++
		}
	}
	var s svg
	s.open(fmt.Sprintf("Views and likes of the %d latest posts, up to %d views", len(posts), top))
	y := s.axes(niceTicks(0, max(top, 1), 4))
	bw := chartPlotW / float64(len(posts))
	for i, m := range posts {
		x := chartLeft + float64(i)*bw
		name := m.Title
		if name == "" {
			name = m.ExternalID
		}
		// Count prints "unknown" for a metric the platform did not give.
		tip := template.HTMLEscapeString(fmt.Sprintf("%s, %s: %v views, %v likes, %v comments, %v shares",
			name, m.PublishedAt.UTC().Format("2006-01-02"), m.Views, m.Likes, m.Comments, m.Shares))
		s.f(`<g><title>%s</title>`, tip)
		if m.Views.Known {
			s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x+bw*0.15, y(m.Views.N), bw*0.7, chartTop+chartPlotH-y(m.Views.N), chartLight)
		}
		if m.Likes.Known {
			s.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x+bw*0.3, y(m.Likes.N), bw*0.4, chartTop+chartPlotH-y(m.Likes.N), chartInk)
		}
		if !m.Views.Known || !m.Likes.Known {
			s.f(`<text x="%.1f" y="%.0f" font-size="%d" text-anchor="middle" fill="%s">?</text>`, x+bw/2, chartTop+chartPlotH-4, chartFontSize, chartAxis)
		}
		s.f(`</g>`)
		if len(posts) <= 6 || i%2 == 0 {
			s.f(`<text x="%.1f" y="%.0f" font-size="%d" text-anchor="middle" fill="%s">%s</text>`, x+bw/2, chartTop+chartPlotH+16, chartFontSize, chartAxis, m.PublishedAt.UTC().Format("2 Jan"))
		}
	}
	s.f(`<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f" font-size="%d" fill="%s">views</text>`,
		chartLeft, chartH-14, chartLight, chartLeft+14, chartH-5, chartFontSize, chartAxis)
	s.f(`<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f" font-size="%d" fill="%s">likes</text>`,
		chartLeft+60, chartH-14, chartInk, chartLeft+74, chartH-5, chartFontSize, chartAxis)
	s.f(`</svg>`)
	if unknown > 0 {
		s.f(`<p class="muted">%d post(s) whose views or likes the platform did not give, marked “?”: unknown, not zero.</p>`, unknown)
	}
	return template.HTML(s.b.String())
}
