package vault_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/vault"
)

func TestKMS(t *testing.T) {
	uri := fakeKMSURI(t)
	kek, err := vault.KMS(uri)
	require.NoError(t, err)
	ct, err := kek.Encrypt([]byte("x"), []byte("ad"))
	require.NoError(t, err)
	again, err := vault.KMS(uri)
	require.NoError(t, err)
	pt, err := again.Decrypt(ct, []byte("ad"))
	require.NoError(t, err)
	require.Equal(t, "x", string(pt))

	_, err = vault.KMS("no-such-kms://key")
	require.Error(t, err)
	_, err = vault.KMS("fake-kms://not-base64!")
	require.Error(t, err)
}
