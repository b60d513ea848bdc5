package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
)

// fakeKMS is one httptest server speaking the three KMS protocols the
// server's -kek accepts — AWS KMS (JSON 1.1), Google Cloud KMS (REST) and
// Vault's transit engine — over one AES-GCM key, so that the real Tink
// clients run against it where no cloud is reachable.
type fakeKMS struct {
	*httptest.Server
	gcm   cipher.AEAD
	calls atomic.Int64
}

func newFakeKMS(t *testing.T) *fakeKMS {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	f := &fakeKMS{gcm: gcm}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeKMS) seal(pt, ad []byte) []byte {
	nonce := make([]byte, f.gcm.NonceSize())
	_, _ = rand.Read(nonce)
	return f.gcm.Seal(nonce, nonce, pt, ad)
}

func (f *fakeKMS) open(ct, ad []byte) ([]byte, error) {
	n := f.gcm.NonceSize()
	if len(ct) < n {
		return nil, io.ErrUnexpectedEOF
	}
	return f.gcm.Open(nil, ct[:n], ct[n:], ad)
}

func crc32c(b []byte) string {
	return strconv.FormatUint(uint64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))), 10)
}

func (f *fakeKMS) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b64 := func(k string) []byte { // standard or URL alphabet (Google's requests)
		s, _ := in[k].(string)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			b, _ = base64.URLEncoding.DecodeString(s)
		}
		return b
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func() { http.Error(w, `{"message":"decryption failed"}`, http.StatusBadRequest) }
	switch {
	case r.Header.Get("X-Amz-Target") != "": // AWS KMS
		ad, _ := json.Marshal(in["EncryptionContext"])
		switch r.Header.Get("X-Amz-Target") {
		case "TrentService.Encrypt":
			reply(map[string]any{"KeyId": in["KeyId"], "CiphertextBlob": f.seal(b64("Plaintext"), ad)})
		case "TrentService.Decrypt":
			pt, err := f.open(b64("CiphertextBlob"), ad)
			if err != nil {
				fail()
				return
			}
			reply(map[string]any{"KeyId": in["KeyId"], "Plaintext": pt})
		}
	case strings.HasSuffix(r.URL.Path, ":encrypt"): // Google Cloud KMS
		ct := f.seal(b64("plaintext"), b64("additionalAuthenticatedData"))
		reply(map[string]any{"name": strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/"), ":encrypt"),
			"ciphertext": ct, "ciphertextCrc32c": crc32c(ct), "verifiedPlaintextCrc32c": true,
			"verifiedAdditionalAuthenticatedDataCrc32c": true})
	case strings.HasSuffix(r.URL.Path, ":decrypt"):
		pt, err := f.open(b64("ciphertext"), b64("additionalAuthenticatedData"))
		if err != nil {
			fail()
			return
		}
		reply(map[string]any{"plaintext": pt, "plaintextCrc32c": crc32c(pt)})
	case strings.HasPrefix(r.URL.Path, "/v1/transit/encrypt/"): // Vault
		if r.Header.Get("X-Vault-Token") != "vault-test-token" {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		ct := f.seal(b64("plaintext"), b64("associated_data"))
		reply(map[string]any{"data": map[string]any{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(ct)}})
	case strings.HasPrefix(r.URL.Path, "/v1/transit/decrypt/"):
		s, _ := in["ciphertext"].(string)
		ct, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "vault:v1:"))
		pt, err := f.open(ct, b64("associated_data"))
		if err != nil {
			fail()
			return
		}
		reply(map[string]any{"data": map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}})
	default:
		http.NotFound(w, r)
	}
}

// TestKEKFromKMS: -kek takes aws-kms://, gcp-kms:// and hcvault:// URIs;
// each opens an AEAD through the KMS (a fake here) that round-trips and
// refuses other associated data; an unknown scheme is an error at start
// naming -kek.
func TestKEKFromKMS(t *testing.T) {
	f := newFakeKMS(t)
	host := strings.TrimPrefix(f.URL, "https://")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
	t.Setenv("AWS_ENDPOINT_URL_KMS", f.URL)
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw}), 0o600))
	t.Setenv("VAULT_CACERT", ca)
	t.Setenv("AWS_CA_BUNDLE", ca)
	t.Setenv("VAULT_TOKEN", "vault-test-token")

	opts := kmsOptions{HTTPClient: &http.Client{Transport: f.Client().Transport.(*http.Transport).Clone()}, GCP: []option.ClientOption{option.WithEndpoint(f.URL + "/"), option.WithoutAuthentication()}}
	for _, uri := range []string{
		"aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"gcp-kms://projects/p/locations/europe-west1/keyRings/r/cryptoKeys/socialcrm",
		"hcvault://" + host + "/transit/keys/socialcrm",
	} {
		scheme, _, _ := strings.Cut(uri, "://")
		t.Run(scheme, func(t *testing.T) {
			before := f.calls.Load()
			kek, err := openKEK(t.Context(), uri, opts)
			require.NoError(t, err)
			ct, err := kek.Encrypt([]byte("tenant keyset"), []byte("tenant-1"))
			require.NoError(t, err)
			pt, err := kek.Decrypt(ct, []byte("tenant-1"))
			require.NoError(t, err)
			require.Equal(t, "tenant keyset", string(pt))
			_, err = kek.Decrypt(ct, []byte("tenant-2"))
			require.Error(t, err, "another tenant's associated data")
			require.Equal(t, before+3, f.calls.Load(), "every operation went to the KMS")
		})
	}

	// The whole server on Vault: a tenant's keyset is wrapped by the
	// transit key at sign-up (VAULT_ADDR instead of https://<URI host>).
	t.Setenv("VAULT_ADDR", f.URL)
	before := f.calls.Load()
	a := newTestApp(t, "-kek", "hcvault://vault.invalid:8200/transit/keys/socialcrm")
	c := newClient(t, a.URL)
	c.call("POST", "/v1/signup", map[string]any{"tenant_name": "KMS", "email": "k@k.example", "name": "K", "password": "long enough password"}, 201)
	require.Greater(t, f.calls.Load(), before, "the tenant's keyset went through Vault")

	// Without a token Vault is not tried.
	t.Setenv("VAULT_TOKEN", "")
	_, err := openKEK(t.Context(), "hcvault://"+host+"/transit/keys/socialcrm", kmsOptions{})
	require.ErrorContains(t, err, "VAULT_TOKEN")

	_, err = parseConfig([]string{"-kek", "azure-kv://vault/key"}, io.Discard)
	require.ErrorContains(t, err, "-kek")
}
