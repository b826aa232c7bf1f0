// Package bridge is roomcast's room side: the broadcast lifecycle and the
// operations that the HTTP API, the CLI and (later) the room protocol all
// use. It reaches rooms through the Rooms interface and media through
// package egress.
package bridge

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/roomcast/roomcast/egress"
)

// Error is what roomcast reports to users: a stable numeric code grouped
// as nanoStream users know them (1xxx invalid input, 3xxx connection, 4xxx
// auth, 5xxx broadcast/destination, 6xxx media/track, 7xxx server), a
// stable name, and a message that says what was wrong. Messages never
// contain stream keys.
type Error struct {
	Code    int    `json:"code"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Name, e.Code, e.Message) }

// Codes. Add new ones; never renumber.
const (
	CodeInvalidRequest      = 1001
	CodeInvalidURL          = 1002
	CodeUnknownType         = 1003
	CodeMessageTooLarge     = 1004
	CodeRateLimited         = 1005
	CodeInvalidMetadata     = 1006
	CodeUnsupportedVer      = 1007
	CodeUnknownDest         = 1008
	CodeUnauthorized        = 4001
	CodeForbidden           = 4002
	CodeURLNotAllowed       = 4003
	CodeRoomConnect         = 3001
	CodeRoomNotFound        = 3002
	CodeDestinationFailed   = 5001
	CodeBroadcastExists     = 5002
	CodeBroadcastNotRunning = 5003
	CodeBroadcastNotFound   = 5004
	CodeOutputNotFound      = 5005
	CodeOutputConflict      = 5006
	CodeTracksNotFound      = 6001
	CodeUnsupportedCodec    = 6002
	CodeMediaFailed         = 6003
	CodeTrackChanged        = 6004
	CodeInternal            = 7001
	CodeCapacity            = 7002
	CodeShuttingDown        = 7003
)

var codeNames = map[int]string{
	CodeInvalidRequest:      "invalid_request",
	CodeInvalidURL:          "invalid_url",
	CodeUnknownType:         "unknown_message_type",
	CodeMessageTooLarge:     "message_too_large",
	CodeRateLimited:         "rate_limited",
	CodeInvalidMetadata:     "invalid_metadata",
	CodeUnsupportedVer:      "unsupported_version",
	CodeUnknownDest:         "unknown_destination",
	CodeUnauthorized:        "unauthorized",
	CodeForbidden:           "forbidden",
	CodeURLNotAllowed:       "url_not_allowed",
	CodeRoomConnect:         "room_connect_failed",
	CodeRoomNotFound:        "room_not_found",
	CodeDestinationFailed:   "destination_failed",
	CodeBroadcastExists:     "broadcast_exists",
	CodeBroadcastNotFound:   "broadcast_not_found",
	CodeOutputNotFound:      "output_not_found",
	CodeBroadcastNotRunning: "broadcast_not_running",
	CodeOutputConflict:      "output_conflict",
	CodeTracksNotFound:      "tracks_not_found",
	CodeUnsupportedCodec:    "unsupported_codec",
	CodeMediaFailed:         "media_failed",
	CodeTrackChanged:        "track_changed",
	CodeInternal:            "internal_error",
	CodeCapacity:            "capacity_exceeded",
	CodeShuttingDown:        "shutting_down",
}

// NewError returns an Error with code's name.
func NewError(code int, format string, args ...any) *Error {
	return newError(code, format, args...)
}

func newError(code int, format string, args ...any) *Error {
	return &Error{Code: code, Name: codeNames[code], Message: fmt.Sprintf(format, args...)}
}

// HTTPStatus is the status the HTTP API answers an Error with.
func (e *Error) HTTPStatus() int {
	switch {
	case e.Code == CodeBroadcastNotFound || e.Code == CodeRoomNotFound || e.Code == CodeOutputNotFound:
		return http.StatusNotFound
	case e.Code == CodeMessageTooLarge:
		return http.StatusRequestEntityTooLarge
	case e.Code == CodeRateLimited:
		return http.StatusTooManyRequests
	case e.Code == CodeUnauthorized:
		return http.StatusUnauthorized
	case e.Code == CodeBroadcastExists || e.Code == CodeBroadcastNotRunning || e.Code == CodeOutputConflict:
		return http.StatusConflict
	case e.Code < 2000:
		return http.StatusBadRequest
	case e.Code >= 4000 && e.Code < 5000:
		return http.StatusForbidden
	case e.Code == CodeRoomConnect || e.Code == CodeDestinationFailed:
		return http.StatusBadGateway
	case e.Code >= 6000 && e.Code < 7000:
		return http.StatusUnprocessableEntity
	case e.Code == CodeCapacity || e.Code == CodeShuttingDown:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// toError classifies an error from the room or media side.
func toError(err error) *Error {
	var e *Error
	var oe *egress.OutputError
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrRoomNotFound):
		return newError(CodeRoomNotFound, "%v", err)
	case errors.Is(err, ErrTracksNotFound):
		return newError(CodeTracksNotFound, "%v", err)
	case errors.Is(err, ErrTrackChanged):
		return newError(CodeTrackChanged, "%v", err)
	case errors.Is(err, ErrRoomConnect):
		return newError(CodeRoomConnect, "%v", err)
	case errors.Is(err, egress.ErrInvalidMetadata):
		return newError(CodeInvalidMetadata, "%v", err)
	case errors.Is(err, egress.ErrUnsupportedCodec):
		return newError(CodeUnsupportedCodec, "%v", err)
	case errors.As(err, &oe):
		return newError(CodeDestinationFailed, "%v", err)
	}
	return newError(CodeMediaFailed, "%v", err)
}
