package main

import (
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
)

// maxVideo bounds uploads through the example server.
const maxVideo = 64 << 20

func (a *app) listConnections(w http.ResponseWriter, r *http.Request) error {
	conns, err := a.connections(r.Context(), social.ConnectionFilter{Platform: r.URL.Query().Get("platform")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": conns, "mode": a.modes()})
	return nil
}

// connections returns every connection of the context's tenant that f
// keeps, walking the SDK's pages: a tenant connects a handful of accounts.
func (a *app) connections(ctx context.Context, f social.ConnectionFilter) ([]social.Connection, error) {
	conns := []social.Connection{}
	for c, err := range a.sdk.Social.All(ctx, f, social.ListOptions{Limit: social.MaxLimit}) {
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// connection loads the path's connection of the context's tenant.
func (a *app) connection(r *http.Request) (social.Connection, error) {
	id := r.PathValue("id")
	if tenancy.ValidateID(id) != nil {
		return social.Connection{}, errNotFound("connection")
	}
	return a.sdk.Social.Get(r.Context(), id)
}

func (a *app) getConnection(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"connection": c, "declined": c.Declined()})
	return nil
}

// disconnect revokes at the platform, deletes the tokens and starts the
// retention clock of the connection's data.
func (a *app) disconnect(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	if err := tenancy.Require(r.Context(), tenancy.RoleOwner, tenancy.RoleAdmin, tenancy.RoleStaff, tenancy.RoleCreator); err != nil {
		return err
	}
	done, err := a.disconnectConnection(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"connection": done[len(done)-1], "disconnected": done})
	return nil
}

// disconnectConnection revokes and deletes a connection's tokens; for a
// Facebook user, its Pages' and Instagram accounts' too. The connection
// itself is last in the answer.
func (a *app) disconnectConnection(ctx context.Context, c social.Connection) ([]social.Connection, error) {
	if _, ok := a.sdk.Social.Provider(c.Platform); !ok {
		return nil, &apiError{Status: http.StatusNotImplemented, Code: "platform_unavailable", Message: "platform " + c.Platform + " is not wired in this server"}
	}
	derived, err := a.sdk.Social.Derived(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	d, err := a.sdk.Social.Disconnect(ctx, c.ID, nil) // the registered provider; derived connections first
	if err != nil {
		return nil, err
	}
	var out []social.Connection
	for _, x := range derived {
		if x, err = a.sdk.Social.Get(ctx, x.ID); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return append(out, d), nil
}

// tiktokStart begins the OAuth flow: the answer's authorize_url is the
// platform's consent page (the emulator's in sandbox mode).
func (a *app) tiktokStart(w http.ResponseWriter, r *http.Request) error {
	u, err := a.plat.tiktokFlow.Begin(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"authorize_url": u, "scopes": a.plat.tiktokFlow.Scopes(),
		"redirect_uri": a.plat.tiktokCfg.RedirectURL, "mode": mode(a.plat.tiktokSandbox)})
	return nil
}

// tiktokComplete finishes the flow for API clients with the query of the
// redirect to redirect_uri (the console's callback does it for browsers).
func (a *app) tiktokComplete(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CallbackURL string `json:"callback_url"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	u, err := url.Parse(req.CallbackURL)
	if err != nil || req.CallbackURL == "" || (u.Query().Get("state") == "") {
		return errInvalid(fieldProblem{Field: "callback_url", Problem: "must be the redirect URL with its state and code (or error)"})
	}
	c, err := a.plat.tiktokFlow.Complete(r.Context(), u.Query())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"connection": c, "declined": c.Declined()})
	return nil
}

func (a *app) syncTikTok(ctx context.Context, c social.Connection) (*social.SyncResult, tiktok.SyncStats, error) {
	if c.Platform != tiktok.Platform {
		return nil, tiktok.SyncStats{}, errInvalid(fieldProblem{Field: "id", Problem: "not a TikTok connection"})
	}
	if a.plat.tiktokSandbox {
		a.plat.sandboxGrowth(ctx, c.AccountID)
	}
	client, err := a.plat.tiktokClient(ctx, a.sdk.Social, c.ID)
	if err != nil {
		return nil, tiktok.SyncStats{}, err
	}
	return client.Sync(ctx)
}

func (a *app) tiktokSync(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	if c.Platform == meta.Platform {
		res, err := a.syncMeta(r.Context(), c)
		if err != nil {
			return err
		}
		// A Facebook user connection syncs its profile only: snapshot null.
		writeJSON(w, http.StatusOK, map[string]any{"snapshot": res.Snapshot, "media": len(res.Media)})
		return nil
	}
	res, stats, err := a.syncTikTok(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"snapshot": res.Snapshot, "media": len(res.Media), "requests": stats.Requests})
	return nil
}

// insights is the follower trend (one snapshot per sync) and the posts'
// metrics.
func (a *app) insights(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	snaps, err := a.sdk.Social.Snapshots(r.Context(), c.ID)
	if err != nil {
		return err
	}
	media, err := a.sdk.Social.Media(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if snaps == nil {
		snaps = []social.Snapshot{}
	}
	if media == nil {
		media = []social.Media{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"connection_id": c.ID, "follower_trend": snaps, "media": media,
		"engagement_rate": social.EngagementRate(media)})
	return nil
}

type publishForm struct {
	Title        string
	PrivacyLevel string
	// Allow* are the interactions the creator chose to allow (TikTok's
	// guidelines: none preselected, none the creator's settings turn off).
	AllowComment, AllowDuet, AllowStitch bool
	// BrandOrganic ("your brand") and BrandContent ("branded content")
	// disclose commercial content.
	BrandOrganic, BrandContent bool
	Video                      multipart.File
	Size                       int64
}

// readPublishForm reads a multipart publish form: title, privacy_level and
// the video file.
func readPublishForm(w http.ResponseWriter, r *http.Request) (publishForm, func(), error) {
	var f publishForm
	r.Body = http.MaxBytesReader(w, r.Body, maxVideo+1<<20)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return f, func() {}, err
		}
		return f, func() {}, errInvalid(fieldProblem{Field: "body", Problem: "must be multipart/form-data with title, privacy_level and video"})
	}
	cleanup := func() { _ = r.MultipartForm.RemoveAll() }
	f.Title = strings.TrimSpace(r.FormValue("title"))
	f.PrivacyLevel = r.FormValue("privacy_level")
	yes := func(k string) bool { v := r.FormValue(k); return v == "yes" || v == "true" || v == "1" }
	f.AllowComment, f.AllowDuet, f.AllowStitch = yes("allow_comment"), yes("allow_duet"), yes("allow_stitch")
	f.BrandOrganic, f.BrandContent = yes("brand_organic"), yes("brand_content")
	var v validator
	v.check(len(f.Title) <= 2200, "title", "at most 2200 characters")
	v.check(f.PrivacyLevel != "", "privacy_level", "required: choose who can see the video")
	v.check(!yes("commercial") || f.BrandOrganic || f.BrandContent, "commercial", "say whether it promotes your own brand, another brand, or both")
	v.check(!f.BrandContent || f.PrivacyLevel != "SELF_ONLY", "privacy_level", "branded content cannot be private (only me)")
	file, hdr, err := r.FormFile("video")
	v.check(err == nil, "video", "required: the video file")
	if err == nil {
		f.Video, f.Size = file, hdr.Size
		v.check(hdr.Size > 0, "video", "is empty")
	}
	if err := v.err(); err != nil {
		cleanup()
		return f, func() {}, err
	}
	return f, func() { f.Video.Close(); cleanup() }, nil
}

// tiktokPublish posts a video at the user's instruction, once per
// Idempotency-Key: creator info first, for the privacy levels the account
// allows, then init, upload and the first status. A key already recorded
// answers its first outcome without sending again (publishOnce).
func (a *app) tiktokPublish(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	if c.Platform != tiktok.Platform {
		return errInvalid(fieldProblem{Field: "id", Problem: "not a TikTok connection"})
	}
	f, done, err := readPublishForm(w, r)
	if err != nil {
		return err
	}
	defer done()
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	out, err := a.publishOnce(r.Context(), c, f, key)
	if err != nil {
		return err
	}
	a.writePublish(w, out)
	return nil
}

// publishRequest checks f against what TikTok says the creator may post
// (asked now) and returns the init request and its chunk plan. It only
// reads at TikTok.
func publishRequest(ctx context.Context, client *tiktok.Client, f publishForm) (tiktok.VideoInitRequest, tiktok.SourceInfo, error) {
	info, _, err := client.Posting.CreatorInfo(ctx)
	if err != nil {
		return tiktok.VideoInitRequest{}, tiktok.SourceInfo{}, err
	}
	var v validator
	v.check(slices.Contains(info.PrivacyLevelOptions, f.PrivacyLevel), "privacy_level", "must be one of "+strings.Join(info.PrivacyLevelOptions, ", "))
	v.check(!f.AllowComment || !info.CommentDisabled, "allow_comment", "the creator's settings turn comments off")
	v.check(!f.AllowDuet || !info.DuetDisabled, "allow_duet", "the creator's settings turn duets off")
	v.check(!f.AllowStitch || !info.StitchDisabled, "allow_stitch", "the creator's settings turn stitches off")
	if err := v.err(); err != nil {
		return tiktok.VideoInitRequest{}, tiktok.SourceInfo{}, err
	}
	src, err := tiktok.PlanChunks(f.Size, 0)
	if err != nil {
		return tiktok.VideoInitRequest{}, tiktok.SourceInfo{}, errInvalid(fieldProblem{Field: "video", Problem: err.Error()})
	}
	return tiktok.VideoInitRequest{
		PostInfo: tiktok.PostInfo{PrivacyLevel: f.PrivacyLevel, Title: f.Title,
			DisableComment: !f.AllowComment, DisableDuet: !f.AllowDuet, DisableStitch: !f.AllowStitch,
			BrandOrganicToggle: f.BrandOrganic, BrandContentToggle: f.BrandContent}, SourceInfo: src}, src, nil
}

func (a *app) tiktokPublishStatus(w http.ResponseWriter, r *http.Request) error {
	c, err := a.connection(r)
	if err != nil {
		return err
	}
	client, err := a.plat.tiktokClient(r.Context(), a.sdk.Social, c.ID)
	if err != nil {
		return err
	}
	id := r.PathValue("publish_id")
	if id == "" || len(id) > 100 {
		return errNotFound("publish")
	}
	st, _, err := client.Posting.Status(r.Context(), id)
	if err != nil {
		var apiErr *tiktok.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
			return errNotFound("publish")
		}
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"publish_id": id, "status": st})
	return nil
}

// tiktokWebhook receives TikTok's signed webhooks: authorization.removed
// revokes the account's connections in every tenant and starts their purge.
func (a *app) tiktokWebhook() http.Handler {
	h, err := tiktok.NewWebhook(a.plat.tiktokCfg, a.sdk.Social,
		func(ctx context.Context, ev *tiktok.Event) error {
			a.log.InfoContext(ctx, "tiktok webhook", "event", ev.Event)
			return nil
		}, tiktok.WithLogger(a.log))
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, a.log, err) })
	}
	return h
}

// sandboxTikTokDeauthorize plays, in sandbox mode, the creator who removes
// the app in TikTok: the emulator revokes the tokens and sends the signed
// authorization.removed webhook to /webhooks/tiktok.
func (a *app) sandboxTikTokDeauthorize(w http.ResponseWriter, r *http.Request) error {
	if !a.plat.tiktokSandbox {
		return errNotFound("sandbox")
	}
	var req struct {
		OpenID string `json:"open_id"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.OpenID != sandboxCreator && req.OpenID != sandboxBrand {
		return errInvalid(fieldProblem{Field: "open_id", Problem: "must be a sandbox account: " + sandboxCreator + " or " + sandboxBrand})
	}
	if _, err := a.sdk.Social.Find(r.Context(), tiktok.Platform, req.OpenID); err != nil {
		return err // only an account this tenant connected
	}
	if err := a.plat.sandbox.deauthorize(r.Context(), a.plat.tiktokCfg.ClientKey, req.OpenID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
