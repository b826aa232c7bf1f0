package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/roomcast/roomcast/egress"
)

// Rooms is how the bridge reaches an SFU: bridge/livekit implements it for
// LiveKit; a Galène adapter would implement the same.
type Rooms interface {
	// Subscribe joins room and subscribes to identity's camera and
	// microphone, waiting up to wait for them. leave ends the membership;
	// the tracks end with it. Errors wrap the sentinels below.
	Subscribe(ctx context.Context, room, identity string, wait time.Duration) (tracks []egress.Track, leave func(), err error)

	// Join takes part in room as roomcast's own participant, the one that
	// speaks the room protocol: it receives data messages and sends
	// status. Events arrive on the SFU's goroutines and must not block.
	Join(ctx context.Context, room string, events RoomEvents) (RoomConn, error)
}

// RoomEvents receives what happens in a joined room.
type RoomEvents struct {
	OnData         func(DataMessage)
	OnDisconnected func() // the room closed or roomcast was removed
}

// DataMessage is one data packet a participant sent.
type DataMessage struct {
	Sender     string            // identity
	Attributes map[string]string // the sender's participant attributes
	Topic      string
	Payload    []byte
}

// RoomConn is roomcast's presence in a room.
type RoomConn interface {
	// Send publishes payload reliably on topic, to the given identities
	// or, with none, to everyone.
	Send(topic string, payload []byte, to ...string) error
	// SetAttributes updates roomcast's participant attributes; an empty
	// value removes a key.
	SetAttributes(attrs map[string]string)
	Leave()
}

// Errors a Rooms implementation wraps so the bridge can report them.
var (
	ErrRoomNotFound   = errors.New("room not found")
	ErrTracksNotFound = errors.New("tracks not found")
	ErrRoomConnect    = errors.New("cannot join room")
)
