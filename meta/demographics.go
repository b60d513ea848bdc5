package meta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/socialcrm/socialcrm/social"
)

// Demographic metrics of Instagram account insights: who follows the
// account, and who engaged with its content.
const (
	MetricFollowerDemographics        = "follower_demographics"
	MetricEngagedAudienceDemographics = "engaged_audience_demographics"
)

// Breakdown is a dimension demographic metrics are split by.
type Breakdown string

// Breakdowns of demographic metrics.
const (
	BreakdownAge     Breakdown = "age"     // 13-17, 18-24, … 65+
	BreakdownCity    Breakdown = "city"    // "London, England"
	BreakdownCountry Breakdown = "country" // ISO 3166-1 alpha-2
	BreakdownGender  Breakdown = "gender"  // F, M, U
)

// AllBreakdowns are the four breakdowns, in the order Demographics reads
// them by default.
func AllBreakdowns() []Breakdown {
	return []Breakdown{BreakdownAge, BreakdownGender, BreakdownCountry, BreakdownCity}
}

// Timeframe is the period demographic metrics describe. Meta retired the
// other timeframes (last_14_days, last_30_days, last_90_days, prev_month)
// in v20.0.
type Timeframe string

// Timeframes of demographic metrics.
const (
	ThisWeek  Timeframe = "this_week"
	ThisMonth Timeframe = "this_month"
)

// DemographicsOptions selects what Demographics reads. The zero value
// reads follower_demographics, every breakdown, this month.
type DemographicsOptions struct {
	// Metric is MetricFollowerDemographics (zero) or
	// MetricEngagedAudienceDemographics.
	Metric string
	// Breakdowns to read, one request each (zero: AllBreakdowns).
	Breakdowns []Breakdown
	// Timeframe is ThisWeek or ThisMonth (zero).
	Timeframe Timeframe
}

func (o *DemographicsOptions) normalize() error {
	switch o.Metric {
	case "":
		o.Metric = MetricFollowerDemographics
	case MetricFollowerDemographics, MetricEngagedAudienceDemographics:
	default:
		return fmt.Errorf("%w: DemographicsOptions: Metric %q is not a demographic metric", ErrConfig, o.Metric)
	}
	if len(o.Breakdowns) == 0 {
		o.Breakdowns = AllBreakdowns()
	}
	seen := map[Breakdown]bool{}
	for _, b := range o.Breakdowns {
		if !slices.Contains(AllBreakdowns(), b) {
			return fmt.Errorf("%w: DemographicsOptions: breakdown %q is not age, city, country or gender", ErrConfig, b)
		}
		if seen[b] {
			return fmt.Errorf("%w: DemographicsOptions: breakdown %q twice", ErrConfig, b)
		}
		seen[b] = true
	}
	switch o.Timeframe {
	case "":
		o.Timeframe = ThisMonth
	case ThisWeek, ThisMonth:
	default:
		return fmt.Errorf("%w: DemographicsOptions: Timeframe %q (Meta serves this_week and this_month)", ErrConfig, o.Timeframe)
	}
	return nil
}

// Demographics are an account's audience split by breakdown: counts of
// people, never who they are.
type Demographics struct {
	AccountID string    `json:"account_id"`
	Metric    string    `json:"metric"`
	Timeframe Timeframe `json:"timeframe"`
	// Version is the Graph API version that answered.
	Version string `json:"version"`
	// By holds each breakdown's values, largest first. Meta returns the
	// top 45 values of a breakdown and counts only people it has
	// demographic data for, so they may sum to less than the audience. A
	// breakdown Meta had no data for is absent.
	By map[Breakdown][]DemographicValue `json:"by"`
}

// DemographicValue is one key of a breakdown (a country, an age range)
// and how many people it counts.
type DemographicValue struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

// Source is the provenance stored on snapshots: "graph v26.0;
// follower_demographics; timeframe=this_month; breakdowns=age,gender".
func (d *Demographics) Source() string {
	var bs []string
	for _, b := range AllBreakdowns() {
		if _, ok := d.By[b]; ok {
			bs = append(bs, string(b))
		}
	}
	return "graph " + d.Version + "; " + d.Metric + "; timeframe=" + string(d.Timeframe) + "; breakdowns=" + strings.Join(bs, ",")
}

// ErrNoDemographics matches *DemographicsError.
var ErrNoDemographics = errors.New("meta: no audience demographics")

// DemographicsError is returned when Meta answered an empty data set for
// every breakdown asked: it withholds demographic metrics of accounts
// with fewer than 100 followers (MinDemographicsFollowers) and of
// audiences it has no data on.
type DemographicsError struct {
	AccountID string
	Metric    string
}

func (e *DemographicsError) Error() string {
	return fmt.Sprintf("meta: Instagram account %s: Meta returned no %s (it withholds them below %d followers or without data)",
		e.AccountID, e.Metric, MinDemographicsFollowers)
}

// Is makes errors.Is(err, ErrNoDemographics) hold.
func (e *DemographicsError) Is(target error) bool { return target == ErrNoDemographics }

// MinDemographicsFollowers is the follower count below which Meta gives
// no demographic metrics for an account.
const MinDemographicsFollowers = 100

type wireDemographics struct {
	Name       string `json:"name"`
	TotalValue struct {
		Breakdowns []struct {
			DimensionKeys []string `json:"dimension_keys"`
			Results       []struct {
				DimensionValues []string `json:"dimension_values"`
				Value           Int      `json:"value"`
			} `json:"results"`
		} `json:"breakdowns"`
	} `json:"total_value"`
}

// Demographics reads an account's audience demographics
// (GET /{ig-user-id}/insights?metric=…&period=lifetime&metric_type=
// total_value&breakdown=…&timeframe=…), one request per breakdown. When
// Meta answers no data for any of them (accounts under 100 followers) it
// fails with a *DemographicsError. It needs instagram_basic,
// instagram_manage_insights and pages_read_engagement with Facebook
// Login, instagram_business_basic and instagram_business_manage_insights
// with Instagram Login.
func (s *InstagramService) Demographics(ctx context.Context, igID string, opts DemographicsOptions) (*Demographics, *Response, error) {
	if err := s.c.require(PermInstagramBasic, PermInstagramManageInsights, PermPagesReadEngagement); err != nil {
		return nil, nil, err
	}
	if err := checkID(igID); err != nil {
		return nil, nil, err
	}
	if err := opts.normalize(); err != nil {
		return nil, nil, err
	}
	d := &Demographics{AccountID: igID, Metric: opts.Metric, Timeframe: opts.Timeframe, Version: s.c.Version(),
		By: map[Breakdown][]DemographicValue{}}
	var resp *Response
	for _, b := range opts.Breakdowns {
		q := url.Values{"metric": {opts.Metric}, "period": {"lifetime"}, "metric_type": {"total_value"},
			"breakdown": {string(b)}, "timeframe": {string(opts.Timeframe)}}
		var l list[wireDemographics]
		r, err := s.c.get(ctx, "/"+igID+"/insights", q, &l, PermInstagramBasic, PermInstagramManageInsights, PermPagesReadEngagement)
		if err != nil {
			return nil, r, err
		}
		resp = r
		if r != nil && r.Version != "" {
			d.Version = "v" + strings.TrimPrefix(r.Version, "v")
		}
		var vals []DemographicValue
		for _, m := range l.Data {
			if m.Name != opts.Metric {
				continue
			}
			for _, br := range m.TotalValue.Breakdowns {
				i := slices.Index(br.DimensionKeys, string(b))
				if i < 0 {
					continue
				}
				for _, res := range br.Results {
					if i < len(res.DimensionValues) {
						vals = append(vals, DemographicValue{Key: res.DimensionValues[i], Value: int64(res.Value)})
					}
				}
			}
		}
		if len(vals) == 0 {
			continue
		}
		slices.SortStableFunc(vals, func(a, b DemographicValue) int {
			if c := cmp.Compare(b.Value, a.Value); c != 0 {
				return c
			}
			return strings.Compare(a.Key, b.Key)
		})
		d.By[b] = vals
	}
	if len(d.By) == 0 {
		return nil, resp, &DemographicsError{AccountID: igID, Metric: opts.Metric}
	}
	return d, resp, nil
}

// SnapshotDemographics reads the account's profile counts and its
// demographics (Demographics with opts) and stores them together as one
// social.Snapshot of the client's connection: the follower counts, the
// demographics as Snapshot.Breakdowns (counts per key, no person), and
// Snapshot.Source naming the API version, the metric, the timeframe and
// the breakdowns. Snapshots are aggregated metrics: socialcrm keeps them
// under that retention rule and purges them with the connection. It needs
// the permissions of Profile and Demographics.
func (s *InstagramService) SnapshotDemographics(ctx context.Context, igID string, opts DemographicsOptions) (*social.Snapshot, *Response, error) {
	if err := s.c.require(PermInstagramBasic, PermInstagramManageInsights, PermPagesReadEngagement); err != nil {
		return nil, nil, err
	}
	p, resp, err := s.Profile(ctx, igID)
	if err != nil {
		return nil, resp, err
	}
	d, resp, err := s.Demographics(ctx, igID, opts)
	if err != nil {
		return nil, resp, err
	}
	by := make(map[string]map[string]int64, len(d.By))
	for b, vals := range d.By {
		m := make(map[string]int64, len(vals))
		for _, v := range vals {
			m[v.Key] = v.Value
		}
		by[string(b)] = m
	}
	sn := &social.Snapshot{Followers: social.KnownCount(p.FollowersCount), Following: social.KnownCount(p.FollowsCount),
		MediaCount: social.KnownCount(p.MediaCount), Source: d.Source(), Breakdowns: by}
	r := &social.SyncResult{DisplayName: s.c.session.Connection().DisplayName, Snapshot: sn}
	if err := s.c.session.SaveSync(ctx, r); err != nil {
		return nil, resp, err
	}
	return r.Snapshot, resp, nil
}
