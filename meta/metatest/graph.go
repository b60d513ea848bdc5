package metatest

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// handleGraph authenticates a Graph call and routes it to its node or edge.
func (s *Server) handleGraph(c *call) result {
	if len(c.segs) == 0 {
		return fail(errUnknownPath(c.path))
	}
	if c.segs[0] == "debug_token" && len(c.segs) == 1 {
		return s.handleDebugToken(c)
	}
	raw := accessToken(c)
	if raw == "" {
		return fail(errTokenRequired())
	}
	if c.host == hostIGGraph {
		if gerr := s.authenticateInstagram(c, raw); gerr != nil {
			return fail(gerr)
		}
	} else {
		t := s.lookupToken(raw)
		if t == nil {
			return fail(errBadToken())
		}
		if gerr := s.tokenProblem(t); gerr != nil {
			return fail(gerr)
		}
		c.tok, c.app = t, s.apps[t.appID]
		if t.kind != kindApp {
			c.grant = s.grantFor(t.appID, t.userID)
		}
		if gerr := s.checkProof(c); gerr != nil {
			return fail(gerr)
		}
	}
	t := c.tok
	id := c.segs[0]
	if id == "me" {
		switch t.kind {
		case kindUser, kindInstagram:
			id = t.userID
		case kindPage:
			id = t.pageID
		default:
			return fail(newErr(typeOAuth, 2500, 0, "An active access token must be used to query information about the current user."))
		}
	}
	target := s.rateTargetFor(id)
	if len(c.segs) >= 2 && c.segs[1] == "messages" {
		target.send = true
	}
	if gerr := s.meter(c, target); gerr != nil {
		return fail(gerr)
	}
	var edge, sub string
	if len(c.segs) >= 2 {
		edge = c.segs[1]
	}
	if len(c.segs) == 3 {
		sub = c.segs[2]
	}
	if len(c.segs) > 3 {
		return fail(errUnknownPath(c.path))
	}
	if c.host == hostIGGraph {
		// graph.instagram.com knows Instagram objects only.
		switch {
		case s.igAccounts[id] != nil && edge == "" && c.method == http.MethodGet:
			if gerr := s.canUseIG(c, id, "instagram_basic"); gerr != nil {
				return fail(gerr)
			}
			return s.fields(c, s.igUserNode(s.igAccounts[id]), "IGUser", []string{"id"}, igLoginUserFields)
		case s.users[id] != nil, s.pages[id] != nil, s.posts[id] != nil:
			return fail(errNoObject(strings.ToLower(c.method), id))
		}
	}
	switch {
	case s.ig.comments[id] != nil:
		return s.routeComment(c, id, edge, sub)
	case s.users[id] != nil:
		return s.routeUser(c, id, edge, sub)
	case s.pages[id] != nil:
		return s.routePage(c, id, edge, sub)
	case s.igAccounts[id] != nil:
		return s.routeIGUser(c, id, edge, sub)
	case s.posts[id] != nil:
		return s.routePost(c, id, edge, sub)
	case s.containers[id] != nil:
		return s.routeContainer(c, id, edge)
	case s.media[id] != nil:
		return s.routeMedia(c, id, edge, sub)
	}
	return fail(errNoObject(strings.ToLower(c.method), id))
}

// rateTargetFor tells which business use case a call on object id uses.
func (s *Server) rateTargetFor(id string) rateTarget {
	switch {
	case s.pages[id] != nil:
		return rateTarget{pageID: id}
	case s.igAccounts[id] != nil:
		return rateTarget{igID: id}
	case s.posts[id] != nil:
		return rateTarget{pageID: s.posts[id].PageID}
	case s.containers[id] != nil:
		return rateTarget{igID: s.containers[id].igID}
	case s.media[id] != nil:
		return rateTarget{igID: s.media[id].OwnerID}
	}
	return rateTarget{}
}

func (s *Server) routeUser(c *call, id, edge, sub string) result {
	switch edge {
	case "":
		if c.method != http.MethodGet {
			return fail(errNoObject(strings.ToLower(c.method), id))
		}
		u := s.users[id]
		if c.tok.kind == kindPage {
			return fail(errNoObject("get", id))
		}
		node := map[string]any{"id": u.ID, "name": u.Name}
		return s.fields(c, node, "User", []string{"id", "name"}, nil)
	case "permissions":
		return s.handlePermissions(c, id, sub)
	case "accounts":
		if sub != "" || c.method != http.MethodGet {
			return fail(errNoObject(strings.ToLower(c.method), id))
		}
		return s.handleAccounts(c, id)
	}
	return fail(errNoField(edge, "User"))
}

// fields filters node to the requested fields (default: def). Nested
// selections like instagram_business_account{id,username} apply to object
// values.
func (s *Server) fields(c *call, node map[string]any, nodeType string, def, known []string) result {
	out, gerr := selectFields(node, c.param("fields"), nodeType, def, known)
	if gerr != nil {
		return fail(gerr)
	}
	return ok(out)
}

func selectFields(node map[string]any, spec, nodeType string, def, known []string) (map[string]any, *graphError) {
	names := splitFields(spec)
	if len(names) == 0 {
		names = def
	}
	out := map[string]any{}
	for _, f := range names {
		name, inner, _ := strings.Cut(f, "{")
		inner = strings.TrimSuffix(inner, "}")
		v, present := node[name]
		if !present {
			if slices.Contains(known, name) {
				continue // a field this token may not see, or without a value
			}
			return nil, errNoField(name, nodeType)
		}
		if m, ok := v.(map[string]any); ok && inner == "" {
			if id, hasID := m["id"]; hasID {
				v = map[string]any{"id": id} // nested objects default to their id
			}
		}
		if inner != "" {
			if m, ok := v.(map[string]any); ok {
				sub, gerr := selectFields(m, inner, nodeType, nil, nil)
				if gerr != nil {
					return nil, gerr
				}
				v = sub
			}
		}
		out[name] = v
	}
	if _, ok := node["id"]; ok {
		out["id"] = node["id"]
	}
	return out, nil
}

// splitFields splits a fields parameter on top-level commas.
func splitFields(spec string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range spec {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				if f := strings.TrimSpace(spec[start:i]); f != "" {
					out = append(out, f)
				}
				start = i + 1
			}
		}
	}
	if f := strings.TrimSpace(spec[start:]); f != "" {
		out = append(out, f)
	}
	return out
}

// paginate pages items with limit and after/before cursors, the way Graph
// edges do.
func (s *Server) paginate(c *call, items []map[string]any) map[string]any {
	limit := 25
	if v, err := strconv.Atoi(c.param("limit")); err == nil && v > 0 {
		limit = min(v, 100)
	}
	start := 0
	if a := c.param("after"); a != "" {
		if i, ok := decodeCursor(a); ok {
			start = i + 1
		}
	} else if b := c.param("before"); b != "" {
		if i, ok := decodeCursor(b); ok {
			start = max(i-limit, 0)
		}
	}
	start = min(start, len(items))
	end := min(start+limit, len(items))
	page := items[start:end]
	if page == nil {
		page = []map[string]any{}
	}
	out := map[string]any{"data": page}
	if len(page) > 0 {
		paging := map[string]any{"cursors": map[string]string{
			"before": encodeCursor(start), "after": encodeCursor(end - 1),
		}}
		if end < len(items) {
			q := cloneValues(c.r.URL.Query())
			q.Del("before")
			q.Set("after", encodeCursor(end-1))
			paging["next"] = s.ts.URL + c.r.URL.Path + "?" + q.Encode()
		}
		if start > 0 {
			q := cloneValues(c.r.URL.Query())
			q.Del("after")
			q.Set("before", encodeCursor(start))
			paging["previous"] = s.ts.URL + c.r.URL.Path + "?" + q.Encode()
		}
		out["paging"] = paging
	}
	return out
}

func encodeCursor(i int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("metatest:" + strconv.Itoa(i)))
}

func decodeCursor(s string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	rest, found := strings.CutPrefix(string(b), "metatest:")
	if !found {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0
}

// filterItems applies fields to each item of a list.
func filterItems(items []map[string]any, spec, nodeType string, def, known []string) ([]map[string]any, *graphError) {
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		f, gerr := selectFields(it, spec, nodeType, def, known)
		if gerr != nil {
			return nil, gerr
		}
		out = append(out, f)
	}
	return out, nil
}

func hasTask(p *page, userID string, tasks ...string) bool {
	for _, t := range p.Tasks[userID] {
		if slices.Contains(tasks, t) {
			return true
		}
	}
	return false
}
