package livekit

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/livekit/media-sdk/jitter"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/synchronizer"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/roomcast/roomcast/egress"
)

// track is an egress.Track over a subscribed LiveKit track. Presentation
// times come from the room's synchronizer, which puts every track of the
// participant on one clock using RTCP sender reports, the way LiveKit's own
// egress does.
type track struct {
	remote *webrtc.TrackRemote
	rp     *lksdk.RemoteParticipant
	sync   *synchronizer.TrackSynchronizer

	started   bool // owned by the reader
	closeOnce sync.Once
	closed    chan struct{}
}

func newTrack(remote *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant, s *synchronizer.Synchronizer) *track {
	t := &track{
		remote: remote,
		rp:     rp,
		sync:   s.AddTrack(remote, rp.Identity()),
		closed: make(chan struct{}),
	}
	// Sender reports drive lip sync; the SDK's RTCP reader hands them here.
	pub.OnRTCP(func(p rtcp.Packet) {
		if _, ok := p.(*rtcp.SenderReport); ok {
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
	}
}

func (t *track) ReadRTP() (*rtp.Packet, time.Duration, error) {
	for {
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
		if !t.started {
			t.started = true
			t.sync.Initialize(pkt)
		}
		pts, err := t.sync.GetPTS(jitter.ExtPacket{Packet: pkt, ReceivedAt: time.Now()})
		if err != nil {
			continue // too old or out of range for the synchronizer: drop it
		}
		return pkt, pts, nil
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
		t.sync.Close()
	})
	return nil
}
