package metatest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Demographic metrics of Instagram account insights and what they allow.
const (
	MetricFollowerDemographics        = "follower_demographics"
	MetricEngagedAudienceDemographics = "engaged_audience_demographics"
)

// DemographicsMinFollowers is the follower count below which Meta withholds
// demographic metrics: the answer is an empty data set, as for any
// unavailable insight.
const DemographicsMinFollowers = 100

// demographicsTop is how many values of a breakdown Meta returns (the top
// performers).
const demographicsTop = 45

var (
	demographicBreakdowns = []string{"age", "city", "country", "gender"}
	// Timeframes of demographic metrics; the last_* and prev_month ones
	// were retired in v20.0.
	demographicTimeframes = []string{"this_week", "this_month"}
	retiredTimeframes     = []string{"last_14_days", "last_30_days", "last_90_days", "prev_month"}
)

// SetDemographics sets what a demographic metric (MetricFollowerDemographics
// or MetricEngagedAudienceDemographics) reports for the account under one
// breakdown (age, city, country or gender): values by key, such as
// {"US": 120, "DE": 80} for country or {"F": 10, "M": 9, "U": 1} for
// gender. Every timeframe reports them.
func (s *Server) SetDemographics(igID, metric, breakdown string, values map[string]int) error {
	if metric != MetricFollowerDemographics && metric != MetricEngagedAudienceDemographics {
		return invalid("SetDemographics: metric %q", metric)
	}
	if !slices.Contains(demographicBreakdowns, breakdown) {
		return invalid("SetDemographics: breakdown %q", breakdown)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.igAccounts[igID] == nil {
		return fmt.Errorf("metatest: SetDemographics: account %q: %w", igID, ErrNotFound)
	}
	byMetric := s.ig.demographics[igID]
	if byMetric == nil {
		byMetric = map[string]map[string]map[string]int{}
		s.ig.demographics[igID] = byMetric
	}
	if byMetric[metric] == nil {
		byMetric[metric] = map[string]map[string]int{}
	}
	byMetric[metric][breakdown] = cloneCounts(values)
	return nil
}

func cloneCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// accountInsights serves GET /{ig-user-id}/insights: the demographic
// metrics (period=lifetime, metric_type=total_value, one breakdown,
// timeframe) and total_value metrics set with SetMetric.
func (s *Server) accountInsights(c *call, igID string) result {
	if gerr := s.canUseIG(c, igID, "instagram_basic", "instagram_manage_insights", "pages_read_engagement"); gerr != nil {
		return fail(gerr)
	}
	metrics := splitFields(c.param("metric"))
	if len(metrics) == 0 {
		return fail(errParam("(#100) The parameter metric is required"))
	}
	acct := s.igAccounts[igID]
	var data []map[string]any
	for _, m := range metrics {
		switch m {
		case MetricFollowerDemographics, MetricEngagedAudienceDemographics:
			if c.param("period") != "lifetime" {
				return fail(errParam(fmt.Sprintf("(#100) metric[%s] must be one of the following values: lifetime", m)))
			}
			if c.param("metric_type") != "total_value" {
				return fail(errParam(fmt.Sprintf("(#100) The following metrics (%s) should be specified with parameter metric_type=total_value", m)))
			}
			breakdown := c.param("breakdown")
			if !slices.Contains(demographicBreakdowns, breakdown) {
				return fail(errParam("(#100) breakdown must be one of the following values: age, city, country, gender"))
			}
			tf := c.param("timeframe")
			switch {
			case slices.Contains(retiredTimeframes, tf):
				return fail(errParam(fmt.Sprintf("(#100) The timeframe %s is not supported for v20.0 and above; use this_week or this_month", tf)))
			case !slices.Contains(demographicTimeframes, tf):
				return fail(errParam("(#100) timeframe must be one of the following values: this_week, this_month"))
			}
			if acct.FollowersCount < DemographicsMinFollowers {
				continue // withheld: left out of the data set
			}
			values := s.ig.demographics[igID][m][breakdown]
			if len(values) == 0 {
				continue
			}
			type kv struct {
				k string
				v int
			}
			var all []kv
			for k, v := range values {
				all = append(all, kv{k, v})
			}
			slices.SortFunc(all, func(a, b kv) int {
				if c := cmp.Compare(b.v, a.v); c != 0 {
					return c
				}
				return strings.Compare(a.k, b.k)
			})
			results := []map[string]any{}
			for _, e := range all[:min(len(all), demographicsTop)] {
				results = append(results, map[string]any{"dimension_values": []string{e.k}, "value": e.v})
			}
			data = append(data, map[string]any{
				"name": m, "period": "lifetime", "title": titleFor(m),
				"description": "The demographic characteristics of the " + map[string]string{
					MetricFollowerDemographics: "account's followers", MetricEngagedAudienceDemographics: "engaged audience"}[m] +
					", including countries, cities and gender distribution.",
				"total_value": map[string]any{"breakdowns": []map[string]any{{
					"dimension_keys": []string{breakdown}, "results": results}}},
				"id": igID + "/insights/" + m + "/lifetime",
			})
		default:
			v, set := s.metricValues[igID][m]
			if !set {
				return fail(errInvalidMetric())
			}
			if c.param("metric_type") != "total_value" {
				return fail(errParam(fmt.Sprintf("(#100) The following metrics (%s) should be specified with parameter metric_type=total_value", m)))
			}
			period := c.param("period")
			if period == "" {
				period = "day"
			}
			data = append(data, map[string]any{"name": m, "period": period, "title": titleFor(m), "description": titleFor(m),
				"total_value": map[string]any{"value": v}, "id": igID + "/insights/" + m + "/" + period})
		}
	}
	if data == nil {
		data = []map[string]any{}
	}
	return ok(map[string]any{"data": data})
}
