package crm_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// TestCreatePlanOnColdTable: on a table of a few contacts whose statistics
// were never taken (a new installation; the plan a connection keeps for
// Create's prepared statement until the next ANALYZE), Create's duplicate
// checks look the e-mail address up in the e-mail index and the phone
// number in the phone index, as the application's role plans them, not in
// another index of the tenant's contacts filtered row by row (which grew
// with the tenant: migration 20261123000595).
func TestCreatePlanOnColdTable(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		h := &captureHook{}
		e.db.AddQueryHook(h)
		for i := range 6 {
			in := crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprint("Lovelace", i), Email: fmt.Sprintf("cold%d@example.com", i),
				Phone: fmt.Sprintf("+1415555%04d", i), Birthday: crm.Birthday{Month: 12, Day: 10}}
			_, err := e.store.Contacts().Create(e.A, in)
			require.NoError(t, err)
		}
		q := h.last("INSERT INTO", crm.TableContacts, "email_index")
		plan := explainPlan(t, e, q, false)
		if e.db.Name == "sqlite" {
			require.Regexp(t, `SEARCH ct USING (COVERING )?INDEX socialcrm_crm_contacts_email_id \(tenant_id=\? AND email_index=\?\)`, plan, "create:\n%s", plan)
			require.Regexp(t, `SEARCH ct USING (COVERING )?INDEX socialcrm_crm_contacts_phone_id \(tenant_id=\? AND phone_index=\?\)`, plan, "create:\n%s", plan)
			return
		}
		require.Regexp(t, `Index (Only )?Scan using socialcrm_crm_contacts_email_id on socialcrm_crm_contacts ct\b`, plan, "create:\n%s", plan)
		require.Regexp(t, `Index (Only )?Scan using socialcrm_crm_contacts_phone_id on socialcrm_crm_contacts ct_1\b`, plan, "create:\n%s", plan)
		require.NotContains(t, plan, "Filter: ((email_index", "create:\n%s", plan)
		require.NotContains(t, plan, "Filter: ((phone_index", "create:\n%s", plan)
		require.NotContains(t, plan, "Seq Scan", "create:\n%s", plan)
	})
}
