package meta_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
)

// TestPageSubscription: the app subscribes a Page to the Messenger fields
// the inbox needs, lists the subscription and removes it, as Meta's
// subscribed_apps edge documents; without pages_manage_metadata nothing is
// sent.
func TestPageSubscription(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		_, c := w.messengerClient(messagingFeatures)
		_, err := c.Pages.Subscribe(w.ctx, pageID, meta.MessengerFields())
		require.NoError(t, err)
		require.ElementsMatch(t, meta.MessengerFields(), w.srv.Subscriptions(appID, pageID))
		apps, _, err := c.Pages.SubscribedApps(w.ctx, pageID)
		require.NoError(t, err)
		require.Len(t, apps, 1)
		require.Equal(t, meta.ID(appID), apps[0].ID)
		require.ElementsMatch(t, meta.MessengerFields(), apps[0].SubscribedFields)

		_, err = c.Pages.Subscribe(w.ctx, pageID, []string{"messages", "no_such_field"})
		require.ErrorIs(t, err, meta.ErrInvalidParameter)
		_, err = c.Pages.Subscribe(w.ctx, pageID, nil)
		require.ErrorIs(t, err, meta.ErrConfig)

		_, err = c.Pages.Unsubscribe(w.ctx, pageID)
		require.NoError(t, err)
		require.Empty(t, w.srv.Subscriptions(appID, pageID))
		apps, _, err = c.Pages.SubscribedApps(w.ctx, pageID)
		require.NoError(t, err)
		require.Empty(t, apps)
	})
}

func TestPageSubscriptionNeedsMetadata(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		_, c := w.messengerClient([]string{meta.FeatureProfile, meta.FeaturePages})
		calls := len(w.srv.Requests())
		_, err := c.Pages.Subscribe(w.ctx, pageID, meta.MessengerFields())
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Equal(t, social.NewScopes(meta.PermPagesManageMetadata, meta.PermPagesMessaging), se.Missing)
		require.Len(t, w.srv.Requests(), calls, "nothing sent")
	})
}
