package egress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// AMF0 is the value encoding of RTMP commands and FLV script tags (AMF0
// specification, Adobe, 2007). roomcast has its own codec rather than
// gortmplib's pkg/amf0 because that one cannot encode long strings (it
// silently truncates the length of a string over 64 KiB), has no dates,
// and recurses without a bound when decoding; its chunk layer is used as is.

// AMF0 markers.
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
	amf0TypedObject = 0x10
)

// amf0MaxNesting bounds recursion in the codec itself, whatever the
// caller's limits: a hostile server reply must not exhaust the stack.
const amf0MaxNesting = 64

// amfProp is one key/value pair of an AMF0 object or ECMA array.
type amfProp struct {
	Key   string
	Value any
}

// amfObject is an AMF0 object with its keys in wire order. Cue points and
// commands are objects.
type amfObject []amfProp

// amfECMAArray is an AMF0 ECMA array, the associative array onMetaData
// carries by convention.
type amfECMAArray []amfProp

var errAMF0Short = errors.New("amf0: truncated value")

// appendAMF0 appends the encoding of each value to b. It takes float64,
// bool, string, nil, time.Time (a date), []any (a strict array),
// amfObject, amfECMAArray and map[string]any (an object, keys sorted so the
// bytes are deterministic).
func appendAMF0(b []byte, values ...any) ([]byte, error) {
	for _, v := range values {
		var err error
		if b, err = appendValue(b, v, 0); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > amf0MaxNesting {
		return nil, errors.New("amf0: nested too deeply")
	}
	switch v := v.(type) {
	case nil:
		return append(b, amf0Null), nil
	case float64:
		b = append(b, amf0Number)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v)), nil
	case bool:
		if v {
			return append(b, amf0Boolean, 1), nil
		}
		return append(b, amf0Boolean, 0), nil
	case string:
		if len(v) <= math.MaxUint16 {
			b = append(b, amf0String)
			b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
			return append(b, v...), nil
		}
		if uint64(len(v)) > math.MaxUint32 {
			return nil, fmt.Errorf("amf0: string of %d bytes is too long", len(v))
		}
		b = append(b, amf0LongString)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return append(b, v...), nil
	case time.Time:
		// Milliseconds since the epoch, then a time zone the specification
		// says to send as 0 and ignore.
		b = append(b, amf0Date)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(float64(v.UnixMilli())))
		return append(b, 0, 0), nil
	case []any:
		if uint64(len(v)) > math.MaxUint32 {
			return nil, fmt.Errorf("amf0: array of %d elements is too long", len(v))
		}
		b = append(b, amf0StrictArray)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		for _, e := range v {
			var err error
			if b, err = appendValue(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case amfObject:
		return appendProps(append(b, amf0Object), v, depth)
	case amfECMAArray:
		b = append(b, amf0ECMAArray)
		// The count is a hint readers ignore; the end marker ends it.
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return appendProps(b, v, depth)
	case map[string]any:
		return appendProps(append(b, amf0Object), sortedProps(v), depth)
	default:
		return nil, fmt.Errorf("amf0: cannot encode %T", v)
	}
}

func appendProps(b []byte, props []amfProp, depth int) ([]byte, error) {
	for _, p := range props {
		// An empty key is the object-end marker's first half.
		if p.Key == "" || len(p.Key) > math.MaxUint16 {
			return nil, fmt.Errorf("amf0: object key of %d bytes (want 1 to 65535)", len(p.Key))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.Key)))
		b = append(b, p.Key...)
		var err error
		if b, err = appendValue(b, p.Value, depth+1); err != nil {
			return nil, err
		}
	}
	return append(b, 0, 0, amf0ObjectEnd), nil
}

func sortedProps(m map[string]any) amfObject {
	props := make(amfObject, 0, len(m))
	for k, v := range m {
		props = append(props, amfProp{k, v})
	}
	slices.SortFunc(props, func(a, b amfProp) int { return strings.Compare(a.Key, b.Key) })
	return props
}

// decodeAMF0 decodes every value in b. Numbers come back as float64,
// strings (short and long) as string, null and undefined as nil, dates as
// time.Time in UTC, strict arrays as []any, objects (typed ones without
// their class name) as amfObject and ECMA arrays as amfECMAArray.
func decodeAMF0(b []byte) ([]any, error) {
	var out []any
	for len(b) > 0 {
		v, rest, err := decodeValue(b, 0)
		if err != nil {
			return out, fmt.Errorf("amf0 value %d: %w", len(out), err)
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

func decodeValue(b []byte, depth int) (any, []byte, error) {
	if depth > amf0MaxNesting {
		return nil, nil, errors.New("amf0: nested too deeply")
	}
	if len(b) == 0 {
		return nil, nil, errAMF0Short
	}
	marker, b := b[0], b[1:]
	switch marker {
	case amf0Number:
		if len(b) < 8 {
			return nil, nil, errAMF0Short
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case amf0Boolean:
		if len(b) < 1 {
			return nil, nil, errAMF0Short
		}
		return b[0] != 0, b[1:], nil
	case amf0String:
		return decodeString(b, 2)
	case amf0LongString:
		return decodeString(b, 4)
	case amf0Null, amf0Undefined:
		return nil, b, nil
	case amf0Date:
		if len(b) < 10 {
			return nil, nil, errAMF0Short
		}
		ms := math.Float64frombits(binary.BigEndian.Uint64(b))
		// Beyond ±2^53 ms a date is not a date any encoder writes.
		if math.IsNaN(ms) || math.Abs(ms) > 1<<53 {
			return nil, nil, fmt.Errorf("amf0: date %v out of range", ms)
		}
		return time.UnixMilli(int64(ms)).UTC(), b[10:], nil
	case amf0StrictArray:
		if len(b) < 4 {
			return nil, nil, errAMF0Short
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		// Every element takes at least a byte: a larger count is corrupt,
		// not a reason to allocate.
		if uint64(n) > uint64(len(b)) {
			return nil, nil, errAMF0Short
		}
		arr := make([]any, 0, n)
		for range n {
			v, rest, err := decodeValue(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			arr = append(arr, v)
			b = rest
		}
		return arr, b, nil
	case amf0Object:
		props, rest, err := decodeProps(b, depth)
		return amfObject(props), rest, err
	case amf0TypedObject:
		_, rest, err := decodeString(b, 2)
		if err != nil {
			return nil, nil, err
		}
		props, rest, err := decodeProps(rest, depth)
		return amfObject(props), rest, err
	case amf0ECMAArray:
		if len(b) < 4 {
			return nil, nil, errAMF0Short
		}
		props, rest, err := decodeProps(b[4:], depth)
		return amfECMAArray(props), rest, err
	default:
		return nil, nil, fmt.Errorf("amf0: unsupported marker 0x%02x", marker)
	}
}

func decodeString(b []byte, lenSize int) (string, []byte, error) {
	if len(b) < lenSize {
		return "", nil, errAMF0Short
	}
	var n uint64
	if lenSize == 2 {
		n = uint64(binary.BigEndian.Uint16(b))
	} else {
		n = uint64(binary.BigEndian.Uint32(b))
	}
	b = b[lenSize:]
	if uint64(len(b)) < n {
		return "", nil, errAMF0Short
	}
	return string(b[:n]), b[n:], nil
}

func decodeProps(b []byte, depth int) ([]amfProp, []byte, error) {
	props := []amfProp{}
	for {
		key, rest, err := decodeString(b, 2)
		if err != nil {
			return nil, nil, err
		}
		b = rest
		if key == "" {
			if len(b) == 0 {
				return nil, nil, errAMF0Short
			}
			if b[0] != amf0ObjectEnd {
				return nil, nil, fmt.Errorf("amf0: empty key without object end (0x%02x)", b[0])
			}
			return props, b[1:], nil
		}
		v, rest, err := decodeValue(b, depth+1)
		if err != nil {
			return nil, nil, fmt.Errorf("key %q: %w", key, err)
		}
		props = append(props, amfProp{key, v})
		b = rest
	}
}

// get returns the value of the first property named key.
func (o amfObject) get(key string) (any, bool) {
	for _, p := range o {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// plainValue turns decoded objects and ECMA arrays into map[string]any,
// recursively, so decoded values compare with JSON-shaped ones.
func plainValue(v any) any {
	switch v := v.(type) {
	case amfObject:
		return plainProps(v)
	case amfECMAArray:
		return plainProps(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plainValue(e)
		}
		return out
	}
	return v
}

func plainProps(props []amfProp) map[string]any {
	m := make(map[string]any, len(props))
	for _, p := range props {
		m[p.Key] = plainValue(p.Value)
	}
	return m
}
