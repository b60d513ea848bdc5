// Package social holds what every connected platform shares: the Provider
// interface, connected accounts, the OAuth flow with PKCE, scope sets and
// scope checks, a token source that refreshes and persists rotated tokens
// safely across processes, and disconnection.
//
// The package is being built: it has no API yet.
package social
