// Package oauth2conformance holds the conformance tests of social's generic
// OAuth 2.0 provider against a standards-conforming authorization server
// (ory/fosite) running in-process. It has no API: it is a module of its own
// so that the authorization server stays out of the library module's
// requirements.
package oauth2conformance
