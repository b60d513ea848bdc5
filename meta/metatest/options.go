package metatest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"
)

// Option configures a Server. Options validate their arguments: New reports
// the first invalid one.
type Option func(*config) error

// ErrInvalid reports an invalid option, registration or helper argument.
var ErrInvalid = errors.New("metatest: invalid argument")

// ErrNotFound reports that a helper was given an id the emulator does not know.
var ErrNotFound = errors.New("metatest: not found")

// ErrDuplicate reports a registration whose id is already taken.
var ErrDuplicate = errors.New("metatest: already registered")

func invalid(format string, args ...any) error {
	return fmt.Errorf("metatest: %s: %w", fmt.Sprintf(format, args...), ErrInvalid)
}

type config struct {
	version         string
	strictVersion   bool
	now             func() time.Time
	logger          *slog.Logger
	client          *http.Client
	shortTTL        time.Duration
	longTTL         time.Duration
	codeTTL         time.Duration
	imageProcessing time.Duration
	videoProcessing time.Duration
	publishQuota    int
	limits          map[RateScope]RateLimit
	permissions     []string
	apps            []App
	users           []User
	pages           []Page
	igAccounts      []InstagramAccount
	media           []Media
	conversations   []Conversation
}

func defaultConfig() *config {
	return &config{
		version:         "v26.0",
		now:             time.Now,
		shortTTL:        time.Hour,
		longTTL:         60 * 24 * time.Hour,
		codeTTL:         10 * time.Minute,
		imageProcessing: 5 * time.Second,
		videoProcessing: 30 * time.Second,
		publishQuota:    100,
		limits:          map[RateScope]RateLimit{},
	}
}

var versionPattern = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// WithVersion sets the Graph API version the emulator serves, such as "v26.0".
// The default is the version current when this package was written; clients
// should pin their own and pass it here.
func WithVersion(v string) Option {
	return func(c *config) error {
		if !versionPattern.MatchString(v) {
			return invalid("WithVersion(%q): want a version like v26.0", v)
		}
		c.version = v
		return nil
	}
}

// WithStrictVersion makes the emulator reject every request whose path does
// not start with the served version, including unversioned ones, with error
// code 2500. Without it, unversioned calls and calls to older versions are
// answered as the served version, the way Meta upgrades calls to retired
// versions; calls to newer versions are always rejected.
func WithStrictVersion() Option {
	return func(c *config) error {
		c.strictVersion = true
		return nil
	}
}

// WithClock sets the time source. Server.Advance moves the emulator's time
// forward relative to it. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return invalid("WithClock(nil)")
		}
		c.now = now
		return nil
	}
}

// WithLogger logs each request (method, path and redacted query) at debug
// level. A nil logger, the default, discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithHTTPClient sets the client used for outbound deliveries (webhooks,
// deauthorize and data deletion callbacks). The default is a new http.Client
// with a 30 second timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return invalid("WithHTTPClient(nil)")
		}
		c.client = hc
		return nil
	}
}

// WithTokenLifetimes sets how long short-lived user tokens (from the code
// exchange, about one to two hours per Meta) and long-lived user tokens (from
// fb_exchange_token, about 60 days) last. Defaults: 1h and 60 days.
func WithTokenLifetimes(short, long time.Duration) Option {
	return func(c *config) error {
		if short <= 0 || long <= short {
			return invalid("WithTokenLifetimes(%v, %v): want 0 < short < long", short, long)
		}
		c.shortTTL, c.longTTL = short, long
		return nil
	}
}

// WithCodeLifetime sets how long an authorization code can be exchanged.
// Default: 10 minutes.
func WithCodeLifetime(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithCodeLifetime(%v): want a positive duration", d)
		}
		c.codeTTL = d
		return nil
	}
}

// WithContainerProcessing sets how long Instagram containers stay
// IN_PROGRESS before they are FINISHED: image for images, video for videos and
// reels. Defaults: 5s and 30s. Zero makes containers ready at once.
func WithContainerProcessing(image, video time.Duration) Option {
	return func(c *config) error {
		if image < 0 || video < 0 {
			return invalid("WithContainerProcessing(%v, %v): want durations >= 0", image, video)
		}
		c.imageProcessing, c.videoProcessing = image, video
		return nil
	}
}

// WithPublishingLimit sets the number of Instagram posts an account may
// publish through the API in a moving 24-hour period. Meta's documents
// disagree (100 in the Content Publishing guide, 50 in the reference); the
// default is 100.
func WithPublishingLimit(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return invalid("WithPublishingLimit(%d): want n > 0", n)
		}
		c.publishQuota = n
		return nil
	}
}

// WithRateLimit replaces the call budget of one rate-limit scope.
func WithRateLimit(scope RateScope, l RateLimit) Option {
	return func(c *config) error {
		if scope < RateApp || scope > RateMessenger {
			return invalid("WithRateLimit: unknown scope %d", scope)
		}
		if l.Calls <= 0 || l.Window <= 0 {
			return invalid("WithRateLimit(%v): want Calls > 0 and Window > 0", scope)
		}
		c.limits[scope] = l
		return nil
	}
}

var permissionPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// WithPermissions adds permission names the login dialog accepts besides the
// built-in list (Login, Pages, Instagram and Messenger permissions).
func WithPermissions(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if !permissionPattern.MatchString(n) {
				return invalid("WithPermissions(%q): not a permission name", n)
			}
		}
		c.permissions = append(c.permissions, names...)
		return nil
	}
}

// WithApp registers an app at construction; see Server.AddApp.
func WithApp(a App) Option {
	return func(c *config) error { c.apps = append(c.apps, a); return nil }
}

// WithUser registers a user at construction; see Server.AddUser.
func WithUser(u User) Option {
	return func(c *config) error { c.users = append(c.users, u); return nil }
}

// WithPage registers a Page at construction; see Server.AddPage.
func WithPage(p Page) Option {
	return func(c *config) error { c.pages = append(c.pages, p); return nil }
}

// WithInstagramAccount registers an Instagram professional account at
// construction; see Server.AddInstagramAccount.
func WithInstagramAccount(a InstagramAccount) Option {
	return func(c *config) error { c.igAccounts = append(c.igAccounts, a); return nil }
}

// WithMedia registers published Instagram media at construction; see
// Server.AddMedia.
func WithMedia(m Media) Option {
	return func(c *config) error { c.media = append(c.media, m); return nil }
}

// WithConversation registers a Messenger conversation at construction; see
// Server.AddConversation.
func WithConversation(cv Conversation) Option {
	return func(c *config) error { c.conversations = append(c.conversations, cv); return nil }
}
