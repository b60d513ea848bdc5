package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/social"
)

// Metric is an insights metric by the name to request and the names to
// try, in order, when Meta refuses it (code 100) or when it is known to be
// retired. Metric names churn: keep them in configuration (Config.Metrics).
type Metric struct {
	Name      string
	Fallbacks []string
}

// candidates returns the metric's names in the order they are tried.
func (m Metric) candidates() []string { return append([]string{m.Name}, m.Fallbacks...) }

// MetricConfig names the metrics the client requests by default, per kind
// of object. A nil list uses the default of DefaultMetrics.
type MetricConfig struct {
	// Page metrics, read with period=day.
	Page []Metric
	// Post metrics (lifetime).
	Post []Metric
	// Media metrics of Instagram media (lifetime).
	Media []Metric
}

// DefaultMetrics returns the metric names Meta documents as current in
// 2026: views replaced impressions (Pages in November 2025 and June 2026,
// Instagram in April 2025), follows replaced fans.
func DefaultMetrics() MetricConfig {
	return MetricConfig{
		Page: []Metric{
			{Name: "page_media_view"},
			{Name: "page_total_media_view_unique"},
			{Name: "page_post_engagements"},
			{Name: "page_daily_follows_unique"},
		},
		Post: []Metric{
			{Name: "post_media_view"},
			{Name: "post_total_media_view_unique"},
			{Name: "post_clicks"},
			{Name: "post_reactions_by_type_total"},
		},
		Media: []Metric{
			{Name: "views"},
			{Name: "reach"},
			{Name: "likes"},
			{Name: "comments"},
			{Name: "saved"},
			{Name: "shares"},
			{Name: "total_interactions"},
		},
	}
}

func (m MetricConfig) withDefaults() MetricConfig {
	d := DefaultMetrics()
	if m.Page == nil {
		m.Page = d.Page
	}
	if m.Post == nil {
		m.Post = d.Post
	}
	if m.Media == nil {
		m.Media = d.Media
	}
	return m
}

// Deprecation is a metric Meta retired, when, and what replaces it.
type Deprecation struct {
	Retired     time.Time
	Replacement string
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// deprecations lists retired metrics by name, from Meta's deprecated
// metrics pages and changelog
// (https://developers.facebook.com/docs/platforminsights/page/deprecated-metrics,
// https://developers.facebook.com/blog/post/2025/08/15/page-insights-api-updates/,
// Instagram media insights reference).
var deprecations = func() map[string]Deprecation {
	m := map[string]Deprecation{}
	add := func(retired time.Time, replacement string, names ...string) {
		for _, n := range names {
			m[n] = Deprecation{Retired: retired, Replacement: replacement}
		}
	}
	add(day(2024, time.March, 14), "page_post_engagements", "page_engaged_users", "page_consumptions", "page_consumptions_unique")
	add(day(2024, time.March, 14), "post_clicks", "post_engaged_users", "post_consumptions", "post_consumptions_unique")
	add(day(2025, time.November, 15), "page_media_view", "page_impressions", "page_impressions_paid",
		"page_impressions_organic_v2", "page_impressions_viral", "page_impressions_nonviral",
		"page_posts_impressions", "page_posts_impressions_paid", "page_posts_impressions_organic")
	add(day(2025, time.November, 15), "page_daily_follows_unique", "page_fan_adds", "page_fan_adds_unique")
	add(day(2025, time.November, 15), "page_daily_unfollows_unique", "page_fan_removes", "page_fan_removes_unique")
	add(day(2025, time.November, 15), "page_follows", "page_fans", "page_fans_city", "page_fans_country", "page_fans_locale")
	add(day(2025, time.November, 15), "post_media_view", "post_impressions", "post_impressions_paid",
		"post_impressions_organic", "post_impressions_fan", "post_impressions_viral", "post_impressions_nonviral")
	add(day(2026, time.June, 15), "page_total_media_view_unique", "page_impressions_unique", "page_impressions_paid_unique",
		"page_impressions_organic_unique_v2", "page_impressions_viral_unique", "page_impressions_nonviral_unique",
		"page_posts_impressions_unique", "page_posts_impressions_paid_unique",
		"page_posts_impressions_organic_unique", "page_posts_impressions_viral_unique",
		"page_posts_impressions_nonviral_unique")
	add(day(2026, time.June, 15), "post_total_media_view_unique", "post_impressions_unique", "post_impressions_paid_unique",
		"post_impressions_organic_unique", "post_impressions_fan_unique", "post_impressions_viral_unique",
		"post_impressions_nonviral_unique")
	add(day(2023, time.December, 11), "total_interactions", "engagement", "carousel_album_engagement",
		"carousel_album_impressions", "carousel_album_reach", "carousel_album_saved", "carousel_album_video_views")
	add(day(2025, time.April, 21), "views", "impressions", "plays", "clips_replays_count",
		"ig_reels_aggregated_all_plays_count", "video_views")
	return m
}()

// Deprecated reports whether Meta retired metric name on or before at,
// with its replacement.
func Deprecated(name string, at time.Time) (Deprecation, bool) {
	d, ok := deprecations[name]
	if !ok || at.Before(d.Retired) {
		return Deprecation{}, false
	}
	return d, true
}

// ErrDeprecatedMetric matches *DeprecatedMetricError.
var ErrDeprecatedMetric = errors.New("meta: deprecated insights metric")

// DeprecatedMetricError is returned, before any request, when a metric
// and all its fallbacks are metrics Meta retired: requesting them would
// fail the whole insights call with code 100.
type DeprecatedMetricError struct {
	Metric      string
	Retired     time.Time
	Replacement string
}

func (e *DeprecatedMetricError) Error() string {
	return fmt.Sprintf("meta: insights metric %q was retired by Meta on %s; use %q",
		e.Metric, e.Retired.Format(time.DateOnly), e.Replacement)
}

// Is makes errors.Is(err, ErrDeprecatedMetric) hold.
func (e *DeprecatedMetricError) Is(target error) bool { return target == ErrDeprecatedMetric }

// MetricError is returned when Meta refused every name of a metric (code
// 100): it wraps the last *APIError.
type MetricError struct {
	Metric string
	Tried  []string
	Err    error
}

func (e *MetricError) Error() string {
	return fmt.Sprintf("meta: insights metric %q refused under every name (%s): %v", e.Metric, strings.Join(e.Tried, ", "), e.Err)
}

// Unwrap returns the refusal.
func (e *MetricError) Unwrap() error { return e.Err }

// Insights are the insights of one object, with the provenance a stored
// figure needs when metric names churn.
type Insights struct {
	ObjectID string `json:"object_id"`
	// Version is the Graph API version that answered.
	Version string `json:"version"`
	// Metrics are the metric names actually requested (after fallbacks).
	Metrics []string `json:"metrics"`
	// Data are the metrics Meta returned. A metric without data is left
	// out by Meta (not reported as zero).
	Data []Insight `json:"data"`

	raw [][]byte // the answers that produced Data
}

// rawResponses returns the answers behind in as social.RawResponse rows.
func (in *Insights) rawResponses() []social.RawResponse {
	var out []social.RawResponse
	for _, b := range in.raw {
		out = append(out, social.RawResponse{Endpoint: "GET /" + in.Version + "/" + in.ObjectID + "/insights", Body: string(b)})
	}
	return out
}

// Insight is one metric over one period.
type Insight struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Period      string         `json:"period"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Values      []InsightValue `json:"values"`
}

// InsightValue is a value and the end of its period (zero for lifetime
// values). Value is a number or, for breakdowns, an object.
type InsightValue struct {
	Value   json.RawMessage `json:"value"`
	EndTime Timestamp       `json:"end_time"`
}

// Number returns the value as a number, and false when it is not one
// (a breakdown object).
func (v InsightValue) Number() (float64, bool) {
	f, err := strconv.ParseFloat(strings.Trim(string(v.Value), `"`), 64)
	return f, err == nil
}

// Latest returns the last numeric value of metric name and whether there
// was one.
func (in *Insights) Latest(name string) (float64, bool) {
	for i := len(in.Data) - 1; i >= 0; i-- {
		d := in.Data[i]
		if d.Name != name {
			continue
		}
		for j := len(d.Values) - 1; j >= 0; j-- {
			if f, ok := d.Values[j].Number(); ok {
				return f, true
			}
		}
	}
	return 0, false
}

// Source is the provenance string stored on snapshots:
// "graph v26.0; metric_a,metric_b".
func (in *Insights) Source() string {
	return "graph " + in.Version + "; " + strings.Join(in.Metrics, ",")
}

// MaxInsightsRange is the longest since–until range Meta serves in one
// insights call.
const MaxInsightsRange = 90 * 24 * time.Hour

// InsightsOptions narrows an insights request. The zero value asks for
// the configured metrics over Meta's default range.
type InsightsOptions struct {
	// Metrics replaces the configured metrics.
	Metrics []Metric
	// Period is day, week, days_28, lifetime… (zero: Meta's default).
	Period string
	// Since and Until bound the range (at most 90 days apart for Pages).
	Since, Until time.Time
}

// insights reads path (an object's /insights edge) for metrics, trying
// fallbacks: retired names are skipped without a request; when Meta
// refuses the batch with code 100, each metric is tried alone through its
// names to find the ones it takes.
func (c *Client) insights(ctx context.Context, objectID string, metrics []Metric, o InsightsOptions, need ...string) (*Insights, *Response, error) {
	if err := c.require(need...); err != nil {
		return nil, nil, err
	}
	if len(metrics) == 0 {
		return nil, nil, fmt.Errorf("%w: insights: no metric", ErrConfig)
	}
	now := c.opts.now()
	// Drop retired names locally: asking for one fails the whole call.
	live := make([][]string, len(metrics))
	for i, m := range metrics {
		for _, n := range m.candidates() {
			if _, gone := Deprecated(n, now); !gone && n != "" {
				live[i] = append(live[i], n)
			}
		}
		if len(live[i]) == 0 {
			d, _ := Deprecated(m.Name, now)
			return nil, nil, &DeprecatedMetricError{Metric: m.Name, Retired: d.Retired, Replacement: d.Replacement}
		}
	}
	if !o.Since.IsZero() && !o.Until.IsZero() {
		if o.Until.Before(o.Since) {
			return nil, nil, fmt.Errorf("%w: insights: Until before Since", ErrConfig)
		}
		if o.Until.Sub(o.Since) > MaxInsightsRange {
			return nil, nil, fmt.Errorf("%w: insights: more than 90 days between Since and Until", ErrConfig)
		}
	}
	q := url.Values{}
	if o.Period != "" {
		q.Set("period", o.Period)
	}
	if !o.Since.IsZero() {
		q.Set("since", strconv.FormatInt(o.Since.Unix(), 10))
	}
	if !o.Until.IsZero() {
		q.Set("until", strconv.FormatInt(o.Until.Unix(), 10))
	}
	path := "/" + url.PathEscape(objectID) + "/insights"
	var raws [][]byte
	fetch := func(names []string) (list[Insight], *Response, error) {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("metric", strings.Join(names, ","))
		var l list[Insight]
		var raw []byte
		resp, err := c.do(ctx, request{method: "GET", path: path, query: qq, need: need, idempotent: true, keep: &raw}, &l)
		if err == nil {
			raws = append(raws, raw)
		}
		return l, resp, err
	}
	first := make([]string, len(live))
	for i := range live {
		first[i] = live[i][0]
	}
	l, resp, err := fetch(first)
	if err == nil {
		return c.newInsights(objectID, resp, first, l.Data, raws), resp, nil
	}
	if !errors.Is(err, ErrInvalidParameter) {
		return nil, resp, err
	}
	// One name is refused: find, metric by metric, a name Meta takes.
	var used []string
	var data []Insight
	for i, names := range live {
		var lastErr error
		ok := false
		for _, n := range names {
			l, r, err := fetch([]string{n})
			resp = r
			if err == nil {
				used, data, ok = append(used, n), append(data, l.Data...), true
				break
			}
			if !errors.Is(err, ErrInvalidParameter) {
				return nil, resp, err
			}
			lastErr = err
		}
		if !ok {
			return nil, resp, &MetricError{Metric: metrics[i].Name, Tried: names, Err: lastErr}
		}
	}
	return c.newInsights(objectID, resp, used, data, raws), resp, nil
}

func (c *Client) newInsights(objectID string, resp *Response, names []string, data []Insight, raws [][]byte) *Insights {
	v := c.Version()
	if resp != nil && resp.Version != "" {
		v = resp.Version
		if !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
	}
	return &Insights{ObjectID: objectID, Version: v, Metrics: slices.Clone(names), Data: data, raw: raws}
}
