package livekit

import (
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"

	"github.com/roomcast/roomcast/egress"
)

// republishWait is how long a broadcast waits for a track that ended to
// come back: a browser switching cameras unpublishes one track and
// publishes the next within a second or two. A participant who leaves
// ends the wait at once (see relay.participantLeft).
const republishWait = 5 * time.Second

// relay is the egress.Track the media side reads for one kind (video or
// audio). It reads the current subscribed track and, when that one ends
// because the participant unpublished it, carries on with the next track
// of the same source and codec, so the RTMP session stays up and its
// timeline continues (the synchronizer keeps every track of the
// participant on one clock; egress fills the gap).
type relay struct {
	codec egress.Codec
	next  chan *track   // replacements from the waiter
	left  chan struct{} // closed when the participant leaves the room
	done  chan struct{} // closed by Close

	leftOnce, closeOnce sync.Once

	mu  sync.Mutex
	cur *track // the track being read; its reader is ReadRTP's caller
}

func newRelay(first *track) *relay {
	return &relay{
		codec: first.Codec(),
		next:  make(chan *track, 1),
		left:  make(chan struct{}),
		done:  make(chan struct{}),
		cur:   first,
	}
}

func (r *relay) Codec() egress.Codec { return r.codec }

// offer hands the relay a newly subscribed track of its kind. A track of
// another codec cannot continue the same FLV stream and is refused.
func (r *relay) offer(t *track) bool {
	if !strings.EqualFold(t.Codec().MimeType, r.codec.MimeType) {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
	}
	select {
	case r.next <- t:
		return true
	default:
		return false // one replacement is already waiting
	}
}

func (r *relay) participantLeft() { r.leftOnce.Do(func() { close(r.left) }) }

func (r *relay) current() *track {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *relay) ReadRTP() (*rtp.Packet, time.Duration, error) {
	for {
		cur := r.current()
		pkt, pts, err := cur.ReadRTP()
		if err == nil || !errors.Is(err, io.EOF) {
			return pkt, pts, err
		}
		_ = cur.Close()
		timer := time.NewTimer(republishWait)
		select {
		case t := <-r.next:
			timer.Stop()
			r.mu.Lock()
			r.cur = t
			r.mu.Unlock()
			t.RequestKeyframe() // the new track's decoder starts here
		case <-r.done:
			timer.Stop()
			return nil, 0, io.EOF
		case <-r.left:
			timer.Stop()
			return nil, 0, io.EOF
		case <-timer.C:
			return nil, 0, io.EOF // unpublished and not replaced
		}
	}
}

func (r *relay) RequestKeyframe() { r.current().RequestKeyframe() }

// Close ends the relay: a blocked ReadRTP returns, and the current and
// any waiting track are closed.
func (r *relay) Close() error {
	r.closeOnce.Do(func() {
		close(r.done)
		_ = r.current().Close()
		select {
		case t := <-r.next:
			_ = t.Close()
		default:
		}
	})
	return nil
}

// onDisconnected ends the relays' wait for replacements when the
// participant leaves: the broadcast then ends at once.
func (w *waiter) onDisconnected(rp *lksdk.RemoteParticipant) {
	if rp.Identity() != w.identity {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.relays {
		r.participantLeft()
	}
}
