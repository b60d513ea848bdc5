package crm_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestCustomFields(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		f := e.store.Fields()
		sh := newShop(t, e, e.A, "acme", "INV-1")
		defs := []crm.FieldDefInput{
			{RecordKind: crm.KindCampaign, Name: "platform", Type: crm.FieldSelect, Options: []string{"instagram", "tiktok"}, Required: true},
			{RecordKind: crm.KindCampaign, Name: "posts", Type: crm.FieldNumber},
			{RecordKind: crm.KindCampaign, Name: "launch", Type: crm.FieldDate},
			{RecordKind: crm.KindCampaign, Name: "exclusive", Type: crm.FieldBool},
			{RecordKind: crm.KindCampaign, Name: "brief", Type: crm.FieldText, Label: "Brief"},
		}
		for _, d := range defs {
			_, err := f.Define(e.A, d)
			require.NoError(t, err, d.Name)
		}
		// Bad definitions.
		for name, d := range map[string]crm.FieldDefInput{
			"duplicate":         defs[1],
			"bad name":          {RecordKind: crm.KindCampaign, Name: "Bad Name", Type: crm.FieldText},
			"unknown kind":      {RecordKind: "spaceship", Name: "x", Type: crm.FieldText},
			"unknown type":      {RecordKind: crm.KindCampaign, Name: "x", Type: "color"},
			"select no options": {RecordKind: crm.KindCampaign, Name: "x", Type: crm.FieldSelect},
			"options on text":   {RecordKind: crm.KindCampaign, Name: "x", Type: crm.FieldText, Options: []string{"a"}},
		} {
			_, err := f.Define(e.A, d)
			require.ErrorIs(t, err, crm.ErrInvalid, name)
		}
		page, err := f.List(e.A, crm.FieldDefFilter{RecordKind: crm.KindCampaign}, crm.ListOptions{})
		require.NoError(t, err)
		list := page.Items
		require.Len(t, list, 5)
		for i := 1; i < len(list); i++ {
			require.Less(t, list[i-1].Name, list[i].Name, "by name")
		}
		first, err := f.List(e.A, crm.FieldDefFilter{RecordKind: crm.KindCampaign}, crm.ListOptions{Limit: 2})
		require.NoError(t, err)
		require.Equal(t, list[:2], first.Items)
		rest, err := f.List(e.A, crm.FieldDefFilter{RecordKind: crm.KindCampaign}, crm.ListOptions{Cursor: first.NextCursor})
		require.NoError(t, err)
		require.Equal(t, list[2:], rest.Items, "the next page follows")
		listB, err := f.List(e.B, crm.FieldDefFilter{RecordKind: crm.KindCampaign}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, listB.Items, "definitions are per tenant")

		// Values are validated against their definitions, each error naming
		// its field; nothing is written when any fails.
		_, err = f.Set(e.A, crm.KindCampaign, sh.campaign.ID, map[string]any{
			"platform": "myspace", "posts": "three", "launch": "next week", "exclusive": "yes",
			"brief": 42, "colour": "red",
		})
		var ve *crm.ValidationError
		require.True(t, errors.As(err, &ve), "got %v", err)
		for field, rule := range map[string]string{
			"fields.platform": "oneof", "fields.posts": "type", "fields.launch": "type",
			"fields.exclusive": "type", "fields.brief": "type", "fields.colour": "defined",
		} {
			require.True(t, ve.Has(field, rule), "%s %s in %v", field, rule, ve)
		}
		_, err = f.Set(e.A, crm.KindCampaign, sh.campaign.ID, map[string]any{"posts": math.Inf(1)})
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = f.Set(e.A, crm.KindCampaign, sh.campaign.ID, map[string]any{"posts": 3})
		require.True(t, errors.As(err, &ve))
		require.True(t, ve.Has("fields.platform", "required"), "a required field must be set: %v", ve)
		vals, err := f.Values(e.A, crm.KindCampaign, sh.campaign.ID)
		require.NoError(t, err)
		require.Empty(t, vals)

		launch := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
		vals, err = f.Set(e.A, crm.KindCampaign, sh.campaign.ID, map[string]any{
			"platform": "tiktok", "posts": json.Number("3.5"), "launch": "2027-03-01", "exclusive": true, "brief": "Short videos",
		})
		require.NoError(t, err)
		require.Equal(t, map[string]any{"platform": "tiktok", "posts": 3.5, "launch": launch, "exclusive": true, "brief": "Short videos"}, vals)
		vals, err = f.Set(e.A, crm.KindCampaign, sh.campaign.ID, map[string]any{"brief": nil, "posts": 4})
		require.NoError(t, err)
		require.NotContains(t, vals, "brief")
		require.Equal(t, 4.0, vals["posts"])
		_, err = f.Set(e.A, crm.KindCampaign, sh.campaign.ID, map[string]any{"platform": nil})
		require.ErrorIs(t, err, crm.ErrInvalid, "a required field cannot be removed")

		// Portal members read their client's values.
		_, cx := portalMember(t, e, e.A, sh.client.ID, "buyer@acme.example")
		got, err := f.Values(cx, crm.KindCampaign, sh.campaign.ID)
		require.NoError(t, err)
		require.Equal(t, vals, got)

		// Isolation: another tenant cannot reach the record.
		_, err = f.Values(e.B, crm.KindCampaign, sh.campaign.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = f.Set(e.B, crm.KindCampaign, sh.campaign.ID, map[string]any{"platform": "tiktok"})
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = f.Set(e.A, crm.KindCampaign, tenancy.NewID(), map[string]any{"platform": "tiktok"})
		require.ErrorIs(t, err, crm.ErrNotFound)

		// Deleting a definition removes its values.
		for _, d := range list {
			if d.Name == "posts" {
				require.ErrorIs(t, f.Delete(e.B, d.ID), crm.ErrNotFound)
				require.NoError(t, f.Delete(e.A, d.ID))
			}
		}
		vals, err = f.Values(e.A, crm.KindCampaign, sh.campaign.ID)
		require.NoError(t, err)
		require.NotContains(t, vals, "posts")
	})
}
