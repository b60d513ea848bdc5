package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// A shared sandbox: with -sandbox-only the server runs only the platform
// emulators and a small control API; replicas started with -sandbox-url
// use those emulators instead of in-process ones, so that an OAuth flow
// begun on one replica finishes on another, and every replica sees the
// same emulated accounts. -public-url names where the replicas are reached
// (their load balancer): the emulated apps send OAuth redirects and
// webhooks there.
//
// The control API (JSON):
//
//	GET  /sandbox                      the emulators' endpoints
//	GET  /sandbox/requests?platform=tiktok|meta&path=P[&method=M]
//	                                   how many requests the emulator served at path P
//	                                   (Meta: with method M only, when given)
//	POST /sandbox/tiktok/deauthorize   {"client_key", "open_id"}: the user removes the app
//	POST /sandbox/tiktok/grow          {"open_id"}: the account gains followers
//	GET  /sandbox/meta/subscriptions?app=A&page=P
//	POST /sandbox/meta/message         {"app_id", "callback_url", "page_id", "psid", "text"}

// sandboxEndpoints is what GET /sandbox answers.
type sandboxEndpoints struct {
	TikTok struct {
		BaseURL      string `json:"base_url"`
		AuthorizeURL string `json:"authorize_url"`
	} `json:"tiktok"`
	Meta struct {
		GraphURL  string `json:"graph_url"`
		DialogURL string `json:"dialog_url"`
		Version   string `json:"version"`
	} `json:"meta"`
}

// sandboxControl is what the server asks of the emulators beyond the
// platforms' APIs: in-process (localSandbox) or in a sandbox process
// (remoteSandbox).
type sandboxControl interface {
	grow(ctx context.Context, openID string)
	deauthorize(ctx context.Context, clientKey, openID string) error
	subscriptions(ctx context.Context, appID, pageID string) ([]string, error)
	deliverMessage(ctx context.Context, appID, callbackURL, pageID, psid, text string) error
}

// localSandbox controls emulators running in this process.
type localSandbox struct {
	tiktok *tiktoktest.Server
	meta   *metatest.Server
}

func (l localSandbox) grow(_ context.Context, openID string) {
	if l.tiktok == nil {
		return
	}
	_ = l.tiktok.UpdateUser(openID, func(u *tiktoktest.User) {
		u.FollowerCount += 10 + u.FollowerCount/50
		u.LikesCount += 100
	})
}

func (l localSandbox) deauthorize(ctx context.Context, clientKey, openID string) error {
	if l.tiktok == nil {
		return errNotFound("sandbox")
	}
	return l.tiktok.Deauthorize(ctx, clientKey, openID, 1)
}

func (l localSandbox) subscriptions(_ context.Context, appID, pageID string) ([]string, error) {
	if l.meta == nil {
		return nil, errNotFound("sandbox")
	}
	return l.meta.Subscriptions(appID, pageID), nil
}

func (l localSandbox) deliverMessage(ctx context.Context, appID, callbackURL, pageID, psid, text string) error {
	if l.meta == nil {
		return errNotFound("sandbox")
	}
	_, err := l.meta.SendWebhook(ctx, appID, callbackURL, metatest.TextMessage(pageID, psid, text))
	return err
}

// remoteSandbox controls the emulators of a sandbox process.
type remoteSandbox struct {
	url string
	hc  *http.Client
}

func (r remoteSandbox) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("sandbox: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (r remoteSandbox) grow(ctx context.Context, openID string) {
	_ = r.call(ctx, "POST", "/sandbox/tiktok/grow", map[string]string{"open_id": openID}, nil)
}

func (r remoteSandbox) deauthorize(ctx context.Context, clientKey, openID string) error {
	return r.call(ctx, "POST", "/sandbox/tiktok/deauthorize", map[string]string{"client_key": clientKey, "open_id": openID}, nil)
}

func (r remoteSandbox) subscriptions(ctx context.Context, appID, pageID string) ([]string, error) {
	var out struct {
		Fields []string `json:"fields"`
	}
	err := r.call(ctx, "GET", "/sandbox/meta/subscriptions?"+url.Values{"app": {appID}, "page": {pageID}}.Encode(), nil, &out)
	return out.Fields, err
}

func (r remoteSandbox) deliverMessage(ctx context.Context, appID, callbackURL, pageID, psid, text string) error {
	return r.call(ctx, "POST", "/sandbox/meta/message", map[string]string{"app_id": appID, "callback_url": callbackURL,
		"page_id": pageID, "psid": psid, "text": text}, nil)
}

// dialSandbox reads a sandbox process's endpoints, retrying for a few
// seconds while it starts.
func dialSandbox(ctx context.Context, base string) (remoteSandbox, sandboxEndpoints, error) {
	r := remoteSandbox{url: strings.TrimSuffix(base, "/"), hc: &http.Client{Timeout: 30 * time.Second}}
	var ep sandboxEndpoints
	var err error
	for range 50 {
		if err = r.call(ctx, "GET", "/sandbox", nil, &ep); err == nil {
			return r, ep, nil
		}
		select {
		case <-ctx.Done():
			return r, ep, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return r, ep, err
}

// runSandbox serves the emulators and their control API on ln until ctx
// ends.
func runSandbox(ctx context.Context, cfg config, ln net.Listener, stdout io.Writer, log *slog.Logger) error {
	if cfg.PublicURL == "" {
		ln.Close()
		return errors.New("-sandbox-only needs -public-url: where the replicas are reached, for OAuth redirects and webhooks")
	}
	if cfg.SandboxURL != "" || cfg.TikTokKey != "" || cfg.MetaAppID != "" {
		ln.Close()
		return errors.New("-sandbox-only runs the emulators: no -sandbox-url and no platform credentials")
	}
	p, err := startPlatforms(cfg, strings.TrimSuffix(cfg.PublicURL, "/"), log)
	if err != nil {
		ln.Close()
		return err
	}
	defer p.close()
	srv := &http.Server{Handler: sandboxMux(p), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	fmt.Fprintf(stdout, "socialcrm sandbox listening on http://%s (tiktok: %s, meta: %s)\n", ln.Addr(), p.tiktokSrv.BaseURL(), p.metaSrv.GraphURL())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// sandboxMux is the sandbox process's control API.
func sandboxMux(p *platforms) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, status int, err error) {
		reply(w, status, map[string]any{"error": map[string]string{"code": "sandbox", "message": err.Error()}})
	}
	decode := func(w http.ResponseWriter, r *http.Request, v any) bool {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(v); err != nil {
			fail(w, http.StatusBadRequest, err)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /sandbox", func(w http.ResponseWriter, r *http.Request) {
		var ep sandboxEndpoints
		ep.TikTok.BaseURL, ep.TikTok.AuthorizeURL = p.tiktokSrv.BaseURL(), p.tiktokSrv.AuthorizeURL()
		ep.Meta.GraphURL, ep.Meta.DialogURL, ep.Meta.Version = p.metaSrv.GraphURL(), p.metaSrv.DialogURL(), p.metaSrv.Version()
		reply(w, http.StatusOK, ep)
	})
	mux.HandleFunc("GET /sandbox/requests", func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Query().Get("path")
		n := 0
		switch r.URL.Query().Get("platform") {
		case "tiktok":
			n = len(p.tiktokSrv.RequestsTo(path))
		case "meta":
			method := r.URL.Query().Get("method")
			for _, q := range p.metaSrv.Requests() {
				if q.Path == path && (method == "" || q.Method == method) {
					n++
				}
			}
		default:
			fail(w, http.StatusBadRequest, errors.New("platform must be tiktok or meta"))
			return
		}
		reply(w, http.StatusOK, map[string]int{"count": n})
	})
	local := localSandbox{tiktok: p.tiktokSrv, meta: p.metaSrv}
	mux.HandleFunc("POST /sandbox/tiktok/grow", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			OpenID string `json:"open_id"`
		}
		if decode(w, r, &in) {
			local.grow(r.Context(), in.OpenID)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("POST /sandbox/tiktok/deauthorize", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ClientKey string `json:"client_key"`
			OpenID    string `json:"open_id"`
		}
		if !decode(w, r, &in) {
			return
		}
		if err := local.deauthorize(r.Context(), in.ClientKey, in.OpenID); err != nil {
			fail(w, http.StatusBadGateway, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sandbox/meta/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		fields, _ := local.subscriptions(r.Context(), r.URL.Query().Get("app"), r.URL.Query().Get("page"))
		reply(w, http.StatusOK, map[string][]string{"fields": fields})
	})
	mux.HandleFunc("POST /sandbox/meta/message", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			AppID       string `json:"app_id"`
			CallbackURL string `json:"callback_url"`
			PageID      string `json:"page_id"`
			PSID        string `json:"psid"`
			Text        string `json:"text"`
		}
		if !decode(w, r, &in) {
			return
		}
		if err := local.deliverMessage(r.Context(), in.AppID, in.CallbackURL, in.PageID, in.PSID, in.Text); err != nil {
			fail(w, http.StatusBadGateway, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// subscribed reports whether the sandbox Page subscribed appID to field.
func subscribed(ctx context.Context, s sandboxControl, appID, pageID, field string) (bool, error) {
	fields, err := s.subscriptions(ctx, appID, pageID)
	return slices.Contains(fields, field), err
}
