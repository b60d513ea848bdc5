package meta

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultAccountMetrics are the account-level metrics AccountInsights
// reads by default, all served with metric_type=total_value (views
// replaced impressions in 2025).
func DefaultAccountMetrics() []string {
	return []string{"views", "reach", "accounts_engaged", "total_interactions"}
}

// AccountInsightsOptions selects what AccountInsights reads. The zero
// value reads DefaultAccountMetrics per day over Meta's default range.
type AccountInsightsOptions struct {
	// Metrics are total_value metric names (zero: DefaultAccountMetrics).
	Metrics []string
	// Period is day (zero), week or days_28.
	Period string
	// Since and Until bound the range.
	Since, Until time.Time
}

// AccountInsights are an account's metric totals over a range, with the
// provenance a stored figure needs.
type AccountInsights struct {
	AccountID string `json:"account_id"`
	Version   string `json:"version"`
	Period    string `json:"period"`
	// Metrics are the names requested; Totals their values (a metric Meta
	// had no data for is absent).
	Metrics []string         `json:"metrics"`
	Totals  map[string]int64 `json:"totals"`
}

// Source is the provenance string stored on snapshots: "graph v26.0;
// views,reach".
func (a *AccountInsights) Source() string {
	return "graph " + a.Version + "; " + strings.Join(a.Metrics, ",")
}

// AccountInsights reads account-level insights
// (GET /{ig-user-id}/insights with metric_type=total_value) on either
// flavour. A metric Meta retired (impressions…) fails with
// *DeprecatedMetricError before any request. It needs instagram_basic,
// instagram_manage_insights and pages_read_engagement with Facebook Login,
// instagram_business_basic and instagram_business_manage_insights with
// Instagram Login.
func (s *InstagramService) AccountInsights(ctx context.Context, igID string, opts AccountInsightsOptions) (*AccountInsights, *Response, error) {
	need := []string{PermInstagramBasic, PermInstagramManageInsights, PermPagesReadEngagement}
	if err := s.c.require(need...); err != nil {
		return nil, nil, err
	}
	if err := checkID(igID); err != nil {
		return nil, nil, err
	}
	metrics := opts.Metrics
	if len(metrics) == 0 {
		metrics = DefaultAccountMetrics()
	}
	now := s.c.opts.now()
	for _, m := range metrics {
		if m == "" || strings.ContainsAny(m, ", ") {
			return nil, nil, fmt.Errorf("%w: AccountInsightsOptions: metric %q", ErrConfig, m)
		}
		if d, gone := Deprecated(m, now); gone {
			return nil, nil, &DeprecatedMetricError{Metric: m, Retired: d.Retired, Replacement: d.Replacement}
		}
	}
	period := opts.Period
	switch period {
	case "":
		period = "day"
	case "day", "week", "days_28":
	default:
		return nil, nil, fmt.Errorf("%w: AccountInsightsOptions: Period %q (day, week or days_28)", ErrConfig, period)
	}
	if !opts.Since.IsZero() && !opts.Until.IsZero() && opts.Until.Before(opts.Since) {
		return nil, nil, fmt.Errorf("%w: AccountInsightsOptions: Until before Since", ErrConfig)
	}
	q := url.Values{"metric": {strings.Join(metrics, ",")}, "period": {period}, "metric_type": {"total_value"}}
	if !opts.Since.IsZero() {
		q.Set("since", strconv.FormatInt(opts.Since.Unix(), 10))
	}
	if !opts.Until.IsZero() {
		q.Set("until", strconv.FormatInt(opts.Until.Unix(), 10))
	}
	var l list[struct {
		Name       string `json:"name"`
		TotalValue struct {
			Value Int `json:"value"`
		} `json:"total_value"`
	}]
	resp, err := s.c.get(ctx, "/"+igID+"/insights", q, &l, need...)
	if err != nil {
		return nil, resp, err
	}
	a := &AccountInsights{AccountID: igID, Version: s.c.Version(), Period: period, Metrics: slices.Clone(metrics), Totals: map[string]int64{}}
	if resp != nil && resp.Version != "" {
		a.Version = "v" + strings.TrimPrefix(resp.Version, "v")
	}
	for _, d := range l.Data {
		a.Totals[d.Name] = int64(d.TotalValue.Value)
	}
	return a, resp, nil
}
