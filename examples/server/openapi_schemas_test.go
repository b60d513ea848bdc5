package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
)

var updateSchemas = flag.Bool("update", false, "rewrite the generated schemas of openapi.yaml")

// schemasMarker starts the generated part of openapi.yaml: the schemas of
// the Go types the API reads and writes, and of its envelopes.
const schemasMarker = "    # Generated from the Go types by TestOpenAPISchemas (go test -run TestOpenAPISchemas -update): do not edit below.\n"

// TestOpenAPISchemas checks that the schemas at the end of openapi.yaml are
// those of the Go types the handlers encode and decode today: a field
// added to a record is a field of its schema, or this test fails (and
// -update rewrites them).
func TestOpenAPISchemas(t *testing.T) {
	t.Parallel()
	got := string(openapiYAML)
	i := strings.Index(got, schemasMarker)
	require.GreaterOrEqual(t, i, 0, "openapi.yaml lacks the marker of its generated schemas")
	want := got[:i] + schemasMarker + generateSchemas(t)
	if *updateSchemas {
		require.NoError(t, os.WriteFile("openapi.yaml", []byte(want), 0o644))
		return
	}
	require.Equal(t, want, got, "openapi.yaml's schemas are stale: go test -run TestOpenAPISchemas -update ./examples/server")
}

// schemaGen turns Go types into JSON Schemas as encoding/json writes
// them (read) or the handlers decode them (write: nothing required).
type schemaGen struct {
	defs  map[string]any
	names map[reflect.Type]string
}

type node = map[string]any

func ref(name string) node { return node{"$ref": "#/components/schemas/" + name} }

var (
	timeType  = reflect.TypeFor[time.Time]()
	rawType   = reflect.TypeFor[json.RawMessage]()
	textType  = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMType = reflect.TypeFor[json.Marshaler]()
)

// nullable allows null besides s (Go's nil slices, maps and pointers).
func nullable(s node) node {
	if t, ok := s["type"].(string); ok {
		s["type"] = []any{t, "null"}
		return s
	}
	return node{"oneOf": []any{s, node{"type": "null"}}}
}

// schema is the schema of t; named structs become components (Name, or
// NameWrite in write mode).
func (g *schemaGen) schema(t reflect.Type, write bool) node {
	if t == timeType {
		return node{"type": "string", "format": "date-time"}
	}
	if t == rawType || t.Kind() == reflect.Interface {
		return node{}
	}
	if t.Kind() != reflect.Pointer && t.Implements(jsonMType) {
		switch t {
		case reflect.TypeFor[social.Count]():
			return node{"type": []any{"integer", "null"}, "description": "null: the platform did not report it"}
		case reflect.TypeFor[meta.Timestamp]():
			return node{"type": []any{"string", "null"}, "format": "date-time"}
		case reflect.TypeFor[tenancy.Hash]():
			return node{"type": "string", "description": "always redacted"}
		}
		panic(fmt.Sprintf("no schema for %s: it encodes itself", t))
	}
	if t.Kind() != reflect.Pointer && t.Implements(textType) {
		return node{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.schema(t.Elem(), write))
	case reflect.String:
		return node{"type": "string"}
	case reflect.Bool:
		return node{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return node{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return node{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return node{"type": "string", "contentEncoding": "base64"}
		}
		s := node{"type": "array", "items": g.schema(t.Elem(), write)}
		if t.Kind() == reflect.Slice {
			return nullable(s)
		}
		return s
	case reflect.Map:
		return nullable(node{"type": "object", "additionalProperties": g.schema(t.Elem(), write)})
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t, write)
		}
		name := g.name(t)
		if write {
			name += "Write"
		}
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // recursion guard
			g.defs[name] = g.object(t, write)
		}
		return ref(name)
	}
	panic(fmt.Sprintf("no schema for %s", t))
}

// name is a component name for t: its Go name, with its package's when
// two packages share it.
func (g *schemaGen) name(t reflect.Type) string {
	if n, ok := g.names[t]; ok {
		return n
	}
	n := t.Name()
	if i := strings.IndexByte(n, '['); i >= 0 { // crm.Page[crm.Contact]
		n = n[:i]
	}
	for other, on := range g.names {
		if on == n && other != t {
			pkg := t.PkgPath()[strings.LastIndexByte(t.PkgPath(), '/')+1:]
			n = strings.ToUpper(pkg[:1]) + pkg[1:] + n
		}
	}
	g.names[t] = n
	return n
}

// object lists a struct's JSON members: every member without omitempty is
// required in what the server writes.
func (g *schemaGen) object(t reflect.Type, write bool) node {
	props := node{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			s := g.schema(f.Type, write)
			if strings.Contains(opts, "string") {
				s = node{"type": "string"}
			}
			props[name] = s
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := node{"type": "object", "additionalProperties": false, "properties": props}
	if len(required) > 0 && !write {
		slices.Sort(required)
		out["required"] = required
	}
	return out
}

// Envelope helpers: an object with required members, a page of items.
func obj(members ...any) node {
	props := node{}
	var required []string
	for i := 0; i < len(members); i += 2 {
		name := members[i].(string)
		if opt, ok := strings.CutSuffix(name, "?"); ok {
			name = opt
		} else {
			required = append(required, name)
		}
		props[name] = members[i+1]
	}
	out := node{"type": "object", "additionalProperties": false, "properties": props}
	if len(required) > 0 {
		slices.Sort(required)
		out["required"] = required
	}
	return out
}

func arr(items node) node { return node{"type": "array", "items": items} }

var (
	strS  = func() node { return node{"type": "string"} }
	integ = func() node { return node{"type": "integer"} }
	modes = func() node {
		return node{"type": "object", "additionalProperties": node{"type": "string", "enum": []any{"sandbox", "live"}}}
	}
)

// out is the first result type of a function value.
func out(fn any) reflect.Type { return reflect.TypeOf(fn).Out(0) }

func elem(t reflect.Type) reflect.Type { // a page's or slice's item type
	if t.Kind() == reflect.Slice {
		return t.Elem()
	}
	f, _ := t.FieldByName("Items")
	return f.Type.Elem()
}

// generateSchemas renders the components the document refers to.
func generateSchemas(t *testing.T) string {
	a := newTestApp(t)
	g := &schemaGen{defs: map[string]any{}, names: map[reflect.Type]string{
		reflect.TypeFor[pair]():        "TokenPair",
		reflect.TypeFor[pageView]():    "MetaPageResult",
		reflect.TypeFor[jobReport]():   "JobReport",
		reflect.TypeFor[loginChoice](): "LoginChoice",
	}}
	read := func(x any) node {
		if rt, ok := x.(reflect.Type); ok {
			return g.schema(rt, false)
		}
		return g.schema(reflect.TypeOf(x), false)
	}
	write := func(x any) node { return g.schema(reflect.TypeOf(x), true) }
	s := a.sdk.CRM
	env := map[string]node{}
	// Records of the CRUD routes: {name: T}, a page of them, and the body
	// of a create (T) or an update (T with its version).
	kinds := []struct {
		name, schema string
		typ          reflect.Type
		input        any // the body type, when it differs from the record's
		paged        bool
	}{
		{"contact", "Contact", out(s.Contacts().Get), crm.ContactInput{}, true},
		{"company", "Company", out(s.Companies().Get), crm.CompanyInput{}, true},
		{"pipeline", "Pipeline", out(s.Pipelines().Get), crm.PipelineInput{}, true},
		{"deal", "Deal", out(s.Deals().Get), crm.DealInput{}, true},
		{"activity", "Activity", out(s.Activities().Get), crm.ActivityInput{}, true},
		{"task", "Task", out(s.Tasks().Get), crm.TaskInput{}, true},
		{"note", "Note", out(s.Notes().Get), crm.NoteInput{}, true},
		{"client", "Client", out(s.Clients().Get), crm.ClientInput{}, true},
		{"campaign", "Campaign", out(s.Campaigns().Get), crm.CampaignInput{}, true},
		{"proposal", "Proposal", out(s.Proposals().Get), crm.ProposalInput{}, true},
		{"invoice", "Invoice", out(s.Invoices().Get), crm.InvoiceInput{}, true},
		{"field", "FieldDef", out(s.Fields().Define), nil, false},
	}
	for _, k := range kinds {
		env[k.schema+"Envelope"] = obj(k.name, read(k.typ))
		if k.paged {
			env[k.schema+"Page"] = obj("items", arr(read(k.typ)), "next_cursor?", strS())
		}
		if k.input != nil && k.name != "field" {
			body := write(k.input)
			env[k.schema+"Create"] = body
			in := g.defs[strings.TrimPrefix(body["$ref"].(string), "#/components/schemas/")].(node)
			upd := node{}
			for key, v := range in {
				upd[key] = v
			}
			props := node{"version": node{"type": "integer", "minimum": 1, "description": "the version you read"}}
			for key, v := range in["properties"].(node) {
				props[key] = v
			}
			// The record's own members, which a client sends back with
			// what it read, are ignored.
			if k.name != "proposal" {
				for key := range g.defs[g.name(k.typ)].(node)["properties"].(node) {
					if _, ok := props[key]; !ok {
						props[key] = node{"description": "set by the server: ignored on update"}
					}
				}
			}
			upd["properties"] = props
			upd["required"] = []string{"version"}
			env[k.schema+"Update"] = upd
		} else if k.name != "field" {
			g.schema(k.typ, true) // <schema>Write, the body of create and update
		}
	}
	env["FieldDefList"] = obj("items", arr(read(elem(out(s.Fields().List)))), "next_cursor?", strS())
	page := func(fn any) node { return obj("items", arr(read(elem(out(fn)))), "next_cursor?", strS()) }
	env["StageChangeList"] = page(s.Deals().History)
	env["ConsentList"] = obj("items", arr(read(out(s.Consents().Current).Elem())))
	env["ConsentEventList"] = page(s.Consents().History)
	env["ConsentEnvelope"] = obj("consent", read(out(s.Consents().Grant)))
	env["ProposalRevisionList"] = page(s.Proposals().Revisions)
	env["ProposalEventList"] = page(s.Proposals().History)
	env["ClientMemberIDs"] = page(s.Clients().Members)
	env["ClientMemberEnvelope"] = obj("link", read(out(s.Clients().Link)))
	env["MemberList"] = obj("items", arr(read(out(a.sdk.Tenants.Members).Elem())))
	env["MemberEnvelope"] = obj("member", read(tenancy.Member{}))
	env["FieldValues"] = obj("values", node{"type": "object", "additionalProperties": node{}})
	env["ImportReportEnvelope"] = obj("report", read(out(s.Contacts().ImportCSV)))
	env["ConversationPage"] = obj("items", arr(read(elem(out(s.Conversations().List)))), "next_cursor?", strS())
	env["MessagePage"] = obj("conversation", read(out(s.Conversations().Get)),
		"items", arr(read(elem(out(s.Conversations().Messages)))), "next_cursor?", strS())
	stored, _ := out(a.reply).Elem().FieldByName("Stored")
	env["ReplyResult"] = obj("message", read(stored.Type), "message_id", strS())

	// Bodies of the moves and links (as the handlers declare them).
	env["DealStageMove"] = write(struct {
		version
		Stage string `json:"stage"`
	}{})
	env["ConsentChangeBody"] = write(struct {
		Channel crm.Channel `json:"channel"`
		Purpose crm.Purpose `json:"purpose"`
		Source  string      `json:"source"`
	}{})
	env["ClientMemberLink"] = write(struct {
		MemberID string `json:"member_id"`
	}{})
	env["MemberCreate"] = write(struct {
		Email    string       `json:"email"`
		Name     string       `json:"name"`
		Role     tenancy.Role `json:"role"`
		ClientID string       `json:"client_id"`
		Password string       `json:"password"`
	}{})
	env["ProposalRevise"] = write(struct {
		version
		crm.ProposalContent
	}{})
	env["ProposalStatusMove"] = write(struct {
		version
		Status crm.ProposalStatus `json:"status"`
		Note   string             `json:"note"`
	}{})
	env["InvoiceMove"] = write(invoiceMove{})
	env["FieldValuesBody"] = write(struct {
		Values map[string]any `json:"values"`
	}{})

	// Sign-up, sessions, keys, tenant.
	env["SignupResult"] = obj("tenant", read(tenancy.Tenant{}), "owner", read(tenancy.Member{}), "session", read(pair{}))
	env["LoginResult"] = obj("tenant_id?", strS(), "member_id?", strS(), "role?", strS(), "session?", read(pair{}),
		"choose?", arr(read(loginChoice{})), "ticket?", strS())
	env["RefreshResult"] = obj("session", read(pair{}))
	env["Me"] = obj("tenant", read(tenancy.Tenant{}), "member_id", strS(), "role", strS(), "mode", modes())
	env["APIKeyList"] = obj("api_keys", arr(read(tenancy.APIKey{})))
	env["APIKeyCreated"] = obj("key", strS(), "api_key", read(tenancy.APIKey{}), "note", strS())
	env["TenantEnvelope"] = obj("tenant", read(tenancy.Tenant{}))
	env["AuditLog"] = obj("entries", read(out(a.sdk.Audit.List)), "verified_head", read(out(a.sdk.Audit.Verify)),
		"checked_at", node{"type": "string", "format": "date-time"})

	// Operations.
	env["Health"] = obj("status", strS(), "mode", modes())
	env["Ready"] = obj("status", strS(), "mode?", modes(), "jobs?", read(jobReport{}))
	env["SandboxInfo"] = obj("mode", modes(), "tiktok_accounts?", arr(strS()))

	// Connections.
	conn := read(social.Connection{})
	env["ConnectionList"] = obj("connections", arr(conn), "mode", modes())
	env["ConnectionEnvelope"] = obj("connection", conn, "declined", read(out(social.Connection{}.Declined)))
	env["Disconnected"] = obj("connection", conn, "disconnected", arr(conn))
	env["AuthorizeStart"] = obj("authorize_url", strS(), "scopes", read(out(a.plat.tiktokFlow.Scopes)), "redirect_uri", strS(), "mode", strS())
	env["MetaConnected"] = obj("connection", conn, "declined", read(out(social.Connection{}.Declined)), "pages", arr(read(pageView{})))
	snapshot, _ := reflect.TypeFor[social.SyncResult]().FieldByName("Snapshot")
	env["SyncResult"] = obj("snapshot", read(snapshot.Type), "media", integ(), "requests?", integ())
	env["Insights"] = obj("connection_id", strS(), "follower_trend", arr(read(social.Snapshot{})), "media", arr(read(social.Media{})),
		"engagement_rate", read(out(social.EngagementRate)))
	env["TikTokPublishStatus"] = obj("publish_id", strS(), "status", read(out(tiktokStatusOf)), "mode?", strS(), "video_id?", strS())
	env["MetaPublished"] = obj("instagram_media?", read(out(metaIGMediaOf)), "page_post?", read(out(metaPostOf)), "mode", strS())

	read(out(a.callbacks.DeletionStatus)) // DeletionStatus

	// Privacy.
	env["PrivacyRequestEnvelope"] = obj("request", read(retention.Request{}))
	env["PrivacyRequestList"] = obj("requests", arr(read(retention.Request{})), "next_cursor?", strS())
	env["ErasureReceipt"] = obj("receipt", read(retention.Receipt{}))
	read(out(a.sdk.Retention.DataMap))
	g.schema(reflect.TypeFor[crm.FieldDefInput](), true)

	for name, s := range env {
		_, clash := g.defs[name]
		require.False(t, clash, "envelope %s has the name of a type's schema", name)
		g.defs[name] = s
	}
	var buf bytes.Buffer
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range g.defs {
			if !yield(k) {
				return
			}
		}
	}) {
		var one bytes.Buffer
		enc := yaml.NewEncoder(&one)
		enc.SetIndent(2)
		require.NoError(t, enc.Encode(map[string]any{name: g.defs[name]}))
		for line := range strings.Lines(one.String()) {
			buf.WriteString("    " + line)
		}
	}
	return buf.String()
}

// Result types of the platform calls whose answers the API passes on.
var (
	tiktokStatusOf = (*tiktok.PostingService).Status
	metaIGMediaOf  = (*meta.InstagramService).Publish
	metaPostOf     = (*meta.PagesService).Publish
)
