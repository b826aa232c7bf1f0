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
)
