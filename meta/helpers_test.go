package meta_test

import "github.com/socialcrm/socialcrm/vault"

func secretOf(s string) vault.Secret { return vault.NewSecret([]byte(s)) }
