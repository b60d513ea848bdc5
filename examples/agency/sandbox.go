package main

// The sandbox: what the example needs to run without TikTok credentials.
// A real agency has none of this; its creators connect their own accounts.

import (
	"fmt"
	"time"

	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// roster is the emulator's cast: each creator's TikTok account, weekly
// follower gain and the video posted each week (views, likes, comments,
// shares).
var roster = []struct {
	name, email, openID string
	followers, gain     int64
	video               [4]int64
}{
	{"Ana Lima", "ana@creators.example", "open-ana", 12000, 600, [4]int64{10000, 700, 60, 40}},
	{"Ben Okafor", "ben@creators.example", "open-ben", 48000, -200, [4]int64{40000, 1500, 100, 400}},
	{"Chloé Martin", "chloe@creators.example", "open-chloe", 3000, 450, [4]int64{2000, 260, 30, 10}},
}

// weeks is how many weekly syncs the emulated run simulates.
const weeks = 4

// emulateWeek plays one week on the emulator before week w's sync: every
// creator gains followers and posts a video.
func emulateWeek(srv *tiktoktest.Server, w int) error {
	for _, r := range roster {
		if w > 0 {
			if err := srv.UpdateUser(r.openID, func(u *tiktoktest.User) { u.FollowerCount += r.gain }); err != nil {
				return err
			}
		}
		v := tiktoktest.Video{ID: fmt.Sprintf("74000000000000000%02d", w),
			CreateTime: srv.Now().Add(-time.Hour), Title: fmt.Sprintf("week %d", w+1),
			ViewCount: r.video[0], LikeCount: int32(r.video[1]), CommentCount: int32(r.video[2]), ShareCount: int32(r.video[3])}
		if err := srv.AddVideo(r.openID, v); err != nil {
			return err
		}
	}
	return nil
}

// startEmulator starts the TikTok emulator with the agency's app (approved
// for write scopes too, which the agency never asks for) and the roster.
func startEmulator(now func() time.Time) (*tiktoktest.Server, error) {
	opts := []tiktoktest.Option{tiktoktest.WithClock(now), tiktoktest.WithApp(tiktoktest.App{
		ClientKey: "agency-sandbox", ClientSecret: "agency-sandbox-secret",
		RedirectURIs: []string{"https://agency.example/tiktok/callback/"},
		Scopes: []string{tiktok.ScopeUserInfoBasic, tiktok.ScopeUserInfoProfile, tiktok.ScopeUserInfoStats,
			tiktok.ScopeVideoList, tiktok.ScopeVideoPublish, tiktok.ScopeVideoUpload}})}
	for _, r := range roster {
		opts = append(opts, tiktoktest.WithUser(tiktoktest.User{OpenID: r.openID, DisplayName: r.name, FollowerCount: r.followers}))
	}
	return tiktoktest.New(opts...)
}

func emulatorConfig(srv *tiktoktest.Server) tiktok.Config {
	return tiktok.Config{ClientKey: "agency-sandbox", ClientSecret: "agency-sandbox-secret",
		RedirectURL: "https://agency.example/tiktok/callback/", BaseURL: srv.BaseURL(), AuthorizeURL: srv.AuthorizeURL()}
}
