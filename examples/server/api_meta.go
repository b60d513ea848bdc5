package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
)

// metaStart begins Facebook Login: the answer's authorize_url is the login
// dialog (the emulator's in sandbox mode).
func (a *app) metaStart(w http.ResponseWriter, r *http.Request) error {
	u, err := a.plat.metaFlow.Begin(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"authorize_url": u, "scopes": a.plat.metaFlow.Scopes(),
		"redirect_uri": a.plat.metaCfg.RedirectURL, "mode": mode(a.plat.metaSandbox)})
	return nil
}

// metaConnect completes the login with the redirect's query and connects
// every Page the user manages, and the Instagram account behind each; a
// Page connected with the messaging permissions is subscribed to the
// Messenger webhook fields, without which a real Page sends the inbox
// nothing (a failure is logged: the Page stays connected).
func (a *app) metaConnect(ctx context.Context, q url.Values) (social.Connection, []meta.PageConnection, error) {
	user, err := a.plat.metaFlow.Complete(ctx, q)
	if err != nil {
		return user, nil, err
	}
	sess, err := a.sdk.Social.Session(ctx, user.ID, a.plat.metaProv)
	if err != nil {
		return user, nil, err
	}
	pages, err := a.plat.metaProv.ConnectPages(ctx, sess)
	for _, pc := range pages {
		if pc.Err != nil || social.Require(pc.Connection.Scopes, meta.PermPagesMessaging, meta.PermPagesManageMetadata) != nil {
			continue
		}
		if serr := a.subscribePage(ctx, pc); serr != nil {
			a.log.WarnContext(ctx, "meta: page not subscribed to webhooks", "page", pc.PageID, "err", serr)
		}
	}
	return user, pages, err
}

// subscribePage subscribes the app to the Page's Messenger webhook fields.
func (a *app) subscribePage(ctx context.Context, pc meta.PageConnection) error {
	c, err := a.plat.metaClient(ctx, a.sdk.Social, pc.Connection.ID)
	if err != nil {
		return err
	}
	_, err = c.Pages.Subscribe(ctx, pc.PageID, meta.MessengerFields())
	return err
}

type pageView struct {
	PageID    string             `json:"page_id"`
	Name      string             `json:"name"`
	Page      *social.Connection `json:"page,omitempty"`
	Instagram *social.Connection `json:"instagram,omitempty"`
	Error     string             `json:"error,omitempty"`
}

func (a *app) metaComplete(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CallbackURL string `json:"callback_url"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	u, err := url.Parse(req.CallbackURL)
	if err != nil || req.CallbackURL == "" || u.Query().Get("state") == "" {
		return errInvalid(fieldProblem{Field: "callback_url", Problem: "must be the redirect URL with its state and code (or error)"})
	}
	user, pages, err := a.metaConnect(r.Context(), u.Query())
	if err != nil {
		return err
	}
	views := make([]pageView, 0, len(pages))
	for _, pc := range pages {
		v := pageView{PageID: pc.PageID, Name: pc.Name, Instagram: pc.Instagram}
		if pc.Err != nil {
			v.Error = "not connected: " + pc.Err.Error()
		} else {
			v.Page = &pc.Connection
		}
		views = append(views, v)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"connection": user, "declined": user.Declined(), "pages": views})
	return nil
}

// isInstagram tells an Instagram account's connection from a Page's or a
// Facebook user's: ConnectPages names it after the @username.
func isInstagram(c social.Connection) bool {
	return c.Platform == meta.Platform && strings.HasPrefix(c.DisplayName, "@")
}

type metaPublishInput struct {
	Message  string `json:"message"`
	Link     string `json:"link"`
	PhotoURL string `json:"photo_url"`
	ImageURL string `json:"image_url"`
	Caption  string `json:"caption"`
}

func (in metaPublishInput) validate(instagram bool) error {
	var v validator
	if instagram {
		v.check(isHTTPURL(in.ImageURL), "image_url", "an http(s) URL of the image is required for Instagram")
		v.check(len(in.Caption) <= 2200, "caption", "at most 2200 characters")
		v.check(in.Message == "" && in.Link == "" && in.PhotoURL == "", "message", "Instagram posts take image_url and caption")
	} else {
		v.check(in.Message != "" || in.Link != "" || in.PhotoURL != "", "message", "a Page post needs a message, a link or a photo_url")
		v.check(len(in.Message) <= 63206, "message", "at most 63206 characters")
		v.check(in.Link == "" || isHTTPURL(in.Link), "link", "must be an http(s) URL")
		v.check(in.PhotoURL == "" || isHTTPURL(in.PhotoURL), "photo_url", "must be an http(s) URL")
		v.check(in.ImageURL == "" && in.Caption == "", "image_url", "Page posts take message, link and photo_url")
	}
	return v.err()
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && len(s) <= 2048
}

// publishMeta publishes to the connection's Page, or its Instagram account,
// at the user's instruction (each publish is audited by the client).
func (a *app) publishMeta(ctx context.Context, c social.Connection, in metaPublishInput) (map[string]any, error) {
	if c.Platform != meta.Platform {
		return nil, errInvalid(fieldProblem{Field: "id", Problem: "not a Meta connection"})
	}
	ig := isInstagram(c)
	if err := in.validate(ig); err != nil {
		return nil, err
	}
	client, err := a.plat.metaClient(ctx, a.sdk.Social, c.ID)
	if err != nil {
		return nil, err
	}
	if ig {
		m, _, err := client.Instagram.Publish(ctx, c.AccountID, meta.MediaRequest{ImageURL: in.ImageURL, Caption: in.Caption,
			PollInterval: time.Second, Timeout: time.Minute})
		if err != nil {
			return nil, err
		}
		return map[string]any{"instagram_media": m, "mode": mode(a.plat.metaSandbox)}, nil
	}
	post, _, err := client.Pages.Publish(ctx, c.AccountID, meta.PostRequest{Message: in.Message, Link: in.Link, PhotoURL: in.PhotoURL})
	if err != nil {
		return nil, err
	}
	return map[string]any{"page_post": post, "mode": mode(a.plat.metaSandbox)}, nil
}

func (a *app) metaPublish(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	var in metaPublishInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	out, err := a.publishMeta(r.Context(), c, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// syncMeta syncs a Page or Instagram account (snapshot, posts and their
// insights) or a Facebook user's profile.
func (a *app) syncMeta(ctx context.Context, c social.Connection) (*social.SyncResult, error) {
	client, err := a.plat.metaClient(ctx, a.sdk.Social, c.ID)
	if err != nil {
		return nil, err
	}
	r, _, err := client.Sync(ctx)
	return r, err
}
