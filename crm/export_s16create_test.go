package crm

// PendingNamesBound and PendingNamesCheckEvery are the bound of a
// tenant's contacts whose name index rows are pending and how often a
// create checks it (nameindex_pgpending.go), for the tests.
const (
	PendingNamesBound      = pendingNamesBound
	PendingNamesCheckEvery = pendingNamesCheckEvery
)
