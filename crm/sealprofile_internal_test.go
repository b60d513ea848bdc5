package crm

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProfileEncoding: a contact's personal fields survive their encoding
// whole (empty ones, non-ASCII, separators and quotes included), the
// encoding does not depend on the preferences' map order, and a damaged
// or foreign encoding — cut anywhere, extended, another version, lengths
// past its end — is errProfile, leaving the contact unchanged, never a
// panic.
func TestProfileEncoding(t *testing.T) {
	full := ContactInput{FirstName: "Zoë", LastName: "O'Brien \"Jr\", 3", Email: "zoe@example.com", Phone: "+14155550100",
		UTM:      UTM{Source: "ig", Medium: "social", Campaign: "spring\x00", Term: "a,b", Content: "ünï"},
		Birthday: Birthday{Year: 1990, Month: 2, Day: 29}, Preferences: map[string]string{"lang": "fr", "size": "M", "": "empty key"},
		Tags: []string{"vip", "", "日本"}}
	for _, in := range []ContactInput{full, {Email: "only@example.com"}, {}} {
		b := appendProfile(nil, &in)
		var got ContactInput
		require.NoError(t, decodeProfile(b, &got))
		want := in
		if want.Preferences == nil {
			want.Preferences = map[string]string{}
		}
		if want.Tags == nil {
			want.Tags = []string{}
		}
		require.Equal(t, want, got)
	}
	enc := appendProfile(nil, &full)
	for range 20 {
		require.Equal(t, enc, appendProfile(nil, &full), "one encoding whatever the map order")
	}
	keep := ContactInput{FirstName: "Kept"}
	bad := [][]byte{nil, {}, {2}, append([]byte{2}, enc[1:]...), append(append([]byte(nil), enc...), 0)}
	for i := 1; i < len(enc); i++ {
		bad = append(bad, enc[:i])
	}
	bad = append(bad, []byte{profileV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	huge := appendProfile(nil, &ContactInput{})
	huge[len(huge)-1] = 0x7f // more tags than bytes
	bad = append(bad, huge)
	for _, b := range bad {
		got := keep
		err := decodeProfile(b, &got)
		require.True(t, errors.Is(err, errProfile), "%x: %v", b, err)
		require.Equal(t, keep, got)
	}
}

// FuzzDecodeProfile: no input panics the decoder, and what it accepts
// encodes to bytes that decode to the same contact.
func FuzzDecodeProfile(f *testing.F) {
	f.Add(appendProfile(nil, &ContactInput{FirstName: "Ada", Tags: []string{"a"}, Preferences: map[string]string{"k": "v"}}))
	f.Add([]byte{profileV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c ContactInput
		if decodeProfile(b, &c) != nil {
			return
		}
		var again ContactInput
		require.NoError(t, decodeProfile(appendProfile(nil, &c), &again))
		require.Equal(t, c, again)
	})
}
