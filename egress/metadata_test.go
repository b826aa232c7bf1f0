package egress

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// nest returns {"k1": {"k2": ... {"leaf": 1}}} with n objects below data.
func nest(keys ...string) map[string]any {
	var v any = 1.0
	for i := len(keys) - 1; i >= 0; i-- {
		v = map[string]any{keys[i]: v}
	}
	return v.(map[string]any)
}

func TestValidateDataRejects(t *testing.T) {
	big := map[string]any{"text": strings.Repeat("x", 70<<10)}
	for _, tc := range []struct {
		name    string
		handler string
		data    map[string]any
		max     int
		want    string
	}{
		{"depth 7", HandlerCuePoint, map[string]any{"name": "c", "parameters": nest("chapter", "info", "a", "b", "c", "d")}, 0,
			"onCuePoint data.parameters.chapter.info.a.b.c: depth 7 exceeds the limit of 6"},
		{"array counts as a level", HandlerMetaData, map[string]any{"a": nest("b", "c", "d", "e"), "l": []any{[]any{[]any{[]any{[]any{[]any{1.0}}}}}}}, 0,
			"data.l[0][0][0][0][0]: depth 7 exceeds the limit of 6"},
		{"over the default size", HandlerTextData, big, 0, "encoded size 71708 bytes exceeds the limit of 65536"},
		{"over a configured size", HandlerTextData, map[string]any{"text": "hello"}, 10, "exceeds the limit of 10"},
		{"unsupported handler", "onFoo", map[string]any{}, 0, `handler "onFoo" is not supported`},
		{"no data", HandlerCuePoint, nil, 0, "onCuePoint data: missing (want a JSON object)"},
		{"parameters not an object", HandlerCuePoint, map[string]any{"name": "c", "parameters": "x"}, 0, `data.parameters: want an object, got "x"`},
		{"cue without name", HandlerCuePoint, map[string]any{"type": "event"}, 0, "data.name: want a non-empty string"},
		{"cue bad type", HandlerCuePoint, map[string]any{"name": "c", "type": "ad"}, 0, `data.type: want "event" or "navigation", got "ad"`},
		{"cue unknown field", HandlerCuePoint, map[string]any{"name": "c", "when": 1.0}, 0, "data.when: unknown field"},
		{"cue negative time", HandlerCuePoint, map[string]any{"name": "c", "time": -1.0}, 0, "data.time: want seconds"},
		{"text without text", HandlerTextData, map[string]any{"language": "en"}, 0, "data.text: want a string, got nothing"},
		{"NaN", HandlerMetaData, map[string]any{"x": math.NaN()}, 0, "data.x: NaN is not a finite number"},
		{"Infinity", HandlerMetaData, map[string]any{"a": []any{math.Inf(-1)}}, 0, "data.a[0]: -Inf is not a finite number"},
		{"invalid UTF-8 value", HandlerTextData, map[string]any{"text": "a\xffb"}, 0, "data.text: string is not valid UTF-8"},
		{"invalid UTF-8 key", HandlerMetaData, map[string]any{"k\xff": 1.0}, 0, `data."k\xff": key is not valid UTF-8`},
		{"empty key", HandlerMetaData, map[string]any{"": 1.0}, 0, "key of 0 bytes"},
		{"stream field", HandlerMetaData, map[string]any{"width": 1.0}, 0, "data.width: set by the stream"},
		{"go type", HandlerMetaData, map[string]any{"c": make(chan int)}, 0, "data.c: unsupported type chan int"},
	} {
		err := ValidateData(tc.handler, tc.data, tc.max)
		if !errors.Is(err, ErrInvalidMetadata) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ValidateData = %v, want ErrInvalidMetadata containing %q", tc.name, err, tc.want)
		}
	}
}

func TestValidateDataAccepts(t *testing.T) {
	for _, tc := range []struct {
		handler string
		data    map[string]any
	}{
		{HandlerCuePoint, map[string]any{"name": "ad", "parameters": nest("a", "b", "c", "d", "e")}}, // depth 6
		{HandlerCuePoint, map[string]any{"name": "ch", "type": "navigation", "time": 12.5}},
		{HandlerTextData, map[string]any{"text": "héllo", "language": "fr", "trackid": 1.0, "extra": []any{true, nil}}},
		{HandlerMetaData, map[string]any{"title": "Show", "n": 3, "when": time.Now()}},
	} {
		if err := ValidateData(tc.handler, tc.data, 0); err != nil {
			t.Errorf("%s %v: %v", tc.handler, tc.data, err)
		}
	}
}

// TestCuePointForm: the wire form players expect, with the time taken
// from the stream clock when the sender leaves it out.
func TestCuePointForm(t *testing.T) {
	body, _, err := prepareData(HandlerCuePoint, map[string]any{"name": "ad-break", "parameters": map[string]any{"id": 7}}, 2500*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := decodeAMF0(body)
	if err != nil || len(vals) != 2 || vals[0] != "onCuePoint" {
		t.Fatalf("decoded %v, %v", vals, err)
	}
	obj, ok := vals[1].(amfObject)
	if !ok {
		t.Fatalf("cue point is %T, want an AMF0 object", vals[1])
	}
	var keys []string
	for _, p := range obj {
		keys = append(keys, p.Key)
	}
	if strings.Join(keys, ",") != "name,time,type,parameters" {
		t.Errorf("keys %v, want name,time,type,parameters", keys)
	}
	if v, _ := obj.get("time"); v != 2.5 {
		t.Errorf("time = %v, want 2.5 s from the stream clock", v)
	}
	if v, _ := obj.get("type"); v != "event" {
		t.Errorf("type = %v, want the default event", v)
	}
	if v, _ := obj.get("parameters"); plainValue(v).(map[string]any)["id"] != 7.0 {
		t.Errorf("parameters = %v", v)
	}
}

func TestValidateConnectInfo(t *testing.T) {
	if err := ValidateConnectInfo(map[string]any{"token": "abc", "bitrate": 2500.0, "n": 3, "auth": true}); err != nil {
		t.Errorf("flat object rejected: %v", err)
	}
	if err := ValidateConnectInfo(nil); err != nil {
		t.Errorf("nil rejected: %v", err)
	}
	for _, tc := range []struct {
		info map[string]any
		want string
	}{
		{map[string]any{"o": map[string]any{}}, "connectInfo.o: want a string, number or boolean, got an object"},
		{map[string]any{"a": []any{}}, "connectInfo.a: want a string, number or boolean, got an array"},
		{map[string]any{"n": nil}, "connectInfo.n: want a string, number or boolean, got nothing"},
		{map[string]any{"app": "x"}, "connectInfo.app: set by roomcast"},
		{map[string]any{"x": math.Inf(1)}, "connectInfo.x: +Inf is not a finite number"},
		{map[string]any{"s": strings.Repeat("y", 5000)}, "exceeds the limit of 4096"},
	} {
		err := ValidateConnectInfo(tc.info)
		if !errors.Is(err, ErrInvalidMetadata) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateConnectInfo(%v) = %v, want error containing %q", tc.info, err, tc.want)
		}
	}
}

// TestSendDataOutsideRun: before Run, messages wait (bounded) for the
// first frame; after Run they are refused.
func TestSendDataOutsideRun(t *testing.T) {
	video, audio := testTracks(t)
	s, err := New(Options{Outputs: []Output{{ID: "o", URL: mustURL(t, "rtmp://127.0.0.1:1/live/key")}}}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxPendingData {
		ts, err := s.SendData(HandlerCuePoint, map[string]any{"name": "early"})
		if err != nil || ts != 0 {
			t.Fatalf("message %d before Run: %v, %v; want stamped 0", i, ts, err)
		}
	}
	if _, err := s.SendData(HandlerCuePoint, map[string]any{"name": "one too many"}); err == nil || !strings.Contains(err.Error(), "64 messages already wait") {
		t.Errorf("message past the bound: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = s.Run(ctx)
	if _, err := s.SendData(HandlerCuePoint, map[string]any{"name": "late"}); err == nil || !strings.Contains(err.Error(), "the stream has ended") {
		t.Errorf("message after Run: %v", err)
	}
}

// TestBackoffDelays: the default policy's waits are what its comments
// promise: 1 s, doubling to 10 s, 26 s in all before giving up.
func TestBackoffDelays(t *testing.T) {
	var waits []time.Duration
	var total time.Duration
	for f := range defaultBackoff.attempts {
		d := defaultBackoff.delay(f)
		waits = append(waits, d)
		total += d
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}
	if !slices.Equal(waits, want) || total != 26*time.Second {
		t.Errorf("waits %v (total %v), want %v (26s)", waits, total, want)
	}
}
