package retention_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

// TestS16SubjectHoldNeedsAHeldKind: a subject hold by a kind that no
// category finds rows by and no resolver follows (here a phone number and
// a PSID: this engine registers no resolver) would hold nothing while an
// erasure by the same identifier erased everything it leads to; PlaceHold
// refuses it with a *ValidationError naming the kinds that can be held,
// and places nothing. A kind a category finds rows by is placed (a kind a
// resolver follows too: TestS17SubjectHoldByEmailHoldsHerContacts).
func TestS16SubjectHoldNeedsAHeldKind(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		for _, kind := range []string{"phone", "thread_id"} {
			_, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: kind, SubjectValue: "+14155550100", Reason: "litigation"})
			var ve *retention.ValidationError
			require.True(t, errors.As(err, &ve), "%s: %v", kind, err)
			require.Equal(t, "SubjectKind", ve.Field)
			require.Contains(t, ve.Reason, "contact_id")
			require.NotContains(t, err.Error(), "+14155550100", "the identifier stays out of the error")
		}
		holds, err := v.e.Holds(a)
		require.NoError(t, err)
		require.Empty(t, holds)
		h, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: "contact_id", SubjectValue: "k1", Reason: "litigation"})
		require.NoError(t, err)
		require.Equal(t, "contact_id", h.SubjectKind)
	})
}
