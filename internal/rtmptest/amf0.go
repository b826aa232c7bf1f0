package rtmptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// AMF0 markers, from the AMF0 specification.
const (
	amf0Number      = 0x00
	amf0Boolean     = 0x01
	amf0String      = 0x02
	amf0Object      = 0x03
	amf0Null        = 0x05
	amf0Undefined   = 0x06
	amf0ECMAArray   = 0x08
	amf0ObjectEnd   = 0x09
	amf0StrictArray = 0x0a
	amf0Date        = 0x0b
	amf0LongString  = 0x0c
	amf0Unsupported = 0x0d
	amf0TypedObject = 0x10
)

// maxAMF0Depth bounds nesting so a hostile or broken publisher cannot make
// the decoder recurse without limit.
const maxAMF0Depth = 32

var errShortAMF0 = errors.New("amf0: truncated value")

// DecodeAMF0 decodes every AMF0 value in b, in order.
//
// Values are plain Go types so tests can compare them with == or
// reflect.DeepEqual:
//
//	number                 float64
//	boolean                bool
//	string, long string    string
//	null, undefined        nil
//	object, ECMA array     map[string]any (typed objects drop the class name)
//	strict array           []any
//	date                   time.Time in UTC (the time-zone field is ignored,
//	                       as the specification says it should be)
//
// The decoder gortmplib ships rejects dates and long strings and returns
// objects as ordered slices, which is why the receiver has its own.
func DecodeAMF0(b []byte) ([]any, error) {
	var out []any
	for len(b) > 0 {
		v, rest, err := decodeAMF0(b, 0)
		if err != nil {
			return out, fmt.Errorf("value %d: %w", len(out), err)
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

func decodeAMF0(b []byte, depth int) (any, []byte, error) {
	if depth > maxAMF0Depth {
		return nil, nil, errors.New("amf0: nested too deeply")
	}
	if len(b) < 1 {
		return nil, nil, errShortAMF0
	}
	marker, b := b[0], b[1:]
	switch marker {
	case amf0Number:
		if len(b) < 8 {
			return nil, nil, errShortAMF0
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case amf0Boolean:
		if len(b) < 1 {
			return nil, nil, errShortAMF0
		}
		return b[0] != 0, b[1:], nil
	case amf0String:
		return decodeString(b, 2)
	case amf0LongString:
		return decodeString(b, 4)
	case amf0Null, amf0Undefined, amf0Unsupported:
		return nil, b, nil
	case amf0Object:
		return decodeProperties(b, depth)
	case amf0TypedObject:
		_, b, err := decodeString(b, 2)
		if err != nil {
			return nil, nil, err
		}
		return decodeProperties(b, depth)
	case amf0ECMAArray:
		// The count is only a hint; the array ends with an object-end marker.
		if len(b) < 4 {
			return nil, nil, errShortAMF0
		}
		return decodeProperties(b[4:], depth)
	case amf0StrictArray:
		if len(b) < 4 {
			return nil, nil, errShortAMF0
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		// Every element takes at least one byte, so a count larger than
		// what is left is corrupt, not a reason to allocate.
		if uint64(n) > uint64(len(b)) {
			return nil, nil, errShortAMF0
		}
		arr := make([]any, 0, n)
		for range n {
			v, rest, err := decodeAMF0(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			arr = append(arr, v)
			b = rest
		}
		return arr, b, nil
	case amf0Date:
		if len(b) < 10 {
			return nil, nil, errShortAMF0
		}
		ms := math.Float64frombits(binary.BigEndian.Uint64(b))
		return time.UnixMilli(int64(ms)).UTC(), b[10:], nil
	default:
		return nil, nil, fmt.Errorf("amf0: unsupported marker 0x%02x", marker)
	}
}

// decodeString reads a string whose length prefix is lenSize bytes.
func decodeString(b []byte, lenSize int) (string, []byte, error) {
	if len(b) < lenSize {
		return "", nil, errShortAMF0
	}
	var n uint64
	if lenSize == 2 {
		n = uint64(binary.BigEndian.Uint16(b))
	} else {
		n = uint64(binary.BigEndian.Uint32(b))
	}
	b = b[lenSize:]
	if uint64(len(b)) < n {
		return "", nil, errShortAMF0
	}
	return string(b[:n]), b[n:], nil
}

// decodeProperties reads key/value pairs up to the object-end marker.
func decodeProperties(b []byte, depth int) (map[string]any, []byte, error) {
	obj := map[string]any{}
	for {
		key, rest, err := decodeString(b, 2)
		if err != nil {
			return nil, nil, err
		}
		b = rest
		if key == "" {
			if len(b) < 1 {
				return nil, nil, errShortAMF0
			}
			if b[0] != amf0ObjectEnd {
				return nil, nil, fmt.Errorf("amf0: empty key not followed by object end (0x%02x)", b[0])
			}
			return obj, b[1:], nil
		}
		v, rest, err := decodeAMF0(b, depth+1)
		if err != nil {
			return nil, nil, fmt.Errorf("key %q: %w", key, err)
		}
		obj[key] = v
		b = rest
	}
}
