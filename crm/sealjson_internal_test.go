package crm

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// decodeSealedJSON decodes what json.Marshal writes of the value types it
// knows exactly as json.Unmarshal does, and declines (changing nothing)
// what it does not read, so that the caller's json.Unmarshal decides.
func TestDecodeSealedJSONAgreesWithUnmarshal(t *testing.T) {
	texts := []string{"", "a", "Zoë", "日本語", `quo"te`, `back\slash`, "<&>", "tab\there", "line\u2028sep", "x y"}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return texts[r.IntN(len(texts))] }
	var values []any
	for range 300 {
		tags := make([]string, r.IntN(4))
		for i := range tags {
			tags[i] = pick()
		}
		prefs := map[string]string{}
		for range r.IntN(4) {
			prefs[pick()] = pick()
		}
		values = append(values, tags, prefs,
			UTM{Source: pick(), Medium: pick(), Campaign: pick(), Term: pick(), Content: pick()},
			Birthday{Year: r.IntN(2200) - 100, Month: r.IntN(13), Day: r.IntN(32)})
	}
	for _, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want := reflect.New(reflect.TypeOf(v))
		if err := json.Unmarshal(b, want.Interface()); err != nil {
			t.Fatal(err)
		}
		got := reflect.New(reflect.TypeOf(v))
		if decodeSealedJSON(b, got.Interface()) && !reflect.DeepEqual(got.Elem().Interface(), want.Elem().Interface()) {
			t.Fatalf("%s: decoded %#v, json.Unmarshal %#v", b, got.Elem().Interface(), want.Elem().Interface())
		}
	}

	// The plain values it is for take the fast path.
	var tags []string
	var u UTM
	var d Birthday
	if !decodeSealedJSON([]byte(`["vip","Zoë"]`), &tags) || !decodeSealedJSON([]byte(`{"source":"ig","campaign":"spring"}`), &u) ||
		!decodeSealedJSON([]byte(`{"month":12,"day":10}`), &d) {
		t.Fatal("a plain value was declined")
	}
	if !reflect.DeepEqual(tags, []string{"vip", "Zoë"}) || u != (UTM{Source: "ig", Campaign: "spring"}) || d != (Birthday{Month: 12, Day: 10}) {
		t.Fatalf("decoded %q %+v %+v", tags, u, d)
	}

	// Inputs it must decline, leaving the value as it was.
	for _, c := range []struct {
		in string
		v  any
	}{
		{`["a",1]`, new([]string)},
		{`["a\n"]`, new([]string)},
		{`[ "a"]`, new([]string)},
		{`{"lang":1}`, new(map[string]string)},
		{`{"source":"ig","other":"x"}`, &UTM{Source: "kept"}},
		{`{"Source":"ig"}`, &UTM{Source: "kept"}},
		{`{"month":01}`, &Birthday{Month: 3}},
		{`{"month":1.5}`, &Birthday{Month: 3}},
		{`{"month":1e1}`, &Birthday{Month: 3}},
		{`{"year":12345678901}`, &Birthday{Month: 3}},
		{`{"month":"1"}`, &Birthday{Month: 3}},
		{"[\"\xff\"]", new([]string)},
		{`null`, new([]string)},
		{`"text"`, new(string)},
	} {
		before := fmt.Sprintf("%#v", reflect.ValueOf(c.v).Elem().Interface())
		if decodeSealedJSON([]byte(c.in), c.v) {
			t.Errorf("%s: decoded, want declined", c.in)
		}
		if after := fmt.Sprintf("%#v", reflect.ValueOf(c.v).Elem().Interface()); after != before {
			t.Errorf("%s: changed %s to %s", c.in, before, after)
		}
	}
}
