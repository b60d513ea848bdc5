package crm_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestEditsAndDeletesAreAudited: updating and deleting records writes
// audit entries naming the actor, the action and the record — never a
// value of it.
func TestEditsAndDeletesAreAudited(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		const canary = "CanaryAuditName"
		c, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: canary})
		require.NoError(t, err)
		c.LastName = canary + "Last"
		c, err = e.store.Contacts().Update(e.A, c.ID, c.Version, c.ContactInput)
		require.NoError(t, err)
		n, err := e.store.Notes().Create(e.A, crm.NoteInput{Body: canary + "Note", ContactID: c.ID})
		require.NoError(t, err)
		n.Body = canary + "Edited"
		_, err = e.store.Notes().Update(e.A, n.ID, n.Version, n.NoteInput)
		require.NoError(t, err)
		require.NoError(t, e.store.Notes().Delete(e.A, n.ID))
		require.NoError(t, e.store.Contacts().Delete(e.A, c.ID))

		log, err := tenancy.NewAuditLog(e.db.DB)
		require.NoError(t, err)
		entries, err := log.List(e.A, tenancy.AuditListOptions{})
		require.NoError(t, err)
		var got []string
		for _, en := range entries {
			if en.Action == "vault.key_created" {
				continue
			}
			got = append(got, en.Action+" "+en.Target)
			require.NotEmpty(t, en.Actor)
			b, err := json.Marshal(en)
			require.NoError(t, err)
			require.NotContains(t, string(b), canary)
		}
		require.Equal(t, []string{"crm.contact.updated contact:" + c.ID, "crm.note.updated note:" + n.ID,
			"crm.note.deleted note:" + n.ID, "crm.contact.deleted contact:" + c.ID}, got)
		_, err = log.Verify(e.A)
		require.NoError(t, err, "the chain holds")
	})
}
