package meta_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// setAudience gives the account follower demographics by country and
// gender, and engaged-audience demographics by age.
func setAudience(t testing.TB, srv *metatest.Server, igID string) {
	t.Helper()
	countries := map[string]int{"US": 1200, "DE": 800, "FR": 300}
	for i := range 50 { // more than the 45 Meta returns
		countries["X"+string(rune('A'+i/26))+string(rune('A'+i%26))] = 10 + i
	}
	require.NoError(t, srv.SetDemographics(igID, metatest.MetricFollowerDemographics, "country", countries))
	require.NoError(t, srv.SetDemographics(igID, metatest.MetricFollowerDemographics, "gender", map[string]int{"F": 2900, "M": 2100, "U": 100}))
	require.NoError(t, srv.SetDemographics(igID, metatest.MetricEngagedAudienceDemographics, "age", map[string]int{"18-24": 90, "25-34": 120}))
}

func TestDemographics(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		setAudience(t, e.srv, creatorID)
		setAudience(t, e.srv, igID)
		setAudience(t, e.srv, smallID)

		// Instagram Login: the creator's own connection.
		ig := e.igClient(e.connectInstagram(creatorID, []string{meta.FeatureInstagramInsights}))
		// Facebook Login: the account behind the Page.
		_, page, fb := e.pageClient(allFeatures)
		_ = page
		for name, tc := range map[string]struct {
			c    *meta.Client
			acct string
		}{"instagram login": {ig, creatorID}, "facebook login": {fb, igID}} {
			d, _, err := tc.c.Instagram.Demographics(e.ctx, tc.acct, meta.DemographicsOptions{
				Breakdowns: []meta.Breakdown{meta.BreakdownCountry, meta.BreakdownGender, meta.BreakdownCity}})
			require.NoError(t, err, name)
			require.Equal(t, meta.MetricFollowerDemographics, d.Metric)
			require.Equal(t, meta.ThisMonth, d.Timeframe)
			require.Equal(t, e.srv.Version(), d.Version)
			require.Len(t, d.By[meta.BreakdownCountry], 45, "Meta returns the top 45")
			require.Equal(t, meta.DemographicValue{Key: "US", Value: 1200}, d.By[meta.BreakdownCountry][0])
			require.Equal(t, []meta.DemographicValue{{Key: "F", Value: 2900}, {Key: "M", Value: 2100}, {Key: "U", Value: 100}}, d.By[meta.BreakdownGender])
			_, hasCity := d.By[meta.BreakdownCity]
			require.False(t, hasCity, "a breakdown without data is absent")
		}
		// The request is the documented one.
		var seen bool
		for _, r := range e.srv.Requests() {
			if r.Path == "/"+creatorID+"/insights" && r.Query.Get("breakdown") == "gender" {
				seen = true
				require.Equal(t, "follower_demographics", r.Query.Get("metric"))
				require.Equal(t, "lifetime", r.Query.Get("period"))
				require.Equal(t, "total_value", r.Query.Get("metric_type"))
				require.Equal(t, "this_month", r.Query.Get("timeframe"))
			}
		}
		require.True(t, seen)

		eng, _, err := ig.Instagram.Demographics(e.ctx, creatorID, meta.DemographicsOptions{
			Metric: meta.MetricEngagedAudienceDemographics, Timeframe: meta.ThisWeek})
		require.NoError(t, err)
		require.Equal(t, []meta.DemographicValue{{Key: "25-34", Value: 120}, {Key: "18-24", Value: 90}}, eng.By[meta.BreakdownAge])

		// Bad options fail before any request.
		e.srv.ClearRequests()
		for _, o := range []meta.DemographicsOptions{
			{Timeframe: "last_90_days"}, {Metric: "reach"}, {Breakdowns: []meta.Breakdown{"locale"}},
			{Breakdowns: []meta.Breakdown{meta.BreakdownAge, meta.BreakdownAge}},
		} {
			_, _, err := ig.Instagram.Demographics(e.ctx, creatorID, o)
			require.ErrorIs(t, err, meta.ErrConfig, "%+v", o)
		}
		require.Zero(t, e.graphCalls())

		// Below 100 followers Meta answers an empty data set.
		small := e.igClient(e.connectInstagram(smallID, []string{meta.FeatureInstagramInsights}))
		_, _, err = small.Instagram.Demographics(e.ctx, smallID, meta.DemographicsOptions{})
		var de *meta.DemographicsError
		require.ErrorAs(t, err, &de)
		require.ErrorIs(t, err, meta.ErrNoDemographics)
		require.Equal(t, smallID, de.AccountID)

		// Without the insights permission: a scope error, no request.
		basic := e.igClient(e.connectInstagram(creatorID, []string{meta.FeatureInstagram}))
		e.srv.ClearRequests()
		_, _, err = basic.Instagram.Demographics(e.ctx, creatorID, meta.DemographicsOptions{})
		require.ErrorContains(t, err, meta.PermInstagramBusinessManageInsights)
		require.Zero(t, e.graphCalls())
	})
}

func TestSnapshotDemographics(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		setAudience(t, e.srv, creatorID)
		conn := e.connectInstagram(creatorID, []string{meta.FeatureInstagramInsights})
		c := e.igClient(conn)
		sn, _, err := c.Instagram.SnapshotDemographics(e.ctx, creatorID, meta.DemographicsOptions{
			Breakdowns: []meta.Breakdown{meta.BreakdownGender, meta.BreakdownCountry}})
		require.NoError(t, err)
		require.Equal(t, social.KnownCount(5400), sn.Followers)

		got, err := e.store.Snapshots(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Len(t, got, 1)
		s := got[0]
		require.Equal(t, meta.PlatformInstagram, s.Platform)
		require.Equal(t, social.KnownCount(5400), s.Followers)
		require.Equal(t, "graph "+e.srv.Version()+"; follower_demographics; timeframe=this_month; breakdowns=gender,country", s.Source)
		require.Equal(t, map[string]int64{"F": 2900, "M": 2100, "U": 100}, s.Breakdowns["gender"])
		require.EqualValues(t, 1200, s.Breakdowns["country"]["US"])
		require.Len(t, s.Breakdowns["country"], 45)
		require.Equal(t, []string{"analytics", "publishing"}, []string(s.Purposes))

		// The Instagram sync reads the demographics too, with the
		// insights permission.
		e.clk.Advance(time.Hour)
		_, _, err = c.Instagram.Snapshot(e.ctx, creatorID)
		require.NoError(t, err)
		got, err = e.store.Snapshots(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, map[string]int64{"F": 2900, "M": 2100, "U": 100}, got[1].Breakdowns["gender"])
		require.Contains(t, got[1].Source, "follower_demographics")
	})
}
