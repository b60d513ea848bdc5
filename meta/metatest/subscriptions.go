package metatest

import (
	"net/http"
	"slices"
	"strings"
)

// subKey names an app's webhook subscription on a Page.
type subKey struct{ pageID, appID string }

// pageWebhookFields are the fields a Page subscription may name: the
// Messenger fields and the Page's own.
var pageWebhookFields = []string{
	"messages", "messaging_postbacks", "messaging_optins", "message_deliveries", "message_reads",
	"message_echoes", "messaging_referrals", "messaging_handovers", "messaging_policy_enforcement",
	"message_reactions", "feed", "mention", "name", "picture", "ratings",
}

// Subscriptions returns the webhook fields appID is subscribed to on
// pageID through POST /{page-id}/subscribed_apps, sorted (nil: none).
func (s *Server) Subscriptions(appID, pageID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.subscriptions[subKey{pageID, appID}])
}

// subscribedApps serves /{page-id}/subscribed_apps as documented: a Page
// token of a person with the MODERATE or MANAGE task (CREATE_CONTENT too
// for reading) and pages_manage_metadata (and pages_show_list to read,
// pages_messaging to subscribe Messenger fields). POST subscribes the
// calling app to subscribed_fields, GET lists the apps subscribed with
// their fields, DELETE unsubscribes the calling app.
func (s *Server) subscribedApps(c *call, p *page) result {
	if c.tok.kind != kindPage || c.tok.pageID != p.ID {
		return fail(errPageTokenRequired210())
	}
	const msg = "(#200) Requires pages_manage_metadata permission to manage the object"
	key := subKey{p.ID, c.app.ID}
	switch c.method {
	case http.MethodGet:
		if !c.grant.has("pages_manage_metadata", "pages_show_list") || !hasTask(p, c.tok.userID, TaskCreateContent, TaskModerate, TaskManage) {
			return fail(errPermission(200, msg))
		}
		var data []any
		var keys []subKey
		for k := range s.subscriptions {
			if k.pageID == p.ID {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b subKey) int { return strings.Compare(a.appID, b.appID) })
		for _, k := range keys {
			a := s.apps[k.appID]
			name := k.appID
			if a != nil {
				name = a.Name
			}
			data = append(data, map[string]any{"id": k.appID, "name": name, "category": "Business",
				"link": "https://www.facebook.com/games/?app_id=" + k.appID, "subscribed_fields": s.subscriptions[k]})
		}
		if data == nil {
			data = []any{}
		}
		return ok(map[string]any{"data": data})
	case http.MethodPost:
		if !c.grant.has("pages_manage_metadata") || !hasTask(p, c.tok.userID, TaskModerate, TaskManage) {
			return fail(errPermission(200, msg))
		}
		raw := c.param("subscribed_fields")
		if raw == "" {
			return fail(errParam("(#100) The parameter subscribed_fields is required"))
		}
		var fields []string
		for _, f := range strings.Split(raw, ",") {
			f = strings.TrimSpace(f)
			if !slices.Contains(pageWebhookFields, f) {
				return fail(errParam("(#100) Param subscribed_fields must be one of {" + strings.Join(pageWebhookFields, ", ") + "} - got \"" + f + "\""))
			}
			if strings.HasPrefix(f, "messag") && !c.grant.has("pages_messaging") {
				return fail(errPermission(200, "(#200) To subscribe to the "+f+" field, one of these permissions is needed: pages_messaging"))
			}
			fields = append(fields, f)
		}
		slices.Sort(fields)
		s.subscriptions[key] = slices.Compact(fields)
		return ok(map[string]any{"success": true})
	case http.MethodDelete:
		if !c.grant.has("pages_manage_metadata") || !hasTask(p, c.tok.userID, TaskModerate, TaskManage) {
			return fail(errPermission(200, msg))
		}
		delete(s.subscriptions, key)
		return ok(map[string]any{"success": true})
	}
	return fail(errNoObject(strings.ToLower(c.method), p.ID))
}
