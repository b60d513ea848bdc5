package inbox

import (
	"context"
	"strings"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
)

// SubjectUserRef is the identifier kind of a person Meta names by a
// user_ref (a checkbox plugin opt-in, a chat plugin guest), for
// retention requests: the reference the website passed to the plugin.
// Such a person has no PSID; their conversations are keyed by UserRefKey.
const SubjectUserRef = "messenger_user_ref"

// Resolvers returns the inbox's resolvers of data subjects, for
// retention.Engine.RegisterResolver: a user_ref leads to the thread id of
// its conversations (crm.SubjectThread), which crm's resolvers
// (crm.Store.Resolvers) follow to the conversations, their messages and
// the contacts linked to them. A reference given with its "user_ref:"
// prefix (the thread id as crm shows it) is taken as it is.
func Resolvers() map[string]retention.Resolver {
	return map[string]retention.Resolver{
		SubjectUserRef: func(_ context.Context, _ bun.IDB, ref string) (map[string][]string, error) {
			ref = strings.TrimPrefix(strings.TrimSpace(ref), userRefPrefix)
			if ref == "" {
				return nil, nil
			}
			return map[string][]string{crm.SubjectThread: {userRefPrefix + ref}}, nil
		},
	}
}
