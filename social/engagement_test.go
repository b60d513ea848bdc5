package social_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/social"
)

// TestEngagementRateSkipsUnknown: a media item whose views are unknown is
// left out of the rate (its likes do not inflate it), and an unknown
// interaction count adds nothing rather than a guess.
func TestEngagementRateSkipsUnknown(t *testing.T) {
	k := social.KnownCount
	media := []social.Media{
		{Likes: k(100), Comments: k(10)}, // views unknown: left out
		{Views: k(1000), Likes: k(50)},   // comments and shares unknown
		{Views: k(1000), Likes: k(20), Comments: k(5), Shares: k(5)},
	}
	require.InDelta(t, 80.0/2000, social.EngagementRate(media), 1e-12)
	require.Zero(t, social.EngagementRate(media[:1]), "no known views: 0, the documented value without views")
	require.Zero(t, social.EngagementRate(nil))
}
