package rtmptest

import (
	"encoding/binary"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

func TestDecodeAMF0(t *testing.T) {
	encode := func(values ...any) []byte {
		b, err := amf0.Data(values).Marshal()
		if err != nil {
			t.Fatalf("encode %v: %v", values, err)
		}
		return b
	}
	date := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	dateBytes := append([]byte{amf0Date}, binary.BigEndian.AppendUint64(nil, math.Float64bits(float64(date.UnixMilli())))...)
	dateBytes = append(dateBytes, 0, 0) // time zone, ignored
	long := append([]byte{amf0LongString}, binary.BigEndian.AppendUint32(nil, 3)...)
	long = append(long, "abc"...)

	tests := []struct {
		name string
		in   []byte
		want []any
	}{
		{"scalars", encode(1.5, "s", true, nil, amf0.Undefined{}), []any{1.5, "s", true, nil, nil}},
		{
			"object",
			encode(amf0.Object{{Key: "app", Value: "live"}, {Key: "n", Value: 2.0}}),
			[]any{map[string]any{"app": "live", "n": 2.0}},
		},
		{
			"ecma array nested",
			encode("onMetaData", amf0.ECMAArray{{Key: "width", Value: 320.0}, {Key: "o", Value: amf0.Object{{Key: "k", Value: false}}}}),
			[]any{"onMetaData", map[string]any{"width": 320.0, "o": map[string]any{"k": false}}},
		},
		{"strict array", encode(amf0.StrictArray{1.0, "two", nil}), []any{[]any{1.0, "two", nil}}},
		{"date", dateBytes, []any{date}},
		{"long string", long, []any{"abc"}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeAMF0(tt.in)
			if err != nil {
				t.Fatalf("DecodeAMF0: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeAMF0 = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeAMF0Errors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"truncated number", []byte{amf0Number, 1, 2}},
		{"truncated string", []byte{amf0String, 0, 5, 'a'}},
		{"unterminated object", []byte{amf0Object, 0, 1, 'k', amf0Null}},
		{"huge strict array", []byte{amf0StrictArray, 0xff, 0xff, 0xff, 0xff}},
		{"reference", []byte{0x07, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := DecodeAMF0(tt.in); err == nil {
				t.Errorf("DecodeAMF0 = %#v, want an error", got)
			}
		})
	}
}
