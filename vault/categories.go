package vault

import "github.com/socialcrm/socialcrm/retention"

// Names of the package's retention categories.
const (
	// CategoryKeys is the tenants' wrapped data keys; erasing a tenant's
	// row shreds everything sealed under its keys.
	CategoryKeys = "vault.keys"
	// CategoryTenants is the list of tenants that have keys.
	CategoryTenants = "vault.tenants"
)

// Categories returns the retention categories of the vault's tables, for
// retention.Engine.Register. The keysets themselves are never exported.
func Categories() []retention.Category {
	return []retention.Category{
		{Name: CategoryKeys, Table: TableKeys, ID: "tenant_id", Time: "created_at",
			Omit: []string{"data_keyset", "index_keyset"}, Shreds: true,
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "the tenant's wrapped data keys; destroying them shreds its sealed data"},
		{Name: CategoryTenants, Table: TableKeyTenants, ID: "tenant_id", Time: "created_at", Shreds: true,
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "which tenants have keys, for key-encryption-key rotation"},
	}
}
