package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
)

// navItem is one link of the console's navigation.
type navItem struct{ Href, Label string }

var consoleNav = []navItem{
	{"/console/", "Overview"}, {"/console/contacts", "Contacts"}, {"/console/tasks", "Tasks"}, {"/console/deals", "Deals"},
	{"/console/invoices", "Invoices"}, {"/console/proposals", "Proposals"}, {"/console/inbox", "Inbox"},
	{"/console/connections", "Accounts"}, {"/console/privacy", "Privacy requests"}, {"/console/datamap", "Data map"},
	{"/console/team", "Team"}, {"/console/keys", "API keys"}, {"/console/settings", "Settings"},
}

// navFor is the navigation a role sees: a client member its client's
// proposals and invoices, a creator the accounts it connects; the team's
// roles everything.
func navFor(role tenancy.Role) []navItem {
	var keep []string
	switch role {
	case tenancy.RoleClient:
		keep = []string{"/console/", "/console/invoices", "/console/proposals"}
	case tenancy.RoleCreator:
		keep = []string{"/console/", "/console/connections"}
	default:
		return consoleNav
	}
	var out []navItem
	for _, n := range consoleNav {
		if slices.Contains(keep, n.Href) {
			out = append(out, n)
		}
	}
	return out
}

// Staff reports whether the signed-in member works for the organization
// (owner, admin or staff), not a client or a creator it invited.
func (p *page) Staff() bool {
	return p.Role == tenancy.RoleOwner || p.Role == tenancy.RoleAdmin || p.Role == tenancy.RoleStaff
}

// navCurrent reports whether href is the section of path.
func navCurrent(path, href string) bool {
	if href == "/console/" {
		return path == href
	}
	return path == href || strings.HasPrefix(path, href+"/")
}

// connKind tells connections apart: the Facebook user who logged in, a
// Facebook Page, an Instagram account, a TikTok account.
func connKind(c social.Connection) string {
	switch {
	case c.Platform == tiktok.Platform:
		return "TikTok account"
	case c.Platform == meta.PlatformInstagram || isInstagram(c) || c.Scopes.Has(meta.PermInstagramBusinessBasic):
		return "Instagram account"
	case c.Platform == meta.Platform && c.ParentID == "":
		return "Facebook user (login)"
	case c.Platform == meta.Platform:
		return "Facebook Page"
	}
	return c.Platform
}

// scopeFeatures names what groups of platform permissions let the console do.
var scopeFeatures = []struct {
	label  string
	scopes []string
}{
	{"profile", []string{tiktok.ScopeUserInfoBasic, "user.info.profile", meta.PermInstagramBasic, meta.PermInstagramBusinessBasic, "public_profile"}},
	{"follower counts", []string{"user.info.stats"}},
	{"videos", []string{"video.list"}},
	{"post videos", []string{tiktok.ScopeVideoPublish}},
	{"upload drafts", []string{"video.upload"}},
	{"list Pages", []string{meta.PermPagesShowList}},
	{"insights", []string{meta.PermPagesReadEngagement, meta.PermInstagramManageInsights, meta.PermInstagramBusinessManageInsights, "read_insights"}},
	{"post to the Page", []string{meta.PermPagesManagePosts}},
	{"Messenger inbox", []string{meta.PermPagesMessaging}},
	{"post to Instagram", []string{meta.PermInstagramContentPublish, meta.PermInstagramBusinessContentPublish}},
	{"comments", []string{meta.PermInstagramManageComments, meta.PermInstagramBusinessManageComments, meta.PermPagesManageEngagement, meta.PermPagesReadUserEngagement}},
}

// scopeSummary says in a few words what a connection's scopes allow; the
// full list stays one click away.
func scopeSummary(s social.Scopes) []string {
	var out []string
	for _, f := range scopeFeatures {
		for _, sc := range f.scopes {
			if sc != "" && s.Has(sc) {
				out = append(out, f.label)
				break
			}
		}
	}
	return out
}

// privacyLabel names a TikTok privacy level as TikTok's app does.
func privacyLabel(level string) string {
	switch level {
	case "PUBLIC_TO_EVERYONE":
		return "Everyone"
	case "MUTUAL_FOLLOW_FRIENDS":
		return "Friends (followers you follow back)"
	case "FOLLOWER_OF_CREATOR":
		return "Followers"
	case "SELF_ONLY":
		return "Only me"
	}
	return level
}

// moneyInput formats minor units for an input field: "120.50".
func moneyInput(amount int64, currency string) string {
	if zeroDecimal[currency] {
		return fmt.Sprint(amount)
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d", sign, amount/100, amount%100)
}

func contactStages() []string {
	return []string{string(crm.StageLead), string(crm.StageQualified), string(crm.StageOpportunity), string(crm.StageCustomer), string(crm.StageInactive)}
}

// canSeeRequests: owners, admins and staff handle privacy requests.
func canSeeRequests(p *page) bool {
	return p.Role == tenancy.RoleOwner || p.Role == tenancy.RoleAdmin || p.Role == tenancy.RoleStaff
}

type settingsView struct {
	Platforms []struct{ Name, Mode string }
	Policy    string
	// Grace is how long a closed organization's data stays: the
	// retention policy's closure grace, in words.
	Grace string
}

// graceWords says a grace period in days ("30 days"), or as a duration
// when it is not whole days.
func graceWords(d time.Duration) string {
	switch {
	case d == 24*time.Hour:
		return "1 day"
	case d > 0 && d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return d.String()
}

func (a *app) consoleSettings(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Settings"
	v := &settingsView{Policy: a.sdk.Retention.DataMap().Policy, Grace: graceWords(a.sdk.Retention.Policy().ClosureGrace)}
	for _, name := range []string{"tiktok", "meta"} {
		m := a.modes()[name]
		label := "live"
		if m == "sandbox" {
			label = "sandbox (emulated platform: nothing reaches the real one)"
		}
		v.Platforms = append(v.Platforms, struct{ Name, Mode string }{map[string]string{"tiktok": "TikTok", "meta": "Meta"}[name], label})
	}
	p.Data = v
	return nil
}

type roleInfo struct {
	Role tenancy.Role
	Does string
}

var roleInfos = []roleInfo{
	{tenancy.RoleOwner, "everything, including closing the organization and adding owners"},
	{tenancy.RoleAdmin, "everything but closing the organization; adds members"},
	{tenancy.RoleStaff, "the day-to-day work: contacts, inbox, deals, invoices, privacy requests"},
	{tenancy.RoleClient, "an agency's client: sees only its own proposals and invoices here (and its campaigns through the API)"},
	{tenancy.RoleCreator, "a creator who connects their own accounts through a link"},
}

type teamView struct {
	Members    []tenancy.Member
	Roles      []roleInfo
	CanAdd     bool
	Assignable []tenancy.Role
	// Invitable are the roles a new member may get: Assignable, and a
	// client's member (who names its client) or a creator.
	Invitable []tenancy.Role
	// Clients are the clients a client's member may belong to.
	Clients []crm.Client
	// Failed is the member whose role form failed: its select keeps the
	// role that was picked.
	Failed string
	// Self is the signed-in member.
	Self string
	// owner: the viewer is an owner (an admin cannot change an owner).
	owner bool
}

// CanRemove reports whether the viewer may remove m: owners and admins
// may, but only an owner may remove an owner.
func (v *teamView) CanRemove(m tenancy.Member) bool {
	return v.CanAdd && (v.owner || m.Role != tenancy.RoleOwner)
}

// CanChange reports whether the viewer may change m's role here: as
// CanRemove, among owner, admin and staff (a client's role is tied to its
// client relationship; a creator connects accounts through a link).
func (v *teamView) CanChange(m tenancy.Member) bool {
	return v.CanRemove(m) && m.Role != tenancy.RoleClient && m.Role != tenancy.RoleCreator
}

func (a *app) consoleTeam(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Team"
	v := &teamView{Roles: roleInfos, CanAdd: p.Role == tenancy.RoleOwner || p.Role == tenancy.RoleAdmin, owner: p.Role == tenancy.RoleOwner}
	if prin, ok := tenancy.FromContext(r.Context()); ok {
		v.Self = prin.MemberID
	}
	v.Assignable = []tenancy.Role{tenancy.RoleStaff, tenancy.RoleAdmin}
	if p.Role == tenancy.RoleOwner {
		v.Assignable = append(v.Assignable, tenancy.RoleOwner)
	}
	v.Invitable = append(slices.Clone(v.Assignable), tenancy.RoleClient, tenancy.RoleCreator)
	p.Data = v
	var err error
	if v.Members, err = a.sdk.Tenants.Members(r.Context()); err != nil || !v.CanAdd {
		return err
	}
	v.Clients, err = a.clients(r.Context())
	return err
}

func (a *app) consoleAddMember(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleTeam(w, r, p); err != nil {
		return err
	}
	n := tenancy.NewMember{Name: strings.TrimSpace(r.FormValue("name")), Email: strings.TrimSpace(r.FormValue("email")),
		Role: tenancy.Role(r.FormValue("role")), Password: r.FormValue("password")}
	clientName := strings.TrimSpace(r.FormValue("client_name"))
	var v validator
	v.check(slices.Contains(p.Data.(*teamView).Invitable, n.Role), "role", "owner, admin, staff, client or creator")
	v.check(passwordProblem(n.Password) == "", "password", passwordProblem(n.Password))
	if n.Role == tenancy.RoleClient {
		n.ClientID = r.FormValue("client_id")
		v.check(n.ClientID != "" || clientName != "", "client_id", "a client's member belongs to a client: choose one, or name a new one")
		v.check(n.ClientID == "" || tenancy.ValidateID(n.ClientID) == nil, "client_id", "choose a client from the list")
	}
	if err := v.err(); err != nil {
		return err
	}
	if n.Role == tenancy.RoleClient {
		return a.addClientMember(w, r, n, clientName)
	}
	m, err := a.sdk.Tenants.AddMember(r.Context(), n)
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/team", "Added "+m.Name+" as "+string(m.Role)+".")
}

// consoleSetRole changes a member's role. The member's sessions end (they
// carry the role they were signed in with): they sign in again with the
// new one, and so does a member who changed their own role.
func (a *app) consoleSetRole(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleTeam(w, r, p); err != nil {
		return err
	}
	id := r.PathValue("id")
	if tenancy.ValidateID(id) != nil {
		return errNotFound("member")
	}
	p.Data.(*teamView).Failed = id
	role := tenancy.Role(r.FormValue("role"))
	var v validator
	v.check(role == tenancy.RoleStaff || role == tenancy.RoleAdmin || role == tenancy.RoleOwner, "role", "owner, admin or staff")
	if err := v.err(); err != nil {
		return err
	}
	// "Change" pressed on the role a member has already: nothing changes,
	// and nobody is signed out.
	for _, m := range p.Data.(*teamView).Members {
		if m.ID == id && m.Role == role {
			return a.seeOther(w, r, "/console/team", "No change: "+m.Name+" is "+string(role)+" already.")
		}
	}
	m, err := a.sdk.Tenants.SetRole(r.Context(), id, role)
	if err != nil {
		return err
	}
	if err := a.tokens.revokeMember(r.Context(), id); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/team", m.Name+" is now "+string(m.Role)+".")
}

// consoleRemoveMember removes a member, with the API keys they created
// (tenancy revokes them) and every session they have (ended here: the
// sessions table is the server's). A member already removed gets their
// sessions ended all the same, so that a retry after a failed revocation
// completes it.
func (a *app) consoleRemoveMember(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleTeam(w, r, p); err != nil {
		return err
	}
	id := r.PathValue("id")
	if tenancy.ValidateID(id) != nil {
		return errNotFound("member")
	}
	if err := confirmed(r); err != nil {
		return err
	}
	err := a.sdk.Tenants.RemoveMember(r.Context(), id)
	if err != nil && !errors.Is(err, tenancy.ErrNotFound) {
		return err
	}
	if err := a.tokens.revokeMember(r.Context(), id); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/team", "Member removed; their API keys are revoked and their sessions ended.")
}

// revokeMember ends every live session of the context tenant's member id.
func (t *tokens) revokeMember(ctx context.Context, id string) error {
	return tenancy.RunInTx(ctx, t.db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model((*session)(nil)).Set("revoked_at = ?", t.now()).
			Where("member_id = ?", id).Where("revoked_at IS NULL").Exec(ctx)
		return err
	})
}

// addClientMember adds a client's member and links it to its client (a
// new one when clientName is set), so that it sees that client's
// proposals and invoices at once. A step that fails undoes the ones
// before it: no client without its member, no member left unlinked.
func (a *app) addClientMember(w http.ResponseWriter, r *http.Request, n tenancy.NewMember, clientName string) error {
	ctx := r.Context()
	undo := func(err error, steps ...func(context.Context) error) error {
		for _, s := range steps {
			if uerr := s(context.WithoutCancel(ctx)); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
		return err
	}
	var undoClient []func(context.Context) error
	if n.ClientID == "" {
		c, err := a.sdk.CRM.Clients().Create(ctx, crm.ClientInput{Name: clientName})
		if err != nil {
			return err
		}
		n.ClientID = c.ID
		undoClient = append(undoClient, func(ctx context.Context) error { return a.sdk.CRM.Clients().Delete(ctx, c.ID) })
	}
	m, err := a.sdk.Tenants.AddMember(ctx, n)
	if err != nil {
		return undo(err, undoClient...)
	}
	if _, err := a.sdk.CRM.Clients().Link(ctx, n.ClientID, m.ID); err != nil {
		return undo(err, append([]func(context.Context) error{func(ctx context.Context) error { return a.sdk.Tenants.RemoveMember(ctx, m.ID) }}, undoClient...)...)
	}
	return a.seeOther(w, r, "/console/team", "Added "+m.Name+" as a client's member: they see that client's proposals and invoices.")
}
