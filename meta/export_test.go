package meta

import "github.com/socialcrm/socialcrm/vault"

type vaultSecret = vault.Secret

func newSecret(s string) vault.Secret { return vault.NewSecret([]byte(s)) }

// ConnectPage exposes connectPage to the external tests.
var ConnectPage = (*Provider).connectPage
