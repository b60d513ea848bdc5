package metatest

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"
)

// RateScope names a rate limit the emulator enforces.
type RateScope int

const (
	// RateApp is the platform limit per app (code 4, X-App-Usage). Meta's
	// budget is 200 calls per user per rolling hour; the default counts
	// registered users.
	RateApp RateScope = iota + 1
	// RateUser is the limit per app and user (code 17). Off by default.
	RateUser
	// RatePage is the business use case limit per Page (code 32 with user
	// tokens, 80001 with Page tokens; X-Page-Usage and
	// X-Business-Use-Case-Usage type "pages"). Default 4800 calls per 24h.
	RatePage
	// RateInstagram is the business use case limit per Instagram account
	// (code 80002; type "instagram"). Default 4800 calls per 24h.
	RateInstagram
	// RateMessenger is the Send API limit per Page (code 613; type
	// "messenger"). Default 200 calls per 24h per conversation of the Page.
	RateMessenger
)

func (r RateScope) String() string {
	switch r {
	case RateApp:
		return "RateApp"
	case RateUser:
		return "RateUser"
	case RatePage:
		return "RatePage"
	case RateInstagram:
		return "RateInstagram"
	case RateMessenger:
		return "RateMessenger"
	}
	return fmt.Sprintf("RateScope(%d)", int(r))
}

// RateLimit is a call budget over a rolling window.
type RateLimit struct {
	Calls  int
	Window time.Duration
}

type callRecord struct {
	at     time.Time
	scope  RateScope
	key    string // app id, app|user, page id, IG id
	appID  string
	userID string
}

// limitFor returns the budget of a scope for a key, or false when the scope
// is unlimited.
func (s *Server) limitFor(scope RateScope, key string) (RateLimit, bool) {
	if l, ok := s.cfg.limits[scope]; ok {
		return l, true
	}
	switch scope {
	case RateApp:
		n := max(len(s.users), 1)
		return RateLimit{Calls: 200 * n, Window: time.Hour}, true
	case RatePage, RateInstagram:
		return RateLimit{Calls: 4800, Window: 24 * time.Hour}, true
	case RateMessenger:
		n := 0
		for k := range s.conversations {
			if k.pageID == key {
				n++
			}
		}
		return RateLimit{Calls: 200 * max(n, 1), Window: 24 * time.Hour}, true
	}
	return RateLimit{}, false
}

// count returns the calls recorded for scope and key within the window, and
// the time of the oldest of them.
func (s *Server) count(scope RateScope, key string, window time.Duration) (int, time.Time) {
	now := s.nowLocked()
	n := 0
	var oldest time.Time
	for _, c := range s.calls {
		if c.scope != scope || c.key != key || !c.at.After(now.Add(-window)) || c.at.After(now) {
			continue
		}
		if n == 0 || c.at.Before(oldest) {
			oldest = c.at
		}
		n++
	}
	return n, oldest
}

func (s *Server) pruneCalls() {
	now := s.nowLocked()
	longest := 24 * time.Hour
	for _, l := range s.cfg.limits {
		longest = max(longest, l.Window)
	}
	keep := s.calls[:0]
	for _, c := range s.calls {
		if c.at.After(now.Add(-longest)) {
			keep = append(keep, c)
		}
	}
	s.calls = keep
}

type usage struct {
	CallCount    int `json:"call_count"`
	TotalCPUTime int `json:"total_cputime"`
	TotalTime    int `json:"total_time"`
}

type bucUsage struct {
	Type                        string `json:"type"`
	CallCount                   int    `json:"call_count"`
	TotalCPUTime                int    `json:"total_cputime"`
	TotalTime                   int    `json:"total_time"`
	EstimatedTimeToRegainAccess int    `json:"estimated_time_to_regain_access"`
}

func (s *Server) percent(scope RateScope, key string) (pct int, regain int) {
	l, ok := s.limitFor(scope, key)
	if !ok {
		return 0, 0
	}
	n, oldest := s.count(scope, key, l.Window)
	pct = n * 100 / l.Calls
	if n >= l.Calls {
		wait := oldest.Add(l.Window).Sub(s.nowLocked())
		regain = int((wait + time.Minute - 1) / time.Minute)
	}
	return pct, regain
}

// rateTarget is what a Graph call is counted against besides the app.
type rateTarget struct {
	pageID string // Page whose business use case the call uses
	igID   string // Instagram account
	send   bool   // a Send API call
}

// meter records a call, sets the usage headers and reports an exhausted
// budget. Calls over the limit are still recorded: Meta asks clients to stop
// calling because further calls extend the block.
func (s *Server) meter(c *call, t rateTarget) *graphError {
	s.pruneCalls()
	now := s.nowLocked()
	tok := c.tok
	rec := func(scope RateScope, key string) {
		s.calls = append(s.calls, callRecord{at: now, scope: scope, key: key, appID: tok.appID, userID: tok.userID})
	}
	userToken := tok.kind == kindUser || tok.kind == kindApp
	if userToken {
		rec(RateApp, tok.appID) // platform limits count user and app tokens
	}
	if tok.kind == kindUser {
		rec(RateUser, tok.appID+"|"+tok.userID)
	}
	buc := map[string][]bucUsage{}
	if t.pageID != "" {
		rec(RatePage, t.pageID)
	}
	if t.igID != "" {
		rec(RateInstagram, t.igID)
	}
	if t.send {
		rec(RateMessenger, t.pageID)
	}

	if userToken {
		appPct, _ := s.percent(RateApp, tok.appID)
		c.header.Set("X-App-Usage", mustJSON(usage{appPct, appPct, appPct}))
	}
	if t.pageID != "" {
		p, regain := s.percent(RatePage, t.pageID)
		buc[t.pageID] = append(buc[t.pageID], bucUsage{Type: "pages", CallCount: p, TotalCPUTime: p, TotalTime: p, EstimatedTimeToRegainAccess: regain})
		if tok.kind == kindPage {
			c.header.Set("X-Page-Usage", mustJSON(usage{p, p, p}))
		}
	}
	if t.igID != "" {
		p, regain := s.percent(RateInstagram, t.igID)
		buc[t.igID] = append(buc[t.igID], bucUsage{Type: "instagram", CallCount: p, TotalCPUTime: p, TotalTime: p, EstimatedTimeToRegainAccess: regain})
	}
	if t.send {
		p, regain := s.percent(RateMessenger, t.pageID)
		buc[t.pageID] = append(buc[t.pageID], bucUsage{Type: "messenger", CallCount: p, TotalCPUTime: p, TotalTime: p, EstimatedTimeToRegainAccess: regain})
	}
	if len(buc) > 0 {
		c.header.Set("X-Business-Use-Case-Usage", mustJSON(buc))
	}

	over := func(scope RateScope, key string) bool {
		l, ok := s.limitFor(scope, key)
		if !ok {
			return false
		}
		n, _ := s.count(scope, key, l.Window)
		return n > l.Calls
	}
	switch {
	case userToken && over(RateApp, tok.appID):
		return limitErr(4)
	case tok.kind == kindUser && over(RateUser, tok.appID+"|"+tok.userID):
		return limitErr(17)
	case t.send && over(RateMessenger, t.pageID):
		return limitErr(613)
	case t.igID != "" && over(RateInstagram, t.igID):
		return limitErr(80002)
	case t.pageID != "" && over(RatePage, t.pageID):
		if userToken {
			return limitErr(32)
		}
		return limitErr(80001)
	}
	return nil
}

func limitErr(code int) *graphError {
	e := newErr(typeOAuth, code, 0, standardMessage(code))
	e.IsTransient = true
	return e
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// Fault makes the next Count requests matching Method and Path fail with the
// given Graph error, before any other processing.
type Fault struct {
	// Method matches the HTTP method; empty matches any.
	Method string
	// Path matches the request path without the version prefix, as a
	// path.Match pattern: "/me/accounts", "/*/feed", "/oauth/access_token".
	Path string
	// Count is how many requests fail; at least 1.
	Count int

	Status    int    // HTTP status; defaults by code as Meta does (mostly 400)
	Code      int    // Graph error code, such as 1, 2, 4, 190, 613; required
	Subcode   int    // error_subcode; 0 leaves it out
	Type      string // defaults to OAuthException
	Message   string // defaults to Meta's message for Code
	Transient bool   // is_transient; rate limit and service codes are always transient
	// Acted makes the emulator carry the request out before it answers
	// with the error, as Meta may when it fails after acting: a Send API
	// message delivered and answered with code 1200 ("Temporary send
	// message failure") or a 5xx. Without it nothing is carried out.
	// Acted applies to Graph API calls (not to the OAuth dialog and token
	// endpoints, which always fail before acting).
	Acted bool
}

type fault struct {
	Fault
	left int
}

// InjectFault arms a fault. Faults are checked in the order injected.
func (s *Server) InjectFault(f Fault) error {
	if f.Count < 1 {
		return invalid("InjectFault: Count %d", f.Count)
	}
	if f.Code == 0 {
		return invalid("InjectFault: Code is required")
	}
	if !strings.HasPrefix(f.Path, "/") {
		return invalid("InjectFault: Path %q must start with /", f.Path)
	}
	if _, err := path.Match(f.Path, "/"); err != nil {
		return invalid("InjectFault: Path %q: %v", f.Path, err)
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		return invalid("InjectFault: Status %d", f.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{Fault: f, left: f.Count})
	return nil
}

// takeFault returns the Graph error of the first armed fault matching
// method and p, and whether the request is to be carried out first
// (Fault.Acted).
func (s *Server) takeFault(method, p string) (*graphError, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if ok, _ := path.Match(f.Path, p); !ok {
			continue
		}
		f.left--
		if f.left <= 0 {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		typ := f.Type
		if typ == "" {
			typ = typeOAuth
		}
		msg := f.Message
		if msg == "" {
			msg = standardMessage(f.Code)
		}
		e := newErr(typ, f.Code, f.Subcode, msg)
		e.IsTransient = f.Transient || transientCode(f.Code)
		e.status = f.Status
		return e, f.Acted
	}
	return nil, false
}

// PendingFaults reports how many injected failures have not fired yet.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.left
	}
	return n
}
