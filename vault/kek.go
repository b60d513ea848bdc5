package vault

import (
	"fmt"

	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// KMS returns the key-encryption key named by a Tink KMS key URI, such as
// "aws-kms://arn:aws:kms:…", "gcp-kms://projects/…/cryptoKeys/…" or
// "hcvault://…". The KMS client for the URI's scheme must have been
// registered with Tink (registry.RegisterKMSClient) by the application,
// typically from the tink-go-awskms, tink-go-gcpkms or tink-go-hcvault
// extension; the vault itself depends on none of them.
//
// With a KMS the key-encryption key never leaves the KMS: each cache miss
// of the vault costs one decrypt call to it. Rotating the KMS key (a new
// version under the same URI) and calling RotateKEK with the same AEAD
// rewraps every tenant under the new version; disabling or destroying the
// old version in the KMS then retires it.
func KMS(uri string) (tink.AEAD, error) {
	c, err := registry.GetKMSClient(uri)
	if err != nil {
		return nil, fmt.Errorf("vault: no KMS client for the key URI: %w", err)
	}
	a, err := c.GetAEAD(uri)
	if err != nil {
		return nil, fmt.Errorf("vault: KMS key: %w", err)
	}
	return a, nil
}
