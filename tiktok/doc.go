// Package tiktok is the typed TikTok client: Login Kit v2 with PKCE, user
// info, video list and query, the Content Posting API, revocation and
// webhooks, with scope checks before every call.
//
// The package is being built: it has no API yet.
package tiktok
