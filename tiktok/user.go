package tiktok

import (
	"context"
	"slices"
)

// UserService reads the connected account (GET /v2/user/info/).
type UserService struct{ c *Client }

// User is TikTok's User object. Fields not requested are zero. Avatar URLs
// are signed and expire: do not keep them as lasting data.
type User struct {
	OpenID          string `json:"open_id"`
	UnionID         string `json:"union_id"`
	AvatarURL       string `json:"avatar_url"`
	AvatarURL100    string `json:"avatar_url_100"`
	AvatarLargeURL  string `json:"avatar_large_url"`
	DisplayName     string `json:"display_name"`
	BioDescription  string `json:"bio_description"`
	ProfileDeepLink string `json:"profile_deep_link"`
	IsVerified      bool   `json:"is_verified"`
	Username        string `json:"username"`
	FollowerCount   int64  `json:"follower_count"`
	FollowingCount  int64  `json:"following_count"`
	LikesCount      int64  `json:"likes_count"`
	VideoCount      int64  `json:"video_count"`
}

// UserFields lists the user-info fields in documentation order.
func UserFields() []string {
	return []string{
		"open_id", "union_id", "avatar_url", "avatar_url_100", "avatar_large_url", "display_name",
		"bio_description", "profile_deep_link", "is_verified", "username",
		"follower_count", "following_count", "likes_count", "video_count",
	}
}

// FieldScope returns the scope a user-info field needs
// (https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info).
func FieldScope(field string) (string, bool) {
	switch field {
	case "open_id", "union_id", "avatar_url", "avatar_url_100", "avatar_large_url", "display_name":
		return ScopeUserInfoBasic, true
	case "bio_description", "profile_deep_link", "is_verified", "username":
		return ScopeUserInfoProfile, true
	case "follower_count", "following_count", "likes_count", "video_count":
		return ScopeUserInfoStats, true
	}
	return "", false
}

// UserInfoOptions selects the fields of Info.
type UserInfoOptions struct {
	// Fields to request. Empty means every field whose scope the
	// connection was granted; a field whose scope was not granted is a
	// *social.ScopeError, as TikTok would fail the whole call.
	Fields []string
}

// Info returns the connected account's profile.
func (s *UserService) Info(ctx context.Context, opts UserInfoOptions) (*User, *Response, error) {
	fields := opts.Fields
	granted := s.c.session.Scopes()
	if len(fields) == 0 {
		for _, f := range UserFields() {
			if sc, _ := FieldScope(f); granted.Has(sc) {
				fields = append(fields, f)
			}
		}
	}
	var need []string
	for _, f := range fields {
		sc, ok := FieldScope(f)
		if !ok {
			continue // TikTok answers invalid_params
		}
		if !slices.Contains(need, sc) {
			need = append(need, sc)
		}
	}
	if len(need) == 0 {
		need = []string{ScopeUserInfoBasic}
	}
	var data struct {
		User User `json:"user"`
	}
	resp, err := s.c.call(ctx, "GET", "/v2/user/info/", fields, nil, &data, need...)
	if err != nil {
		return nil, resp, err
	}
	return &data.User, resp, nil
}
