package crm

import "context"

// AuthorizeForTest runs the single role check that the repositories of the
// kinds not shared with the client portal call, for each such kind.
func AuthorizeForTest(s *Store, ctx context.Context) map[string]error {
	out := map[string]error{}
	for _, kind := range []string{"contact", "company", "deal", "activity", "task", "note", "consent", "conversation", KindField} {
		_, out[kind] = s.access(ctx, nil, staffOnly(kind))
	}
	return out
}
