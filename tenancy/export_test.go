package tenancy

import "context"

// HashEntryForTest computes the hash e would have with its target replaced:
// what a tamperer who read the code would store.
func HashEntryForTest(e AuditEntry, target string) string {
	e.Target = target
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	return UnkeyedHashForTest(e)
}

// UnkeyedHashForTest is the plain SHA-256 chain hash of e: what a tamperer
// without the audit key can compute.
func UnkeyedHashForTest(e AuditEntry) string {
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	h, _ := (&AuditLog{}).seal(context.Background(), &e)
	return h
}

// StripCommentsForTest exposes the Guard's comment stripping.
func StripCommentsForTest(q string) string { return stripComments(q) }
