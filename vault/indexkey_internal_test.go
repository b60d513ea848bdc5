package vault

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/prf/hmacprf"
)

// TestIndexKeyMatchesTinkPRF: the pooled HMACs compute exactly the bytes
// Tink's PRF computes for the same key and input, so that every blind
// index stored before keeps matching — for inputs of every length
// (including past the hasher's initial buffer), concurrently (the pool),
// and on a key set with several keys (the primary's).
func TestIndexKeyMatchesTinkPRF(t *testing.T) {
	m := keyset.NewManager()
	for range 3 {
		id, err := m.Add(prf.HMACSHA256PRFKeyTemplate())
		require.NoError(t, err)
		require.NoError(t, m.SetPrimary(id))
	}
	h, err := m.Handle()
	require.NoError(t, err)
	set, err := prf.NewPRFSet(h)
	require.NoError(t, err)
	tink := set.PRFs[set.PrimaryID]
	k := newIndexKey(h)
	require.NotNil(t, k)

	values := []string{"", "a", "ada@example.com", "+14155550100", strings.Repeat("é", 300), "x\x00y"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				v := values[i%len(values)] + fmt.Sprint(g*1000+i%7)
				want, err := tink.ComputePRF(lengthPrefixed(adIndex, "tenant-1", "email", v), indexLen)
				if !assertNoErr(t, err) {
					return
				}
				got := k.index(adIndex, "tenant-1", "email", v)
				if got != base64.RawURLEncoding.EncodeToString(want) {
					t.Errorf("index of %q = %s, want Tink's %x", v, got, want)
					return
				}
			}
		})
	}
	wg.Wait()

	// Fields and tenants stay apart, as with Tink's PRF.
	require.NotEqual(t, k.index(adIndex, "tenant-1", "email", "a"), k.index(adIndex, "tenant-1", "phone", "a"))
	require.NotEqual(t, k.index(adIndex, "tenant-1", "email", "a"), k.index(adIndex, "tenant-2", "email", "a"))
}

func assertNoErr(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// TestIndexKeyPrintsNoKey: fmt never shows the key's bytes, in any verb.
func TestIndexKeyPrintsNoKey(t *testing.T) {
	h, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	require.NoError(t, err)
	k := newIndexKey(h)
	require.NotNil(t, k)
	e, err := h.Primary()
	require.NoError(t, err)
	raw := e.Key().(*hmacprf.Key).KeyBytes().Data(insecuresecretdataaccess.Token{})
	keys := &tenantKeys{indexKey: k}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{k, keys, *keys} {
			out := fmt.Sprintf(verb, v)
			for _, enc := range []string{string(raw), hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)[:20]} {
				require.NotContains(t, out, enc, "%s of %T", verb, v)
			}
		}
	}
}
