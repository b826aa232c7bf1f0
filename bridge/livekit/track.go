package livekit

import (
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/livekit/media-sdk/jitter"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/synchronizer"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/roomcast/roomcast/egress"
)

// track is an egress.Track over a subscribed LiveKit track. Packets pass a
// jitter buffer, which puts them back in sequence order and releases only
// whole frames (a depayloader given a reordered or partial H.264 frame
// passes corruption through). Presentation times come from the room's
// synchronizer, which puts every track of the participant on one clock
// using RTCP sender reports, the way LiveKit's own egress does.
type track struct {
	remote *webrtc.TrackRemote
	rp     *lksdk.RemoteParticipant
	// The size the publication announces (its top layer), for the black
	// frames egress sends until the first keyframe.
	width, height int
	sync          *synchronizer.TrackSynchronizer
	jitter        *jitter.Buffer

	mu    sync.Mutex
	ready []jitter.ExtPacket // released by the jitter buffer, in order

	// Owned by the reader.
	out         []jitter.ExtPacket
	started     bool
	gateDropped int

	closeOnce sync.Once
	closed    chan struct{}
}

// jitterLatency is how long a frame waits for a missing packet (a NACKed
// retransmission takes about one round trip to the SFU) before it is
// dropped. Frames that arrive whole and in order do not wait.
const jitterLatency = 200 * time.Millisecond

func newTrack(remote *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant, s *synchronizer.Synchronizer) *track {
	t := &track{
		remote: remote,
		rp:     rp,
		sync:   s.AddTrack(remote, rp.Identity()),
		closed: make(chan struct{}),
	}
	if info := pub.TrackInfo(); info != nil {
		t.width, t.height = int(info.Width), int(info.Height)
	}
	depacketizer := depacketizerFor(remote.Codec().MimeType)
	t.jitter = jitter.NewBuffer(depacketizer, jitterLatency, t.release,
		// A dropped frame breaks every frame that references it until the
		// next keyframe: ask for one at once.
		jitter.WithPacketLossHandler(func(_, _ uint64) { t.RequestKeyframe() }))
	// Sender reports drive lip sync; the SDK's RTCP reader hands them here,
	// on one goroutine, which owns the filter.
	reports := newSRFilter(remote.Codec().ClockRate)
	pub.OnRTCP(func(p rtcp.Packet) {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == uint32(remote.SSRC()) && reports.accept(sr) {
			s.OnRTCP(p)
		}
	})
	return t
}

func (t *track) Codec() egress.Codec {
	c := t.remote.Codec()
	kind := egress.Audio
	if t.remote.Kind() == webrtc.RTPCodecTypeVideo {
		kind = egress.Video
	}
	return egress.Codec{
		Kind:        kind,
		MimeType:    c.MimeType,
		ClockRate:   c.ClockRate,
		PayloadType: uint8(c.PayloadType),
		Width:       t.width,
		Height:      t.height,
	}
}

// release runs when the jitter buffer lets a frame go, on the reader's
// goroutine inside Push or on the buffer's timer goroutine.
func (t *track) release(pkts []jitter.ExtPacket) {
	t.mu.Lock()
	t.ready = append(t.ready, pkts...)
	t.mu.Unlock()
}

func (t *track) ReadRTP() (*rtp.Packet, time.Duration, error) {
	for {
		if len(t.out) == 0 {
			t.mu.Lock()
			t.out, t.ready = t.ready, t.out[:0]
			t.mu.Unlock()
		}
		for len(t.out) > 0 {
			p := t.out[0]
			t.out = t.out[1:]
			if !t.started {
				t.start(p)
				continue
			}
			pts, err := t.sync.GetPTS(p)
			if err != nil {
				continue // too old or out of range for the synchronizer: drop it
			}
			return p.Packet, pts, nil
		}

		pkt, _, err := t.remote.ReadRTP()
		if err != nil {
			select {
			case <-t.closed:
				return nil, 0, io.EOF
			default:
			}
			if errors.Is(err, io.EOF) {
				return nil, 0, io.EOF // unsubscribed: the participant left or unpublished
			}
			return nil, 0, err
		}
		if isBlankFrame(t.remote.Codec().MimeType, pkt.Payload) {
			continue
		}
		t.jitter.PushAt(pkt, time.Now())
	}
}

// start passes packets to the synchronizer's start gate until their
// arrival is paced like their timestamps, then puts the packets the gate
// releases first in t.out. The synchronizer maps each track's timeline
// from its first packet's arrival, but the first packets of a subscription
// arrive in a burst (they queued while the broadcast was set up): mapped
// from the burst, audio and video were measured 40 to 60 ms apart until
// the first sender report, seconds later, corrected it. Video asks for a
// keyframe if the gate dropped what it would have started with.
func (t *track) start(p jitter.ExtPacket) {
	ready, dropped, ok := t.sync.PrimeForStart(p)
	t.gateDropped += dropped
	if !ok {
		return
	}
	t.started = true
	t.out = append(ready, t.out...)
	if t.gateDropped > 0 {
		t.RequestKeyframe()
	}
}

func (t *track) RequestKeyframe() {
	if t.remote.Kind() == webrtc.RTPCodecTypeVideo {
		t.rp.WritePLI(t.remote.SSRC())
	}
}

// Close unblocks ReadRTP: the deadline makes the pending read return.
func (t *track) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		_ = t.remote.SetReadDeadline(time.Now())
		t.jitter.Close()
		t.sync.Close()
	})
	return nil
}

// depacketizerFor tells the jitter buffer where frames begin and end in
// the codec's payload format.
func depacketizerFor(mime string) rtp.Depacketizer {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeH264):
		return &codecs.H264Packet{}
	case strings.ToLower(webrtc.MimeTypeVP8):
		return &codecs.VP8Packet{}
	case strings.ToLower(webrtc.MimeTypeVP9):
		return &codecs.VP9Packet{}
	case strings.ToLower(webrtc.MimeTypeAV1):
		return &codecs.AV1Depacketizer{}
	}
	return &codecs.OpusPacket{}
}
