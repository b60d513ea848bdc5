package tenancy

// HashEntryForTest computes the hash e would have with its target replaced:
// what a tamperer who read the code would store.
func HashEntryForTest(e AuditEntry, target string) string {
	e.Target = target
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	return e.computeHash()
}

// StripCommentsForTest exposes the Guard's comment stripping.
func StripCommentsForTest(q string) string { return stripComments(q) }
