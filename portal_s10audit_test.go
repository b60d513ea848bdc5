package socialcrm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS10AuditPortalUserErased: a client-portal user (a member with the
// client role, linked to her client) asks for her data by e-mail: the
// export holds her account and her portal link, and the erasure leaves no
// row naming her member id anywhere but the audit log — her portal link
// included — while the client and another portal user keep theirs.
func TestS10AuditPortalUserErased(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "portal")
		s := sdk.CRM
		cl, err := s.Clients().Create(a, crm.ClientInput{Name: "Brand"})
		require.NoError(t, err)
		var ids []string
		for _, email := range []string{"paula@brand.example", "other@brand.example"} {
			m, err := sdk.Tenants.AddMember(a, tenancy.NewMember{Email: email, Name: "Portal " + email, Role: tenancy.RoleClient, ClientID: cl.ID})
			require.NoError(t, err)
			_, err = s.Clients().Link(a, cl.ID, m.ID)
			require.NoError(t, err)
			ids = append(ids, m.ID)
		}
		_, names, m := exportOf(t, sdk, a, map[string]string{"email": "Paula@Brand.example"})
		require.Equal(t, retention.OutcomeDataFound, m.Outcome)
		rows := map[string]int64{}
		for _, c := range m.Categories {
			rows[c.Name] = c.Rows
		}
		require.Equal(t, int64(1), rows["tenancy.member"], "%+v %v", rows, names)
		require.Equal(t, int64(1), rows["crm.client_member"], "her portal link: %+v", rows)

		er := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{"email": "paula@brand.example"})
		_, err = sdk.Retention.Erase(a, er.ID)
		require.NoError(t, err)
		hits, err := leakscan.Tables(context.Background(), db.Admin(t), []string{ids[0]})
		require.NoError(t, err)
		for _, h := range hits {
			if strings.HasPrefix(h.Where, tenancy.TableAuditLog+".") {
				continue
			}
			t.Errorf("a trace of her account: %s", h)
		}
		links, err := s.Clients().Members(a, cl.ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, links.Items, 1)
		require.Equal(t, ids[1], links.Items[0].MemberID, "the other portal user keeps her link")
	}, migrated)
}
