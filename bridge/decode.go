package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// DecodeJSON reads exactly one JSON object from r into v, at most limit
// bytes, rejecting unknown fields and trailing data. Its errors are
// CodeInvalidRequest and say what was wrong and where, so the HTTP API and
// the room protocol answer bad input the same way.
func DecodeJSON(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	var tooBig *http.MaxBytesError
	switch {
	case int64(len(data)) > limit || errors.As(err, &tooBig):
		return newError(CodeMessageTooLarge, "larger than %d bytes", limit)
	case err != nil:
		return newError(CodeInvalidRequest, "cannot read it: %v", err)
	case !utf8.Valid(data):
		// encoding/json would quietly turn bad bytes into U+FFFD.
		return newError(CodeInvalidRequest, "not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		return newError(CodeInvalidRequest, "data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return newError(CodeInvalidRequest, "not valid JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		return newError(CodeInvalidRequest, "field %q must be %s, not %s", typ.Field, jsonType(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.EOF):
		return newError(CodeInvalidRequest, "empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(CodeInvalidRequest, "not valid JSON: it ends before the object does")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return newError(CodeInvalidRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return newError(CodeInvalidRequest, "%v", err)
}

// jsonType names a Go kind the way a JSON sender thinks of it.
func jsonType(kind string) string {
	switch kind {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	}
	if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") || strings.HasPrefix(kind, "float") {
		return "a number"
	}
	return kind
}
