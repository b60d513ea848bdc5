package metatest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// metricDef describes an insights metric: where it applies, its periods,
// and, for deprecated metrics, when Meta stopped serving it on all versions.
type metricDef struct {
	object  string // "page", "post" or "ig"
	periods []string
	title   string
	retired time.Time // zero: current
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

var (
	periodsPage = []string{"day", "week", "days_28"}
	periodsLife = []string{"lifetime"}
)

// metricCatalog lists the insights metrics the emulator knows. Current
// names follow Meta's Page Insights reference and the 2025–2026
// deprecations; retired names fail with Meta's invalid metric error once
// the emulator's clock passes their date.
func metricCatalog() map[string]metricDef {
	m := map[string]metricDef{}
	add := func(object string, periods []string, retired time.Time, names ...string) {
		for _, n := range names {
			m[n] = metricDef{object: object, periods: periods, retired: retired, title: titleFor(n)}
		}
	}
	// Page metrics in use.
	add("page", periodsPage, time.Time{},
		"page_media_view", "page_total_media_view_unique", "page_post_engagements",
		"page_views_total", "page_video_views", "page_video_views_unique",
		"page_actions_post_reactions_total", "page_daily_follows", "page_daily_follows_unique",
		"page_daily_unfollows_unique")
	add("page", []string{"day"}, time.Time{}, "page_follows")
	add("page", periodsLife, time.Time{}, "page_follows_city", "page_follows_country")
	// Post metrics in use.
	add("post", periodsLife, time.Time{},
		"post_media_view", "post_total_media_view_unique", "post_clicks", "post_clicks_by_type",
		"post_reactions_by_type_total", "post_reactions_like_total", "post_reactions_love_total",
		"post_reactions_wow_total", "post_reactions_haha_total", "post_reactions_sorry_total",
		"post_reactions_anger_total", "post_video_views", "post_video_views_unique",
		"post_video_avg_time_watched", "post_activity_by_action_type")
	// Retired March 14, 2024.
	add("page", periodsPage, date(2024, time.March, 14),
		"page_engaged_users", "page_consumptions", "page_consumptions_unique")
	add("post", periodsLife, date(2024, time.March, 14),
		"post_engaged_users", "post_consumptions", "post_consumptions_unique")
	// Retired November 15, 2025: impressions and Page fans.
	add("page", periodsPage, date(2025, time.November, 15),
		"page_impressions", "page_impressions_paid", "page_impressions_organic_v2",
		"page_impressions_viral", "page_impressions_nonviral",
		"page_posts_impressions", "page_posts_impressions_paid", "page_posts_impressions_organic",
		"page_fan_adds", "page_fan_adds_unique", "page_fan_removes", "page_fan_removes_unique")
	add("page", periodsLife, date(2025, time.November, 15),
		"page_fans", "page_fans_city", "page_fans_country", "page_fans_locale")
	add("post", periodsLife, date(2025, time.November, 15),
		"post_impressions", "post_impressions_paid", "post_impressions_organic",
		"post_impressions_fan", "post_impressions_viral", "post_impressions_nonviral")
	// Retired June 15, 2026 (the Insights reference's date; the
	// deprecated-metrics page says 2025): the *_unique impressions.
	add("page", periodsPage, date(2026, time.June, 15),
		"page_impressions_unique", "page_impressions_paid_unique", "page_impressions_organic_unique_v2",
		"page_impressions_viral_unique", "page_impressions_nonviral_unique",
		"page_posts_impressions_unique", "page_posts_impressions_paid_unique",
		"page_posts_impressions_organic_unique", "page_posts_impressions_viral_unique",
		"page_posts_impressions_nonviral_unique")
	add("post", periodsLife, date(2026, time.June, 15),
		"post_impressions_unique", "post_impressions_paid_unique", "post_impressions_organic_unique",
		"post_impressions_fan_unique", "post_impressions_viral_unique", "post_impressions_nonviral_unique")
	// Instagram media metrics in use.
	add("ig", periodsLife, time.Time{},
		"comments", "follows", "ig_reels_avg_watch_time", "ig_reels_video_view_total_time",
		"likes", "navigation", "profile_activity", "profile_visits", "reach", "replies",
		"saved", "shares", "total_interactions", "views", "total_likes", "total_comments",
		"total_views", "reels_skip_rate")
	// Instagram metrics retired December 11, 2023 and April 21, 2025.
	add("ig", periodsLife, date(2023, time.December, 11),
		"engagement", "carousel_album_engagement", "carousel_album_impressions",
		"carousel_album_reach", "carousel_album_saved", "carousel_album_video_views")
	add("ig", periodsLife, date(2025, time.April, 21),
		"impressions", "plays", "clips_replays_count", "ig_reels_aggregated_all_plays_count", "video_views")
	return m
}

func titleFor(name string) string {
	words := strings.Split(name, "_")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

// liveMetric reports whether name is a current metric for object kind.
func (s *Server) liveMetric(name, object string) bool {
	def, known := s.catalog[name]
	if !known || def.object != object || s.retiredExtra[name] {
		return false
	}
	return def.retired.IsZero() || s.nowLocked().Before(def.retired)
}

func (s *Server) liveMetricNames(object string) []string {
	var out []string
	for n := range s.catalog {
		if s.liveMetric(n, object) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

var validPeriods = []string{"day", "week", "days_28", "month", "lifetime", "total_over_range"}

// parseTimeParam reads since/until: a unix time or a date.
func parseTimeParam(v string) (time.Time, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), true
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339, timeLayout} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// insights serves /{page-or-post}/insights[/{metric}] and
// /{ig-media}/insights.
func (s *Server) insights(c *call, objectID, object, sub string) result {
	if object == "ig" {
		return s.mediaInsights(c, objectID)
	}
	pageID := objectID
	if object == "post" {
		pageID = s.posts[objectID].PageID
	}
	if c.tok.kind != kindPage || c.tok.pageID != pageID {
		return fail(errPageTokenRequired190())
	}
	if !c.grant.has("read_insights", "pages_read_engagement") {
		return fail(errPermission(10, "(#10) This endpoint requires the 'read_insights' and 'pages_read_engagement' permissions."))
	}
	if !hasTask(s.pages[pageID], c.tok.userID, TaskAnalyze) {
		return fail(errPermission(10, "(#10) The person behind this token cannot perform the ANALYZE task on the Page."))
	}
	var metrics []string
	if sub != "" {
		metrics = []string{sub}
	} else {
		for _, m := range strings.Split(c.param("metric"), ",") {
			if m = strings.TrimSpace(m); m != "" {
				metrics = append(metrics, m)
			}
		}
	}
	if len(metrics) == 0 {
		return fail(newErr(typeOAuth, 3001, 1504028, "No metric was specified to be fetched. Please specify one or more metrics to be fetched and try again."))
	}
	for _, m := range metrics {
		if !s.liveMetric(m, object) {
			return fail(errInvalidMetric())
		}
	}
	period := c.param("period")
	if period != "" && !slices.Contains(validPeriods, period) {
		return fail(errParam("(#100) period must be one of the following values: " + strings.Join(validPeriods, ", ")))
	}
	now := s.nowLocked()
	until := now.Truncate(24 * time.Hour)
	since := until.Add(-48 * time.Hour)
	if v := c.param("since"); v != "" {
		t, good := parseTimeParam(v)
		if !good {
			return fail(errParam("(#100) The parameter since must be a unix timestamp or a date"))
		}
		since = t
	}
	if v := c.param("until"); v != "" {
		t, good := parseTimeParam(v)
		if !good {
			return fail(errParam("(#100) The parameter until must be a unix timestamp or a date"))
		}
		until = t
	}
	if until.Before(since) {
		return fail(errParam("(#100) The since parameter must be earlier than the until parameter"))
	}
	if until.Sub(since) > 90*24*time.Hour {
		return fail(errParam("(#100) There cannot be more than 90 days (7776000 s) between since and until"))
	}
	data := []map[string]any{}
	for _, m := range metrics {
		def := s.catalog[m]
		periods := def.periods
		if period != "" {
			if period == "total_over_range" {
				periods = []string{period}
			} else if slices.Contains(def.periods, period) {
				periods = []string{period}
			} else {
				continue // Meta leaves out metrics that lack the period
			}
		}
		value, set := s.metricValues[objectID][m]
		if !set {
			value = 0
		}
		for _, p := range periods {
			var values []map[string]any
			switch p {
			case "lifetime":
				values = []map[string]any{{"value": value}}
			case "total_over_range":
				values = []map[string]any{{"value": value, "end_time": formatTime(until)}}
			default:
				const day = 24 * time.Hour
				start, end := since.Truncate(day), until.Truncate(day)
				if !end.After(start) {
					end = start.Add(day)
				}
				for d := start; d.Before(end); d = d.Add(day) {
					values = append(values, map[string]any{"value": value, "end_time": formatTime(d.Add(day))})
				}
			}
			data = append(data, map[string]any{
				"name": m, "period": p, "values": values, "title": def.title,
				"description": fmt.Sprintf("%s of the %s (metatest)", def.title, object),
				"id":          fmt.Sprintf("%s/insights/%s/%s", objectID, m, p),
			})
		}
	}
	return ok(map[string]any{"data": data})
}

// mediaInsights serves /{ig-media-id}/insights.
func (s *Server) mediaInsights(c *call, mediaID string) result {
	md := s.media[mediaID]
	if gerr := s.canUseIG(c, md.OwnerID, "instagram_basic", "instagram_manage_insights", "pages_read_engagement"); gerr != nil {
		return fail(gerr)
	}
	if md.albumChild {
		return fail(errParam("(#100) Insights data is not available for media within an album."))
	}
	var metrics []string
	for _, m := range strings.Split(c.param("metric"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			metrics = append(metrics, m)
		}
	}
	if len(metrics) == 0 {
		return fail(errParam("(#100) The parameter metric is required"))
	}
	for i, m := range metrics {
		if s.liveMetric(m, "ig") {
			continue
		}
		if m == "impressions" {
			return fail(errParam("(#100) Starting from version v22.0 and above, the impressions metric is no longer supported for the queried media."))
		}
		return fail(errParam(fmt.Sprintf("(#100) metric[%d] must be one of the following values: %s",
			i, strings.Join(s.liveMetricNames("ig"), ", "))))
	}
	data := []map[string]any{}
	for _, m := range metrics {
		value, set := s.metricValues[mediaID][m]
		if !set {
			continue // Meta returns no data rather than 0 when unavailable
		}
		def := s.catalog[m]
		data = append(data, map[string]any{
			"name": m, "period": "lifetime", "values": []map[string]any{{"value": value}},
			"title": def.title, "description": def.title + " of the media (metatest)",
			"id": fmt.Sprintf("%s/insights/%s/lifetime", mediaID, m),
		})
	}
	return ok(map[string]any{"data": data})
}
