package main

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/socialcrm/socialcrm/social"
)

// Charts are small inline SVGs built from numbers only (no user text is
// spliced into the markup except through html/template escaping), so the
// console needs no script and no external asset.

const chartW, chartH, chartPad = 480.0, 140.0, 24.0

// trendChart draws the follower trend of snapshots as a line with its
// first and last values labelled.
func trendChart(snaps []social.Snapshot) template.HTML {
	if len(snaps) == 0 {
		return template.HTML(`<p class="muted">No snapshots yet: sync the account to start its follower trend.</p>`)
	}
	var known []social.Snapshot // a follower count the platform did not give is unknown, not 0
	for _, s := range snaps {
		if s.Followers.Known {
			known = append(known, s)
		}
	}
	if len(known) == 0 {
		return template.HTML(`<p class="muted">Followers: unknown (the account did not grant access to its counts).</p>`)
	}
	snaps = known
	lo, hi := snaps[0].Followers.N, snaps[0].Followers.N
	for _, s := range snaps {
		lo, hi = min(lo, s.Followers.N), max(hi, s.Followers.N)
	}
	span := float64(hi - lo)
	if span == 0 {
		span = 1
	}
	var pts []string
	for i, s := range snaps {
		x := chartPad
		if len(snaps) > 1 {
			x += float64(i) * (chartW - 2*chartPad) / float64(len(snaps)-1)
		}
		y := chartH - chartPad - float64(s.Followers.N-lo)/span*(chartH-2*chartPad)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" aria-label="Follower trend: %v to %v" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`,
		snaps[0].Followers, snaps[len(snaps)-1].Followers, chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#ccc"/>`, chartPad, chartH-chartPad, chartW-chartPad, chartH-chartPad)
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="%s"/>`, strings.Join(pts, " "))
	for _, p := range pts {
		fmt.Fprintf(&b, `<circle r="3" fill="#2a6fdb" cx="%s" cy="%s"/>`, strings.Split(p, ",")[0], strings.Split(p, ",")[1])
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="14" font-size="12">%v followers</text>`, chartPad, snaps[len(snaps)-1].Followers)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" fill="#666">%d snapshots, from %v</text>`, chartPad, chartH-6, len(snaps), snaps[0].Followers)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// barChart draws views per post (with likes as a darker bar inside).
func barChart(media []social.Media) template.HTML {
	if len(media) == 0 {
		return template.HTML(`<p class="muted">No posts fetched yet.</p>`)
	}
	if len(media) > 12 {
		media = media[:12]
	}
	var top int64 = 1
	for _, m := range media {
		top = max(top, m.Views)
	}
	bw := (chartW - 2*chartPad) / float64(len(media))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" aria-label="Views and likes of the last %d posts" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`,
		len(media), chartW, chartH, chartW, chartH)
	for i, m := range media {
		x := chartPad + float64(i)*bw
		h := float64(m.Views) / float64(top) * (chartH - 2*chartPad)
		lh := float64(m.Likes) / float64(top) * (chartH - 2*chartPad)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#9cc1f5"><title>%d views</title></rect>`,
			x+2, chartH-chartPad-h, bw-4, h, m.Views)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2a6fdb"><title>%d likes</title></rect>`,
			x+2, chartH-chartPad-lh, bw-4, lh, m.Likes)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="14" font-size="12">views (light) and likes (dark), up to %d views</text></svg>`, chartPad, top)
	return template.HTML(b.String())
}
