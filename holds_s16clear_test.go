package socialcrm_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS16ClearSubjectHoldStoresNoIdentifier: a subject hold by e-mail
// address stores the address only sealed and keyed-hashed (no column of
// the holds table holds it in clear), Holds lists it with its address,
// and it still holds: an erasure by that address keeps the member
// account it finds and counts it held. A hold written in clear by an
// older version is sealed by ProtectIdentifiers and still listed.
func TestS16ClearSubjectHoldStoresNoIdentifier(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: fakeclock.New().Now})
		require.NoError(t, err)
		tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Held",
			Owner: tenancy.NewMember{Email: "owner@example.com", Name: "O"}})
		require.NoError(t, err)
		a := tenancy.WithPrincipal(ctx, owner.Principal())
		const canary = "zqheldcanary@example.com"
		m, err := sdk.Tenants.AddMember(a, tenancy.NewMember{Email: canary, Name: "Held", Role: tenancy.RoleStaff})
		require.NoError(t, err)

		h, err := sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: "email", SubjectValue: canary, Reason: "litigation"})
		require.NoError(t, err)
		require.Equal(t, canary, h.SubjectValue)

		raw := db.Admin(t)
		clearText := func() bool {
			t.Helper()
			var rows []struct {
				SubjectValue  string `bun:"subject_value"`
				SubjectHash   string `bun:"subject_hash"`
				SubjectSealed []byte `bun:"subject_sealed"`
				Reason        string `bun:"reason"`
			}
			require.NoError(t, raw.NewRaw("SELECT subject_value, subject_hash, subject_sealed, reason FROM "+retention.TableHolds+
				" WHERE tenant_id = ?", tn.ID).Scan(ctx, &rows))
			require.NotEmpty(t, rows)
			for _, r := range rows {
				for _, s := range []string{r.SubjectValue, r.SubjectHash, string(r.SubjectSealed), r.Reason} {
					if bytes.Contains(bytes.ToLower([]byte(s)), []byte("zqheldcanary")) {
						return true
					}
				}
			}
			return false
		}
		require.False(t, clearText(), "the held address is stored in clear")

		holds, err := sdk.Retention.Holds(a)
		require.NoError(t, err)
		require.Len(t, holds, 1)
		require.Equal(t, canary, holds[0].SubjectValue)

		er := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{"email": canary})
		rc, err := sdk.Retention.Erase(a, er.ID)
		require.NoError(t, err)
		var held int64
		for _, c := range rc.Categories {
			if c.Category == "tenancy.member" {
				held += c.Held
			}
		}
		require.EqualValues(t, 1, held, "the hold keeps the member: %+v", rc.Categories)
		var n int
		require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+tenancy.TableMembers+" WHERE tenant_id = ? AND id = ?", tn.ID, m.ID).Scan(ctx, &n))
		require.Equal(t, 1, n, "the held member survives the erasure")

		// A hold stored in clear by an older version.
		_, err = raw.NewRaw("INSERT INTO "+retention.TableHolds+" (tenant_id, id, scope, category, record_id, subject_kind, subject_value, reason, created_at) VALUES (?, 'legacy', 'subject', '', '', 'email', ?, 'old', ?)",
			tn.ID, "zqheldcanary-old@example.com", h.CreatedAt).Exec(ctx)
		require.NoError(t, err)
		require.True(t, clearText())
		_, err = sdk.Retention.ProtectIdentifiers(tenancy.System(ctx, "test"))
		require.NoError(t, err)
		require.False(t, clearText(), "ProtectIdentifiers sealed the old hold")
		holds, err = sdk.Retention.Holds(a)
		require.NoError(t, err)
		require.Len(t, holds, 2)
		require.ElementsMatch(t, []string{canary, "zqheldcanary-old@example.com"}, []string{holds[0].SubjectValue, holds[1].SubjectValue})
	})
}
