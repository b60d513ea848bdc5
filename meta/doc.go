// Package meta is the typed Graph API client for Facebook Login, Pages,
// Instagram Business and Messenger, with scope checks before every call and
// the data-deletion and deauthorize callbacks.
//
// The package is being built: it has no API yet.
package meta
