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
}

// Errors a Rooms implementation wraps so the bridge can report them.
var (
	ErrRoomNotFound   = errors.New("room not found")
	ErrTracksNotFound = errors.New("tracks not found")
	ErrRoomConnect    = errors.New("cannot join room")
)
