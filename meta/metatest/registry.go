package metatest

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// App is a Meta app as configured in the App Dashboard.
type App struct {
	ID     string // required
	Secret string // required; never logged
	Name   string // defaults to "App <ID>"

	// RedirectURIs are the "Valid OAuth redirect URIs". The dialog and the
	// code exchange require an exact match (Strict Mode).
	RedirectURIs []string

	// VerifyToken is the token Meta sends as hub.verify_token when it
	// verifies the app's webhook endpoint.
	VerifyToken string

	// RequireAppSecretProof mirrors App Settings > Advanced > Require App
	// Secret: every call with a user or Page token must carry a valid
	// appsecret_proof.
	RequireAppSecretProof bool

	// HumanAgent grants the Human Agent feature, which allows the
	// HUMAN_AGENT message tag.
	HumanAgent bool
}

// User is a Facebook user.
type User struct {
	ID   string // required; the app-scoped user id
	Name string
	// Granted lists permissions the user has already granted to every
	// registered app; tokens from UserToken carry them.
	Granted []string
	// Declined lists permissions the user declines whenever the login dialog
	// asks for them.
	Declined []string
}

// Page task names as listed in /me/accounts.
const (
	TaskAnalyze       = "ANALYZE"
	TaskAdvertise     = "ADVERTISE"
	TaskMessaging     = "MESSAGING"
	TaskModerate      = "MODERATE"
	TaskCreateContent = "CREATE_CONTENT"
	TaskManage        = "MANAGE"
)

// AllTasks returns the tasks a Page admin has.
func AllTasks() []string {
	return []string{TaskAnalyze, TaskAdvertise, TaskMessaging, TaskModerate, TaskCreateContent, TaskManage}
}

// Page is a Facebook Page.
type Page struct {
	ID       string // required
	Name     string
	Category string
	// Tasks maps user ids to the tasks each person can perform on the Page
	// (TaskAnalyze, …). People without an entry have no role.
	Tasks          map[string][]string
	FollowersCount int
	FanCount       int
}

// InstagramAccount is an Instagram professional account, linked to a Page
// or (for Instagram Login only) not.
type InstagramAccount struct {
	ID string // required; the IG user id
	// PageID is the linked Page. An account without one is reached
	// only with Instagram Login (InstagramConsent, InstagramToken).
	PageID            string
	Username          string
	Name              string
	Biography         string
	Website           string
	ProfilePictureURL string
	FollowersCount    int
	FollowsCount      int
	// MediaCount counts media that exist besides those registered with
	// AddMedia or published through the emulator; media_count adds them.
	MediaCount int
}

// Media is a published Instagram media object.
type Media struct {
	ID               string // required
	OwnerID          string // required; the IG user id
	Caption          string
	MediaType        string // IMAGE (default), VIDEO or CAROUSEL_ALBUM
	MediaProductType string // FEED (default), REELS or STORY
	MediaURL         string
	Permalink        string
	Timestamp        time.Time // defaults to the emulator's now
	LikeCount        int
	CommentsCount    int
	// LikesHidden leaves like_count out of the media's answers, as Meta
	// does when the owner hides like counts.
	LikesHidden bool
}

// Conversation is a Messenger conversation between a Page and a person.
type Conversation struct {
	PageID string // required
	PSID   string // required; the Page-scoped id of the person
	Name   string
	// LastUserMessage is when the person last messaged the Page; the standard
	// messaging window runs 24 hours from it. Zero means never.
	LastUserMessage time.Time
}

type app struct {
	App
}

type user struct {
	User
	sessionGen int
}

type page struct {
	Page
}

type grantKey struct{ appID, userID string }

type grant struct {
	perms     map[string]string // permission -> granted | declined
	installed bool
	gen       int
}

func (g *grant) has(perms ...string) bool {
	if g == nil {
		return false
	}
	for _, p := range perms {
		if g.perms[p] != "granted" {
			return false
		}
	}
	return true
}

type convKey struct{ pageID, psid string }

// AddApp registers an app.
func (s *Server) AddApp(a App) error {
	if a.ID == "" || strings.ContainsAny(a.ID, "|/") {
		return invalid("AddApp: ID %q", a.ID)
	}
	if a.Secret == "" {
		return invalid("AddApp %s: empty Secret", a.ID)
	}
	if a.Name == "" {
		a.Name = "App " + a.ID
	}
	a.RedirectURIs = slices.Clone(a.RedirectURIs)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apps[a.ID] != nil {
		return fmt.Errorf("metatest: AddApp %s: %w", a.ID, ErrDuplicate)
	}
	s.apps[a.ID] = &app{App: a}
	for _, u := range s.users {
		s.seedGrant(a.ID, u)
	}
	return nil
}

// AddUser registers a user.
func (s *Server) AddUser(u User) error {
	if u.ID == "" || strings.Contains(u.ID, "/") {
		return invalid("AddUser: ID %q", u.ID)
	}
	for _, p := range append(slices.Clone(u.Granted), u.Declined...) {
		if !s.knownPermission(p) {
			return invalid("AddUser %s: unknown permission %q", u.ID, p)
		}
	}
	if u.Name == "" {
		u.Name = "User " + u.ID
	}
	u.Granted, u.Declined = slices.Clone(u.Granted), slices.Clone(u.Declined)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[u.ID] != nil {
		return fmt.Errorf("metatest: AddUser %s: %w", u.ID, ErrDuplicate)
	}
	nu := &user{User: u}
	s.users[u.ID] = nu
	for id := range s.apps {
		s.seedGrant(id, nu)
	}
	return nil
}

// seedGrant records a user's pre-granted permissions for an app.
func (s *Server) seedGrant(appID string, u *user) {
	if len(u.Granted) == 0 {
		return
	}
	g := s.grantFor(appID, u.ID)
	g.installed = true
	g.perms["public_profile"] = "granted"
	for _, p := range u.Granted {
		g.perms[p] = "granted"
	}
}

func (s *Server) grantFor(appID, userID string) *grant {
	k := grantKey{appID, userID}
	g := s.grants[k]
	if g == nil {
		g = &grant{perms: map[string]string{}}
		s.grants[k] = g
	}
	return g
}

// AddPage registers a Page.
func (s *Server) AddPage(p Page) error {
	if p.ID == "" || strings.ContainsAny(p.ID, "/_") {
		return invalid("AddPage: ID %q", p.ID)
	}
	if p.Name == "" {
		p.Name = "Page " + p.ID
	}
	if p.Category == "" {
		p.Category = "Business"
	}
	tasks := make(map[string][]string, len(p.Tasks))
	for uid, ts := range p.Tasks {
		for _, t := range ts {
			if !slices.Contains(AllTasks(), t) {
				return invalid("AddPage %s: unknown task %q", p.ID, t)
			}
		}
		tasks[uid] = slices.Clone(ts)
	}
	p.Tasks = tasks
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pages[p.ID] != nil {
		return fmt.Errorf("metatest: AddPage %s: %w", p.ID, ErrDuplicate)
	}
	for uid := range p.Tasks {
		if s.users[uid] == nil {
			return fmt.Errorf("metatest: AddPage %s: user %s: %w", p.ID, uid, ErrNotFound)
		}
	}
	s.pages[p.ID] = &page{Page: p}
	return nil
}

// AddInstagramAccount registers an Instagram professional account and links
// it to its Page.
func (s *Server) AddInstagramAccount(a InstagramAccount) error {
	if a.ID == "" || strings.Contains(a.ID, "/") {
		return invalid("AddInstagramAccount: ID %q", a.ID)
	}
	if a.Username == "" {
		a.Username = "ig_" + a.ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.igAccounts[a.ID] != nil {
		return fmt.Errorf("metatest: AddInstagramAccount %s: %w", a.ID, ErrDuplicate)
	}
	if a.PageID != "" && s.pages[a.PageID] == nil {
		return fmt.Errorf("metatest: AddInstagramAccount %s: page %q: %w", a.ID, a.PageID, ErrNotFound)
	}
	if other, ok := s.igByPage[a.PageID]; ok && a.PageID != "" {
		return invalid("AddInstagramAccount %s: page %s is already linked to %s", a.ID, a.PageID, other)
	}
	acct := a
	s.igAccounts[a.ID] = &acct
	if a.PageID != "" {
		s.igByPage[a.PageID] = a.ID
	}
	return nil
}

// AddMedia registers a published Instagram media object.
func (s *Server) AddMedia(m Media) error {
	if m.ID == "" || strings.Contains(m.ID, "/") {
		return invalid("AddMedia: ID %q", m.ID)
	}
	switch m.MediaType {
	case "":
		m.MediaType = "IMAGE"
	case "IMAGE", "VIDEO", "CAROUSEL_ALBUM":
	default:
		return invalid("AddMedia %s: MediaType %q", m.ID, m.MediaType)
	}
	switch m.MediaProductType {
	case "":
		m.MediaProductType = "FEED"
	case "FEED", "REELS", "STORY":
	default:
		return invalid("AddMedia %s: MediaProductType %q", m.ID, m.MediaProductType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.media[m.ID] != nil {
		return fmt.Errorf("metatest: AddMedia %s: %w", m.ID, ErrDuplicate)
	}
	if s.igAccounts[m.OwnerID] == nil {
		return fmt.Errorf("metatest: AddMedia %s: owner %q: %w", m.ID, m.OwnerID, ErrNotFound)
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = s.nowLocked()
	}
	if m.Permalink == "" {
		m.Permalink = "https://www.instagram.com/p/" + m.ID + "/"
	}
	s.media[m.ID] = &media{Media: m}
	s.mediaOrder = append(s.mediaOrder, m.ID)
	return nil
}

// AddConversation registers a Messenger conversation. Registering one that
// exists updates its name and last user message time.
func (s *Server) AddConversation(c Conversation) error {
	if c.PageID == "" || c.PSID == "" {
		return invalid("AddConversation: PageID %q, PSID %q", c.PageID, c.PSID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pages[c.PageID] == nil {
		return fmt.Errorf("metatest: AddConversation: page %q: %w", c.PageID, ErrNotFound)
	}
	cv := c
	s.conversations[convKey{c.PageID, c.PSID}] = &cv
	return nil
}

// SetMetric sets the value an insights metric reports for a Page, Page post,
// or Instagram media id. value is usually an int; some metrics report
// objects (maps). Every day of a range reports the same value. Metrics that
// were never set report 0 on Pages and posts and are left out for Instagram
// media, as Meta does when data is unavailable.
func (s *Server) SetMetric(objectID, metric string, value any) error {
	if objectID == "" || metric == "" {
		return invalid("SetMetric(%q, %q)", objectID, metric)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.metricValues[objectID]
	if m == nil {
		m = map[string]any{}
		s.metricValues[objectID] = m
	}
	m[metric] = value
	return nil
}

// RetireMetric makes the insights endpoints reject metric from now on, as if
// Meta had just deprecated it. Use it to exercise a client's fallbacks.
func (s *Server) RetireMetric(metric string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retiredExtra[metric] = true
}

// ChangePassword simulates the user changing their password: every token
// issued for them so far, user and Page, fails with code 190, subcode 460.
func (s *Server) ChangePassword(userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		return fmt.Errorf("metatest: ChangePassword: user %q: %w", userID, ErrNotFound)
	}
	u.sessionGen++
	return nil
}

// RemovePageRole removes the user's role on the Page: their Page tokens fail
// with code 190, subcode 492, and the Page leaves their /me/accounts.
func (s *Server) RemovePageRole(pageID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[pageID]
	if p == nil {
		return fmt.Errorf("metatest: RemovePageRole: page %q: %w", pageID, ErrNotFound)
	}
	if _, ok := p.Tasks[userID]; !ok {
		return fmt.Errorf("metatest: RemovePageRole: user %q has no role on page %s: %w", userID, pageID, ErrNotFound)
	}
	delete(p.Tasks, userID)
	return nil
}
