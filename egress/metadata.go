package egress

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrInvalidMetadata is wrapped by every error that rejects script data or
// connect fields; the error's text says which field and which limit.
var ErrInvalidMetadata = errors.New("invalid metadata")

// Script data handlers SendData takes: the names players and ingest
// servers know.
const (
	HandlerMetaData = "onMetaData"
	HandlerCuePoint = "onCuePoint"
	HandlerTextData = "onTextData"
)

// Metadata limits.
const (
	// MaxMetadataDepth is how deeply objects and arrays may nest, the data
	// object itself being level 1: nanoStream's limit, which its users'
	// payloads already respect.
	MaxMetadataDepth = 6
	// DefaultMaxMetadataBytes bounds one encoded data message when
	// Options.MaxMetadataBytes is 0: far above any real cue point, small
	// enough that a message never delays video by more than a few
	// milliseconds on a 5 Mb/s uplink.
	DefaultMaxMetadataBytes = 64 << 10
	// maxTagBytes is FLV's limit: a tag's size field has 24 bits.
	maxTagBytes = 1<<24 - 1
	// maxConnectInfoBytes bounds the extra connect fields: ingests put
	// the whole connect command in one chunk and some log it.
	maxConnectInfoBytes = 4 << 10
)

// streamMetaKeys are the onMetaData fields that describe the media, set by
// flvmux or roomcast. User keys may not replace them: a wrong width or
// codec id breaks players.
var streamMetaKeys = map[string]bool{
	"duration": true, "filesize": true, "width": true, "height": true,
	"AspectRatioX": true, "AspectRatioY": true, "framerate": true,
	"videocodecid": true, "videodatarate": true, "audiocodecid": true,
	"audiodatarate": true, "audiosamplerate": true, "audiosamplesize": true,
	"stereo": true, "metadatacreator": true, "encoder": true, "creationdate": true,
}

// connectKeys are the connect command fields roomcast sets itself.
// objectEncoding would switch the session to AMF3.
var connectKeys = map[string]bool{
	"app": true, "type": true, "flashVer": true, "tcUrl": true, "objectEncoding": true,
}

// ValidateData runs the checks SendData runs, so a start request can be
// rejected before anything connects. maxBytes ≤ 0 means
// DefaultMaxMetadataBytes. An onMetaData update can still fail in SendData
// when the keys merged so far outgrow maxBytes.
func ValidateData(handler string, data map[string]any, maxBytes int) error {
	_, _, err := prepareData(handler, data, 0, maxBytes)
	return err
}

// prepareData checks data for handler and converts it to AMF0 values. For
// onCuePoint and onTextData it returns the encoded script tag body, with a
// cue point's missing time taken from ts; for onMetaData the normalized
// keys, which the stream merges into its onMetaData.
func prepareData(handler string, data map[string]any, ts time.Duration, maxBytes int) (body []byte, meta map[string]any, err error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMetadataBytes
	}
	if data == nil {
		return nil, nil, invalid(handler, "data", "missing (want a JSON object)")
	}
	obj, err := normalizeObject(handler, "data", data, 1)
	if err != nil {
		return nil, nil, err
	}
	var value any
	switch handler {
	case HandlerMetaData:
		for k := range obj {
			if streamMetaKeys[k] {
				return nil, nil, invalid(handler, "data."+k, "set by the stream, cannot be replaced")
			}
		}
		meta, value = obj, amfECMAArray(sortedProps(obj))
	case HandlerCuePoint:
		if value, err = cuePoint(obj, ts); err != nil {
			return nil, nil, err
		}
	case HandlerTextData:
		if value, err = textData(obj); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("egress: %w: handler %q is not supported (want %s, %s or %s)",
			ErrInvalidMetadata, handler, HandlerMetaData, HandlerCuePoint, HandlerTextData)
	}
	body, err = appendAMF0(nil, handler, value)
	if err != nil {
		return nil, nil, invalid(handler, "data", "%v", err)
	}
	if len(body) > maxBytes {
		return nil, nil, invalid(handler, "data", "encoded size %d bytes exceeds the limit of %d", len(body), maxBytes)
	}
	return body, meta, nil
}

// cuePoint builds an onCuePoint object in the form Flash defined and
// players and ingests still expect: name, time in seconds, type and
// parameters.
func cuePoint(data map[string]any, ts time.Duration) (amfObject, error) {
	const h = HandlerCuePoint
	for k := range data {
		switch k {
		case "name", "time", "type", "parameters":
		default:
			return nil, invalid(h, "data."+k, "unknown field (onCuePoint takes name, time, type and parameters)")
		}
	}
	name, ok := data["name"].(string)
	if !ok || name == "" {
		return nil, invalid(h, "data.name", "want a non-empty string, got %s", describe(data["name"]))
	}
	t := ts.Seconds()
	if v, ok := data["time"]; ok {
		f, isNum := v.(float64)
		if !isNum || f < 0 {
			return nil, invalid(h, "data.time", "want seconds as a number ≥ 0, got %s", describe(v))
		}
		t = f
	}
	typ := "event"
	if v, ok := data["type"]; ok {
		s, _ := v.(string)
		if s != "event" && s != "navigation" {
			return nil, invalid(h, "data.type", `want "event" or "navigation", got %s`, describe(v))
		}
		typ = s
	}
	params := map[string]any{}
	if v, ok := data["parameters"]; ok {
		p, isObj := v.(map[string]any)
		if !isObj {
			return nil, invalid(h, "data.parameters", "want an object, got %s", describe(v))
		}
		params = p
	}
	return amfObject{{"name", name}, {"time", t}, {"type", typ}, {"parameters", params}}, nil
}

// textData builds an onTextData object: text, then language and trackid
// if given, then any other keys.
func textData(data map[string]any) (amfObject, error) {
	const h = HandlerTextData
	text, ok := data["text"].(string)
	if !ok {
		return nil, invalid(h, "data.text", "want a string, got %s", describe(data["text"]))
	}
	obj := amfObject{{"text", text}}
	if v, ok := data["language"]; ok {
		if _, isStr := v.(string); !isStr {
			return nil, invalid(h, "data.language", "want a string, got %s", describe(v))
		}
		obj = append(obj, amfProp{"language", v})
	}
	if v, ok := data["trackid"]; ok {
		if _, isNum := v.(float64); !isNum {
			return nil, invalid(h, "data.trackid", "want a number, got %s", describe(v))
		}
		obj = append(obj, amfProp{"trackid", v})
	}
	for _, p := range sortedProps(data) {
		if p.Key != "text" && p.Key != "language" && p.Key != "trackid" {
			obj = append(obj, p)
		}
	}
	return obj, nil
}

// ValidateConnectInfo checks extra fields for the RTMP connect command
// (nanoStream's rtmpconnectinfo): a flat object whose values are strings,
// numbers or booleans, whose keys are not ones roomcast sets itself.
func ValidateConnectInfo(info map[string]any) error {
	_, err := connectFields(info)
	return err
}

// connectFields returns info as connect command properties, keys sorted.
func connectFields(info map[string]any) (amfObject, error) {
	const h = "connectInfo"
	obj, err := normalizeObject(h, h, info, 1)
	if err != nil {
		return nil, err
	}
	props := sortedProps(obj)
	for _, p := range props {
		switch p.Value.(type) {
		case string, float64, bool:
		default:
			return nil, invalid(h, h+"."+p.Key, "want a string, number or boolean, got %s", describe(p.Value))
		}
		if connectKeys[p.Key] {
			return nil, invalid(h, h+"."+p.Key, "set by roomcast, cannot be replaced")
		}
	}
	b, err := appendAMF0(nil, props)
	if err != nil {
		return nil, invalid(h, h, "%v", err)
	}
	if len(b) > maxConnectInfoBytes {
		return nil, invalid(h, h, "encoded size %d bytes exceeds the limit of %d", len(b), maxConnectInfoBytes)
	}
	return props, nil
}

func invalid(handler, path, format string, args ...any) error {
	return fmt.Errorf("egress: %w: %s %s: %s", ErrInvalidMetadata, handler, path, fmt.Sprintf(format, args...))
}

// normalizeObject checks an object at nesting level (data itself is 1)
// and returns a copy holding only the types the AMF0 encoder takes:
// numbers become float64, maps map[string]any, slices []any.
func normalizeObject(h, path string, m map[string]any, level int) (map[string]any, error) {
	if level > MaxMetadataDepth {
		return nil, invalid(h, path, "depth %d exceeds the limit of %d", level, MaxMetadataDepth)
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		kp := path + "." + k
		if !utf8.ValidString(k) {
			return nil, invalid(h, path+"."+strconv.Quote(k), "key is not valid UTF-8")
		}
		if k == "" || len(k) > math.MaxUint16 {
			return nil, invalid(h, kp, "key of %d bytes (want 1 to 65535)", len(k))
		}
		nv, err := normalize(h, kp, v, level+1)
		if err != nil {
			return nil, err
		}
		out[k] = nv
	}
	return out, nil
}

func normalize(h, path string, v any, level int) (any, error) {
	switch v := v.(type) {
	case nil, bool, time.Time:
		return v, nil
	case string:
		if !utf8.ValidString(v) {
			return nil, invalid(h, path, "string is not valid UTF-8")
		}
		return v, nil
	case float64:
		return finite(h, path, v)
	case float32:
		return finite(h, path, float64(v))
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case int32:
		return float64(v), nil
	case uint:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	case uint32:
		return float64(v), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, invalid(h, path, "number %q: %v", string(v), err)
		}
		return finite(h, path, f)
	case map[string]any:
		return normalizeObject(h, path, v, level)
	case []any:
		if level > MaxMetadataDepth {
			return nil, invalid(h, path, "depth %d exceeds the limit of %d", level, MaxMetadataDepth)
		}
		out := make([]any, len(v))
		for i, e := range v {
			ne, err := normalize(h, path+"["+strconv.Itoa(i)+"]", e, level+1)
			if err != nil {
				return nil, err
			}
			out[i] = ne
		}
		return out, nil
	default:
		return nil, invalid(h, path, "unsupported type %T (want what JSON can express)", v)
	}
}

func finite(h, path string, f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, invalid(h, path, "%v is not a finite number", f)
	}
	return f, nil
}

// describe names a value's JSON type for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "nothing"
	case string:
		return strconv.Quote(v)
	case float64, bool:
		return fmt.Sprint(v)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return reflect.TypeOf(v).String()
}
