package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// The room protocol, version 1: JSON on reliable data packets. Participants
// send control messages on TopicControl; roomcast answers each with an ack
// or an error on TopicStatus (to the sender only) and sends every
// broadcast's status there (to the whole room). docs/room-protocol.md is
// the reference for page authors.
const (
	ProtocolVersion = 1
	TopicControl    = "roomcast.control"
	TopicStatus     = "roomcast.status"
)

// Control message types.
const (
	TypeStart        = "start"
	TypeStop         = "stop"
	TypeMetadata     = "metadata"
	TypeAddOutput    = "addOutput"
	TypeRemoveOutput = "removeOutput"
)

// Status message types.
const (
	TypeAck    = "ack"
	TypeError  = "error"
	TypeStatus = "status"
)

// maxRequestID bounds the id a sender picks; it is echoed back.
const maxRequestID = 64

// ControlMessage is a decoded control message. Which fields are set depends on
// Type; BroadcastID, when empty, means the sender's own active broadcast.
type ControlMessage struct {
	Version     int
	Type        string
	RequestID   string
	BroadcastID string
	Start       StartRequest   // start (Room is never set: it is the room the message came from)
	Handler     string         // metadata
	Data        map[string]any // metadata
	Output      OutputRequest  // addOutput
	OutputID    string         // removeOutput
}

// envelope holds the fields every control message has.
type envelope struct {
	V         int    `json:"v"`
	Type      string `json:"type"`
	RequestID string `json:"requestId"`
}

// Each type's complete set of fields: anything else is an unknown field.
type (
	stopMsg struct {
		envelope
		BroadcastID string `json:"broadcastId"`
	}
	metadataMsg struct {
		envelope
		BroadcastID string         `json:"broadcastId"`
		Handler     string         `json:"handler"`
		Data        map[string]any `json:"data"`
	}
	addOutputMsg struct {
		envelope
		BroadcastID string         `json:"broadcastId"`
		Output      *OutputRequest `json:"output"`
	}
	removeOutputMsg struct {
		envelope
		BroadcastID string `json:"broadcastId"`
		OutputID    string `json:"outputId"`
	}
)

// DecodeControl parses one control message of at most limit bytes. On
// error the returned Control still carries the requestId when the message
// had a readable one, so the sender can match the error to its request.
func DecodeControl(data []byte, limit int) (ControlMessage, *Error) {
	c := ControlMessage{RequestID: peekRequestID(data)}
	if len(data) > limit {
		return c, newError(CodeMessageTooLarge, "control message is %d bytes; the limit is %d (room.max_message_bytes)", len(data), limit)
	}
	if !utf8.Valid(data) {
		return c, newError(CodeInvalidRequest, "control message is not valid UTF-8")
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return c, asInvalid(DecodeJSON(bytes.NewReader(data), int64(limit), &env))
	}
	switch {
	case env.V != 0 && env.V != ProtocolVersion:
		return c, newError(CodeUnsupportedVer, `field "v" is %d; this roomcast speaks version %d`, env.V, ProtocolVersion)
	case env.RequestID == "":
		return c, newError(CodeInvalidRequest, `field "requestId" is required (a string of 1 to %d characters)`, maxRequestID)
	case len(env.RequestID) > maxRequestID:
		return c, newError(CodeInvalidRequest, `field "requestId" is %d characters; at most %d are allowed`, len(env.RequestID), maxRequestID)
	case env.Type == "":
		return c, newError(CodeInvalidRequest, `field "type" is required: one of %s`, strings.Join(controlTypes, ", "))
	}
	c.Version, c.Type, c.RequestID = ProtocolVersion, env.Type, env.RequestID

	decodeFrom := func(data []byte, v any) *Error {
		if err := DecodeJSON(bytes.NewReader(data), int64(limit), v); err != nil {
			return asInvalid(err)
		}
		return nil
	}
	decode := func(v any) *Error { return decodeFrom(data, v) }
	var err *Error
	switch env.Type {
	case TypeStart:
		// The start fields are a StartRequest's: decode them alone so
		// errors name them as the HTTP API does.
		var fields map[string]json.RawMessage
		if err = decode(&fields); err != nil {
			break
		}
		delete(fields, "v")
		delete(fields, "type")
		delete(fields, "requestId")
		rest, _ := json.Marshal(fields)
		if err = decodeFrom(rest, &c.Start); err == nil {
			if c.Start.Room != "" {
				err = newError(CodeInvalidRequest, `field "room" is not allowed: a broadcast starts in the room the message was sent in`)
			}
		}
	case TypeStop:
		var m stopMsg
		if err = decode(&m); err == nil {
			c.BroadcastID = m.BroadcastID
		}
	case TypeMetadata:
		var m metadataMsg
		if err = decode(&m); err == nil {
			c.BroadcastID, c.Handler, c.Data = m.BroadcastID, m.Handler, m.Data
			switch {
			case m.Handler == "":
				err = newError(CodeInvalidRequest, `field "handler" is required: onMetaData, onCuePoint or onTextData`)
			case m.Data == nil:
				err = newError(CodeInvalidRequest, `field "data" is required: a JSON object`)
			}
		}
	case TypeAddOutput:
		var m addOutputMsg
		if err = decode(&m); err == nil {
			c.BroadcastID = m.BroadcastID
			if m.Output == nil {
				err = newError(CodeInvalidRequest, `field "output" is required: {"destination": name} or {"url": rtmp URL}`)
			} else {
				c.Output = *m.Output
			}
		}
	case TypeRemoveOutput:
		var m removeOutputMsg
		if err = decode(&m); err == nil {
			c.BroadcastID, c.OutputID = m.BroadcastID, m.OutputID
			if m.OutputID == "" {
				err = newError(CodeInvalidRequest, `field "outputId" is required`)
			}
		}
	default:
		err = newError(CodeUnknownType, `type %q is not a control message; use one of %s`, env.Type, strings.Join(controlTypes, ", "))
	}
	return c, err
}

var controlTypes = []string{TypeStart, TypeStop, TypeMetadata, TypeAddOutput, TypeRemoveOutput}

func asInvalid(err error) *Error {
	e := toError(err)
	e.Message = "control message: " + e.Message
	return e
}

// peekRequestID finds a top-level "requestId" string without decoding the
// whole message, so that even a malformed, unknown or oversize message is
// answered with the id its sender chose. It reads a bounded number of
// tokens and gives up quietly.
func peekRequestID(data []byte) string {
	const maxTokens = 256
	dec := json.NewDecoder(bytes.NewReader(data))
	depth := 0
	key := true // at depth 1, the next string token is a key
	for range maxTokens {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				depth++
			} else {
				depth--
			}
			key = depth == 1
		case string:
			if depth == 1 && key && t == "requestId" {
				if v, err := dec.Token(); err == nil {
					if id, ok := v.(string); ok && len(id) <= maxRequestID {
						return id
					}
				}
				return ""
			}
		}
		if depth == 1 {
			// Tokens alternate key, value; a nested value comes back as
			// delimiters, after which the next token is a key again.
			if _, isDelim := tok.(json.Delim); !isDelim {
				key = !key
			}
		}
	}
	return ""
}

// Status is a message on the status topic: an ack or an error for one
// request, or a broadcast's status.
type Status struct {
	V           int    `json:"v"`
	Type        string `json:"type"`
	RequestID   string `json:"requestId,omitempty"`
	BroadcastID string `json:"broadcastId,omitempty"`
	OutputID    string `json:"outputId,omitempty"`  // ack of addOutput
	Timestamp   *int64 `json:"timestamp,omitempty"` // ack of metadata: stream time in ms
	Broadcast   *Info  `json:"broadcast,omitempty"`
	Error       *Error `json:"error,omitempty"`
}
