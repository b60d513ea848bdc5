package vault_test

import (
	"bytes"
	"encoding/base64"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

const canary = "CANARY-9f3a7c1e-do-not-leak"

// holder is how application code carries a token around.
type holder struct {
	Name   string
	Token  vault.Secret
	Ptr    *vault.Secret
	Sealed vault.Sealed
	hidden vault.Secret // unexported: fmt prints it by reflection
	nested *holder
}

// TestSecretCanary seals a known token, opens it, and pushes the Secret and
// the Sealed through every way a value escapes by accident: fmt verbs,
// slog (JSON and text), encoding/json, encoding/xml, gob, error chains and
// recovered panics. The canary, and the ciphertext, must never appear.
func TestSecretCanary(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newVault(t, db, testkit.NewKEK(t))
		ctx := owner(tenancy.NewID())
		b := vault.Binding{Record: "conn", Field: "token"}
		sealed, err := v.Seal(ctx, []byte(canary), b)
		require.NoError(t, err)
		s, err := v.Open(ctx, sealed, b)
		require.NoError(t, err)
		require.Equal(t, canary, string(s.Reveal()), "Reveal is the one way to the bytes")

		inner := &holder{Name: "inner", Token: s, hidden: s}
		h := holder{Name: "outer", Token: s, Ptr: &s, Sealed: sealed, hidden: s, nested: inner}
		ct := sealed.Bytes()
		forbidden := []string{
			canary, hex.EncodeToString([]byte(canary)), base64.StdEncoding.EncodeToString([]byte(canary)),
			string(ct), hex.EncodeToString(ct), base64.StdEncoding.EncodeToString(ct), fmt.Sprint(ct[:8]),
		}
		var outputs []string
		check := func(what, out string) {
			t.Helper()
			outputs = append(outputs, out)
			for _, f := range forbidden {
				require.NotContains(t, out, f, "%s leaked", what)
			}
		}

		// fmt, every verb and flag, on the Secret, the Sealed and what
		// holds them.
		for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "% x", "%d", "%10s", "%-8v", "%p", "%T", "%U", "%c", "%b", "%o", "%e", "%t"} {
			for name, val := range map[string]any{
				"secret": s, "*secret": &s, "sealed": sealed, "*sealed": &sealed, "holder": h, "*holder": &h,
				"slice": []vault.Secret{s}, "map": map[string]vault.Secret{"k": s}, "any-slice": []any{s, sealed},
				"array": [1]vault.Secret{s}, "sealed-slice": []vault.Sealed{sealed},
			} {
				check(verb+" "+name, fmt.Sprintf(verb, val))
			}
		}
		check("Sprint", fmt.Sprint(s, sealed, h))
		check("Sprintln", fmt.Sprintln(s, sealed, h))
		check("String", s.String()+s.GoString()+sealed.String()+sealed.GoString())
		require.Contains(t, fmt.Sprintf("%+v", h), vault.Redacted)

		// slog, with the JSON and the text handler.
		for _, mk := range []func(*bytes.Buffer) slog.Handler{
			func(w *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(w, nil) },
			func(w *bytes.Buffer) slog.Handler { return slog.NewTextHandler(w, nil) },
		} {
			var buf bytes.Buffer
			log := slog.New(mk(&buf))
			log.Info("token", "token", s, "sealed", sealed)
			log.Info("holder", "h", h, slog.Any("ptr", &h))
			log.With("token", s).Info("with", slog.Group("g", "token", s, "sealed", sealed))
			log.Error("failed", "err", fmt.Errorf("call with %v: %w", s, errors.New("boom")), "tokens", []vault.Secret{s})
			log.Info(fmt.Sprintf("interpolated %v %s", s, sealed))
			check("slog", buf.String())
			require.Contains(t, buf.String(), vault.Redacted)
		}

		// encoding/json, encoding/xml, encoding.TextMarshaler, gob.
		for name, val := range map[string]any{"secret": s, "holder": h, "map": map[string]any{"t": s, "s": sealed}} {
			out, err := json.Marshal(val)
			require.NoError(t, err)
			check("json "+name, string(out))
			out, err = json.MarshalIndent(val, "", " ")
			require.NoError(t, err)
			check("json indent "+name, string(out))
		}
		out, err := xml.Marshal(struct {
			XMLName xml.Name     `xml:"c"`
			Token   vault.Secret `xml:"token"`
			Attr    vault.Secret `xml:"attr,attr"`
		}{Token: s, Attr: s})
		require.NoError(t, err)
		check("xml", string(out))
		text, err := s.MarshalText()
		require.NoError(t, err)
		check("MarshalText", string(text))
		var gb bytes.Buffer
		_ = gob.NewEncoder(&gb).Encode(h) // fails (no exported fields in Secret) or redacts
		check("gob", gb.String())

		// Errors, wrapped with %w and joined.
		base := fmt.Errorf("meta: refresh with token %v failed", s)
		chain := fmt.Errorf("social: sync: %w", fmt.Errorf("connection %s: %w", sealed, base))
		check("error chain", chain.Error())
		check("joined", errors.Join(chain, fmt.Errorf("%+v", h)).Error())
		check("%+v error", fmt.Sprintf("%+v", chain))

		// Panics recovered in the test.
		for name, val := range map[string]any{"secret": s, "holder": h, "error": chain, "sealed": sealed} {
			check("panic "+name, recovered(func() { panic(val) }))
		}

		// The runtime's own report of an unrecovered panic, in a child
		// process this test starts.
		cmd := exec.Command(os.Args[0], "-test.run=^TestSecretPanicChild$")
		cmd.Env = append(os.Environ(), "VAULT_CANARY_CHILD=1")
		report, err := cmd.CombinedOutput()
		require.Error(t, err, "the child panics")
		require.Contains(t, string(report), "panic: "+vault.Redacted)
		check("unrecovered panic", string(report))

		require.NotEmpty(t, outputs)
	})
}

// TestSecretPanicChild panics with a Secret when run as the child of
// TestSecretCanary; otherwise it checks nothing.
func TestSecretPanicChild(t *testing.T) {
	if os.Getenv("VAULT_CANARY_CHILD") != "1" {
		return
	}
	panic(vault.NewSecret([]byte(canary)))
}

func recovered(f func()) (out string) {
	defer func() { out = fmt.Sprint(recover()) }()
	f()
	return ""
}

func TestSecretZeroAndWipe(t *testing.T) {
	var z vault.Secret
	require.True(t, z.IsZero())
	require.Nil(t, z.Reveal())
	z.Wipe() // no panic on the zero Secret
	require.Equal(t, vault.Redacted, z.String())

	b := []byte("abc")
	s := vault.NewSecret(b)
	cp := s
	require.Equal(t, 3, s.Len())
	s.Wipe()
	require.Equal(t, []byte{0, 0, 0}, cp.Reveal(), "copies share the bytes")
	require.Equal(t, []byte{0, 0, 0}, b)
}

func TestSealedEncoding(t *testing.T) {
	var z vault.Sealed
	val, err := z.Value()
	require.NoError(t, err)
	require.Nil(t, val)
	require.Equal(t, "vault.Sealed(empty)", fmt.Sprint(z))
	js, err := json.Marshal(z)
	require.NoError(t, err)
	require.Equal(t, "null", string(js))

	raw := append([]byte{0x01, 0xde, 0xad, 0xbe, 0xef}, make([]byte, 40)...)
	s, err := vault.ParseSealed(raw)
	require.NoError(t, err)
	require.Equal(t, uint32(0xdeadbeef), s.KeyID())
	require.Equal(t, "vault.Sealed(key=deadbeef, 45 bytes)", fmt.Sprintf("%x", s))
	raw[10] = 7
	require.NotEqual(t, raw, s.Bytes(), "ParseSealed copies")

	var scanned vault.Sealed
	require.NoError(t, scanned.Scan(s.Bytes()))
	require.Equal(t, s.Bytes(), scanned.Bytes())
	require.NoError(t, scanned.Scan(string(s.Bytes())))
	require.Equal(t, s.Bytes(), scanned.Bytes())
	require.NoError(t, scanned.Scan(nil))
	require.True(t, scanned.IsZero())
	require.Error(t, scanned.Scan(42))

	empty, err := vault.ParseSealed(nil)
	require.NoError(t, err)
	require.True(t, empty.IsZero())
	_, err = vault.ParseSealed(append([]byte{0x00}, raw[1:]...))
	require.ErrorIs(t, err, vault.ErrOpen, "only Tink's prefixed format")
	require.Zero(t, vault.Sealed{}.KeyID())
	require.True(t, strings.HasPrefix(s.String(), "vault.Sealed("))
}
