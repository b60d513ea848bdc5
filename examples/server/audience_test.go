package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/social"
)

// TestAudienceView: the insights page shows the latest snapshot's
// demographics, largest values first, at most audienceShown of each.
func TestAudienceView(t *testing.T) {
	require.Nil(t, audienceOf([]social.Snapshot{{Followers: social.KnownCount(10)}}))
	countries := map[string]int64{}
	for i := range 20 {
		countries[string(rune('A'+i))+"X"] = int64(i)
	}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	snaps := []social.Snapshot{
		{Followers: social.KnownCount(90), Breakdowns: map[string]map[string]int64{"gender": {"F": 1}}},
		{Followers: social.KnownCount(100), TakenAt: at, Source: "graph v26.0; follower_demographics; timeframe=this_month; breakdowns=gender,country",
			Breakdowns: map[string]map[string]int64{"gender": {"F": 60, "M": 35, "U": 5}, "country": countries}},
		{Followers: social.KnownCount(101)}, // a later snapshot without demographics
	}
	v := audienceOf(snaps)
	require.NotNil(t, v)
	require.Equal(t, at, v.TakenAt)
	require.Len(t, v.Breakdowns, 2)
	require.Equal(t, "gender", v.Breakdowns[0].Name)
	require.Equal(t, []audienceValue{{"F", 60}, {"M", 35}, {"U", 5}}, v.Breakdowns[0].Values)
	require.Len(t, v.Breakdowns[1].Values, audienceShown)
	require.Equal(t, audienceValue{"TX", 19}, v.Breakdowns[1].Values[0])

	a := &app{}
	tmpl, err := a.consoleTemplates()
	require.NoError(t, err)
	var out bytes.Buffer
	cv := &connectionView{Connection: social.Connection{ID: "c1", Platform: "meta", DisplayName: "@gem"}, Snapshots: snaps, Audience: v}
	require.NoError(t, tmpl.ExecuteTemplate(&out, "connection", &page{Data: cv, Mode: map[string]string{}}))
	html := out.String()
	require.Contains(t, html, `id="audience"`)
	require.Contains(t, html, `id="audience-gender"`)
	require.Contains(t, html, `<td>F</td><td class="num">60</td>`)
	require.Contains(t, html, "follower_demographics")
}
