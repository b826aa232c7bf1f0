package egress

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAMF0Encoding(t *testing.T) {
	date := time.UnixMilli(1_700_000_000_123).UTC()
	long := strings.Repeat("x", 70000)
	for _, tc := range []struct {
		name string
		in   any
		want []byte // nil: only check the round trip
	}{
		{"number", 1.5, []byte{0x00, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}},
		{"true", true, []byte{0x01, 1}},
		{"string", "ab", []byte{0x02, 0, 2, 'a', 'b'}},
		{"null", nil, []byte{0x05}},
		{"object sorted", map[string]any{"b": false, "a": nil},
			[]byte{0x03, 0, 1, 'a', 0x05, 0, 1, 'b', 0x01, 0, 0, 0, 0x09}},
		{"ecma array", amfECMAArray{{"k", "v"}},
			[]byte{0x08, 0, 0, 0, 1, 0, 1, 'k', 0x02, 0, 1, 'v', 0, 0, 0x09}},
		{"strict array", []any{1.0, "a"}, []byte{0x0a, 0, 0, 0, 2, 0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x02, 0, 1, 'a'}},
		{"long string", long, append([]byte{0x0c, 0, 1, 0x11, 0x70}, long...)},
		{"date", date, nil},
		{"nested", amfObject{{"a", []any{amfObject{{"b", map[string]any{"c": 2.0}}}}}}, nil},
	} {
		b, err := appendAMF0(nil, tc.in)
		if err != nil {
			t.Errorf("%s: encode: %v", tc.name, err)
			continue
		}
		if tc.want != nil && !bytes.Equal(b, tc.want) {
			t.Errorf("%s: encoded % x, want % x", tc.name, b, tc.want)
		}
		got, err := decodeAMF0(b)
		if err != nil || len(got) != 1 {
			t.Errorf("%s: decode = %v, %v", tc.name, got, err)
			continue
		}
		if want := plainValue(wantDecoded(tc.in)); !reflect.DeepEqual(plainValue(got[0]), want) {
			t.Errorf("%s: decoded %#v, want %#v", tc.name, got[0], want)
		}
	}
}

// wantDecoded is what decoding gives back for an encoded value: objects
// come back as amfObject, which plainValue flattens like a map.
func wantDecoded(v any) any {
	if m, ok := v.(map[string]any); ok {
		return sortedProps(m)
	}
	return v
}

func TestAMF0Rejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated number", []byte{0x00, 1, 2}, "truncated"},
		{"unknown marker", []byte{0x07, 0, 1}, "unsupported marker 0x07"},
		{"array count past the end", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x05}, "truncated"},
		{"object without end", []byte{0x03, 0, 1, 'a', 0x05}, "truncated"},
		{"nan date", []byte{0x0b, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0, 0}, "out of range"},
		{"too deep", bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 100), "nested too deeply"},
	} {
		_, err := decodeAMF0(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: decode = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
	for _, bad := range []any{amfObject{{"", 1.0}}, struct{}{}, int64(1)} {
		if _, err := appendAMF0(nil, bad); err == nil {
			t.Errorf("encode %#v succeeded", bad)
		}
	}
}

// FuzzAMF0Decode: whatever decodes re-encodes to bytes that decode to the
// same values and re-encode identically (encode∘decode is idempotent), and
// nothing panics or allocates without bound on hostile input.
func FuzzAMF0Decode(f *testing.F) {
	for _, v := range []any{
		1.5, "s", true, nil, amfECMAArray{{"width", 320.0}}, []any{"a", 2.0},
		amfObject{{"name", "cue"}, {"parameters", map[string]any{"x": []any{nil}}}},
		time.UnixMilli(86_400_000).UTC(), // long strings: TestAMF0Encoding; big seeds make minimizing crawl
	} {
		b, err := appendAMF0(nil, "onMetaData", v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x10, 0, 1, 'C', 0, 1, 'k', 0x06, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		v1, err := decodeAMF0(b)
		if err != nil {
			return
		}
		b2, err := appendAMF0(nil, v1...)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v1, err)
		}
		v2, err := decodeAMF0(b2)
		if err != nil {
			t.Fatalf("re-encoded % x does not decode: %v", b2, err)
		}
		b3, err := appendAMF0(nil, v2...)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encode∘decode not idempotent:\n% x\n% x (%v)", b2, b3, err)
		}
	})
}

// FuzzAMF0JSONRoundTrip: any JSON object that passes validation comes back
// from the wire as the same JSON value, and anything that fails validation
// says it is invalid metadata.
func FuzzAMF0JSONRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x","c":true,"d":null,"e":[1,"2",{"f":[]}],"g":{"h":{"i":-0.5e300}}}`,
		`{"title":"Chapter 1 — Intro","tags":["a","b"],"n":1e-7}`,
		`{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}`,
		`{"": 1}`,
		`{"s":"\ud800"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var data map[string]any
		if json.Unmarshal([]byte(s), &data) != nil || data == nil {
			return
		}
		_, meta, err := prepareData(HandlerMetaData, data, 0, maxTagBytes)
		if err != nil {
			if !strings.Contains(err.Error(), ErrInvalidMetadata.Error()) {
				t.Fatalf("rejection %v does not wrap ErrInvalidMetadata", err)
			}
			return
		}
		b, err := appendAMF0(nil, meta)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAMF0(b)
		if err != nil || len(got) != 1 {
			t.Fatalf("decode = %v, %v", got, err)
		}
		if !reflect.DeepEqual(plainValue(got[0]), data) {
			t.Fatalf("round trip changed the value:\n got %#v\nwant %#v", plainValue(got[0]), data)
		}
	})
}

func TestFiniteCheck(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := finite("h", "p", f); err == nil {
			t.Errorf("%v accepted", f)
		}
	}
}
