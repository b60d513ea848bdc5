package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
)

// writeOnly lists the scopes that only TikTok's write features need.
func writeOnly() social.Scopes {
	var read, write social.Scopes
	for _, f := range tiktok.Features() {
		if f.Write {
			write = write.Union(f.Scopes)
		} else {
			read = read.Union(f.Scopes)
		}
	}
	return read.Missing(write...)
}

// TestAgency runs the example end to end on each database against the
// TikTok emulator: three creators connect read-only, four weekly syncs,
// then the follower trend and the engagement leaderboard.
func TestAgency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
		clk := demo.NewClock(start)
		srv, err := startEmulator(clk.Now)
		require.NoError(t, err)
		t.Cleanup(srv.Close)
		kek, err := demo.EphemeralKEK()
		require.NoError(t, err)
		var out bytes.Buffer
		rep, err := run(context.Background(), options{DB: db.Owner, KEK: kek, Emulator: srv, Now: clk.Now,
			Advance: clk.Advance, TikTok: emulatorConfig(srv), Out: &out})
		require.NoError(t, err, out.String())

		// The leaderboard: (likes + comments + shares) / views of each
		// creator's videos, best first.
		var names []string
		var rates []float64
		for _, c := range rep.Creators {
			names = append(names, c.Name)
			rates = append(rates, c.Engagement)
		}
		require.Equal(t, []string{"Chloé Martin", "Ana Lima", "Ben Okafor"}, names)
		require.InDeltaSlice(t, []float64{300.0 / 2000, 800.0 / 10000, 2000.0 / 40000}, rates, 1e-12)
		for _, c := range rep.Creators {
			require.True(t, c.EngagementKnown, c.Name)
		}

		// The trend: one snapshot a week, with the followers TikTok reported.
		want := map[string][]int64{
			"Chloé Martin": {3000, 3450, 3900, 4350},
			"Ana Lima":     {12000, 12600, 13200, 13800},
			"Ben Okafor":   {48000, 47800, 47600, 47400},
		}
		for _, c := range rep.Creators {
			var followers []int64
			for i, s := range c.Trend {
				followers = append(followers, s.Followers.N)
				require.Equal(t, start.Add(time.Duration(i)*7*24*time.Hour), s.TakenAt, "%s snapshot %d", c.Name, i)
				require.Equal(t, social.KnownCount(int64(i+1)), s.MediaCount, "one video posted a week")
			}
			require.Equal(t, want[c.Name], followers, c.Name)
		}
		require.Contains(t, out.String(), "Chloé Martin  3000    3450    3900    4350    +45.0%")
		require.Contains(t, out.String(), "1.  Chloé Martin  15.00%")
		require.Contains(t, out.String(), "agency.creator 1, agency.mission 1")

		// Read-only: no write scope was asked for, at consent or since.
		forbidden := writeOnly()
		require.NotEmpty(t, forbidden)
		require.Len(t, rep.ConsentURLs, 3)
		for _, raw := range rep.ConsentURLs {
			u, err := url.Parse(raw)
			require.NoError(t, err)
			asked := social.ParseScopes(u.Query().Get("scope"), ",")
			require.Contains(t, asked, tiktok.ScopeVideoList)
			require.Empty(t, asked.Intersect(forbidden), "consent asked for %v", asked)
		}
		for _, c := range rep.Creators {
			require.Empty(t, c.Requested.Intersect(forbidden), c.Name)
		}
		require.NotContains(t, out.String(), "agency-sandbox-secret", "no secret is printed")
		for _, r := range srv.Requests() {
			require.False(t, strings.HasPrefix(r.Path, "/v2/post/"), "a read-only CRM never calls %s", r.Path)
		}
	})
}

// TestAgencyWithoutConfiguration is `go run ./examples/agency`: a
// throw-away SQLite file and the emulator, without any setting.
func TestAgencyWithoutConfiguration(t *testing.T) {
	t.Setenv("TIKTOK_CLIENT_KEY", "")
	t.Setenv("TIKTOK_CLIENT_SECRET", "")
	var out bytes.Buffer
	require.NoError(t, mainErr(context.Background(), nil, strings.NewReader(""), &out))
	require.Contains(t, out.String(), "TikTok: the in-process emulator (sandbox")
	require.Contains(t, out.String(), "1.  Chloé Martin  15.00%")
	require.Contains(t, out.String(), "3.  Ben Okafor    5.00%")
}

// TestLeaderboardUnknownEngagement: a creator whose latest snapshot has no
// views to divide by (the platform did not give them) is ranked last and
// printed "unknown", not 0.00%, and does not move the others.
func TestLeaderboardUnknownEngagement(t *testing.T) {
	rep := &report{Creators: []creatorReport{
		{Name: "No Views", Engagement: 0},
		{Name: "Low", Engagement: 0.01, EngagementKnown: true},
		{Name: "High", Engagement: 0.2, EngagementKnown: true},
		{Name: "Zero", Engagement: 0, EngagementKnown: true},
	}}
	rankCreators(rep.Creators)
	var names []string
	for _, c := range rep.Creators {
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"High", "Low", "Zero", "No Views"}, names)
	var out bytes.Buffer
	printReport(&out, rep)
	require.Contains(t, out.String(), "4.  No Views  unknown")
	require.Contains(t, out.String(), "3.  Zero      0.00%")
	require.NotContains(t, out.String(), "No Views  0.00%")
}
