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
	// Subscribe joins the room and subscribes to the participant's video
	// and audio of the requested source, waiting up to req.Wait for them.
	// It returns whatever arrived by then (audio only, video only, or
	// both) and fails only when nothing did. Leave ends the membership;
	// the tracks end with it. Errors wrap the sentinels below.
	Subscribe(ctx context.Context, req SubscribeRequest) (Subscription, error)

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

// SubscribeRequest selects the tracks of one participant.
type SubscribeRequest struct {
	Room, Identity string
	Source         string // SourceCamera or SourceScreen
	TrackName      string // a video track's name, when the participant has several
	// MaxWidth and MaxHeight pick the largest simulcast layer that fits;
	// zero picks the highest.
	MaxWidth, MaxHeight int
	Wait                time.Duration
	// OnWarning, if set, is told of a track change the broadcast carries
	// on through but cannot follow (wrapping ErrTrackChanged), and with
	// nil once it is over. It runs on the adapter's goroutines and must
	// not block.
	OnWarning func(error)
}

// Subscription is what Subscribe got.
type Subscription struct {
	Tracks []egress.Track
	Leave  func()
	// Layer describes the simulcast layer asked for, e.g. "high 1280x720";
	// empty for a track without layers.
	Layer string
}

// Errors a Rooms implementation wraps so the bridge can report them.
var (
	ErrRoomNotFound   = errors.New("room not found")
	ErrTracksNotFound = errors.New("tracks not found")
	ErrRoomConnect    = errors.New("cannot join room")
	// ErrTrackChanged: the participant changed a track in a way one RTMP
	// session cannot follow (another codec, a track added mid-stream).
	ErrTrackChanged = errors.New("track changed")
)
