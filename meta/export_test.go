package meta

import "github.com/socialcrm/socialcrm/vault"

type vaultSecret = vault.Secret

func newSecret(s string) vault.Secret { return vault.NewSecret([]byte(s)) }
