package livekit

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"

	"github.com/roomcast/roomcast/bridge"
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
//
// A replacement in another codec cannot continue the stream: the media
// side's depayloader and decoder (or passthrough) are built for one
// codec. The relay then keeps waiting, for as long as the participant
// stays, so the destination keeps the last picture and the audio, and it
// warns; a track of the broadcast's codec that comes back later takes
// over, and the warning ends.
type relay struct {
	codec    egress.Codec
	identity string        // the participant, for the warning
	warn     func(error)   // see bridge.SubscribeRequest.OnWarning; never nil
	next     chan *track   // replacements from the waiter
	refused  chan string   // the MIME type of a replacement refused for its codec
	left     chan struct{} // closed when the participant leaves the room
	done     chan struct{} // closed by Close

	leftOnce, closeOnce sync.Once

	mu  sync.Mutex
	cur *track // the track being read; its reader is ReadRTP's caller
}

func newRelay(first *track, identity string, warn func(error)) *relay {
	return &relay{
		codec:    first.Codec(),
		identity: identity,
		warn:     warn,
		next:     make(chan *track, 1),
		refused:  make(chan string, 1),
		left:     make(chan struct{}),
		done:     make(chan struct{}),
		cur:      first,
	}
}

func (r *relay) Codec() egress.Codec { return r.codec }

// offer hands the relay a newly subscribed track of its kind. A track of
// another codec cannot continue the same FLV stream: it is refused, and
// the relay remembers it (see waitNext).
func (r *relay) offer(t *track) bool {
	if mime := t.Codec().MimeType; !strings.EqualFold(mime, r.codec.MimeType) {
		select {
		case r.refused <- mime:
		default: // the latest refusal is enough
		}
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
		t, err := r.waitNext()
		if err != nil {
			return nil, 0, err
		}
		r.mu.Lock()
		r.cur = t
		r.mu.Unlock()
		t.RequestKeyframe() // the new track's decoder starts here
	}
}

// waitNext waits for the track that replaces one that ended: up to
// republishWait, or, once the participant has republished in another
// codec, for as long as it stays, with a warning until a track of the
// broadcast's codec comes.
func (r *relay) waitNext() (*track, error) {
	timer := time.NewTimer(republishWait)
	defer timer.Stop()
	expired := timer.C
	warned := false
	for {
		select {
		case t := <-r.next:
			if warned {
				r.warn(nil)
			}
			return t, nil
		case mime := <-r.refused:
			expired, warned = nil, true
			r.warn(r.codecChanged(mime))
		case <-r.done:
			return nil, io.EOF
		case <-r.left:
			return nil, io.EOF
		case <-expired:
			return nil, io.EOF // unpublished and not replaced
		}
	}
}

// codecChanged is the warning for a replacement in another codec.
func (r *relay) codecChanged(mime string) error {
	keeps := "the last picture"
	if r.codec.Kind == egress.Audio {
		keeps = "silence"
	}
	return fmt.Errorf("%w: participant %q republished its %s track as %s, but this broadcast carries %s and cannot change codec mid-stream;"+
		" the destination gets %s until a %s track returns; restart the broadcast to send the new one",
		bridge.ErrTrackChanged, r.identity, r.codec.Kind, mime, r.codec.MimeType, keeps, r.codec.MimeType)
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
