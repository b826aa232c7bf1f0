package egress

import (
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// gapFiller keeps a track's timeline going while the publisher sends
// nothing. The main pipeline's sources are not live, so flvmux waits for
// every pad: a muted microphone (LiveKit stops forwarding; Opus DTX sends
// little) or a muted camera would stall the whole stream. After holdoff
// without a packet the filler makes packets of its own, paced by the wall
// clock from the last real one:
//
//   - audio: 20 ms Opus silence frames, so the AAC keeps flowing;
//   - video: the last keyframe again every 500 ms, a still picture, which
//     keeps the muxer going and, once decoded in a transcode, lets
//     videorate hold the output framerate. After such repeats the real
//     stream resumes only at a keyframe (a repeated keyframe resets the
//     decoder's references), and one is requested.
//
// A track that has sent nothing yet (muted before the broadcast began) is
// filled the same way from the stream's start, on the timeline of the
// tracks that did send (streamClock); a video track repeats a black
// stand-in keyframe until it has one of its own.
//
// It also renumbers the packets and rewrites RTP timestamps from the
// presentation times, so the depayloaders see one continuous stream
// whatever was inserted. One gapFiller belongs to one reader goroutine.
type gapFiller struct {
	kind    Kind
	codec   string // video codec name, for keyframe detection
	clock   uint32
	holdoff time.Duration // quiet time before filling starts
	step    time.Duration // spacing of the inserted packets (audio) or frames (video)
	lag     time.Duration // how far behind the wall clock filling stays

	// timeline is the stream's shared clock (nil in some tests): a track
	// that has sent nothing yet is filled on the other tracks' timeline.
	timeline *streamClock
	// standIn makes a keyframe to repeat while a video track has sent
	// none of its own (a camera muted before the broadcast); nil, or a
	// nil result, means no stand-in. Called at most once.
	standIn      func() []*rtp.Packet
	standInTried bool

	started     bool
	seq         uint16
	lastPTS     time.Duration // last pushed
	lastReal    time.Time     // wall time of the last real packet, or when waiting for the first began
	lastRealPTS time.Duration
	filling     bool

	// Video only.
	frameStart  bool          // the next real packet starts a frame
	collecting  bool          // the current frame is a keyframe being cached
	cur         []*rtp.Packet // the keyframe being cached
	keyframe    []*rtp.Packet // the last whole keyframe
	waitKey     bool          // drop real frames until a keyframe
	lastRequest time.Time     // last keyframe request while waiting
	out         []timedPacket // reused result
	silence     rtp.Packet    // audio filler
}

// Gap filling constants. Audio: 100 ms without a packet is well past
// jitter (packets come every 20 ms) yet short enough that the video
// waiting in the muxer's 2 s queue never notices; filling stays 40 ms
// behind the wall clock so that a resuming packet lands after the filler,
// and audiorate closes what is left. Video: frames can legitimately be
// 1 s apart (a static screen share), and repeating a keyframe costs a
// keyframe's bytes, so video waits 1 s and repeats at 2 fps, 100 ms behind
// the wall clock: a resuming keyframe arrives up to a jitter buffer's
// wait after its capture time, and one that lands before the last repeat
// would be dropped.
const (
	audioHoldoff = 100 * time.Millisecond
	audioLag     = 40 * time.Millisecond
	opusFrame    = 20 * time.Millisecond
	videoHoldoff = time.Second
	videoStep    = 500 * time.Millisecond
	videoLag     = 100 * time.Millisecond
	// keyframeWait spaces keyframe requests while the stream waits for one.
	keyframeWait = 500 * time.Millisecond
)

// opusSilence is one 20 ms Opus frame of silence: TOC 0xF8 (CELT-only,
// fullband, 20 ms, one frame) and an all-silent range-coded body.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

func newGapFiller(c Codec, videoCodec string) *gapFiller {
	f := &gapFiller{kind: c.Kind, codec: videoCodec, clock: c.ClockRate, frameStart: true}
	if c.Kind == Audio {
		f.holdoff, f.step, f.lag = audioHoldoff, opusFrame, audioLag
		f.silence = rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: c.PayloadType}, Payload: opusSilence}
	} else {
		f.holdoff, f.step, f.lag = videoHoldoff, videoStep, videoLag
	}
	return f
}

// checkEvery is how often the reader calls fill.
func (f *gapFiller) checkEvery() time.Duration {
	if f.kind == Audio {
		return opusFrame
	}
	return 100 * time.Millisecond
}

// real takes a packet from the track and returns what to push (the packet
// rewritten, or nothing) and whether to ask the publisher for a keyframe.
func (f *gapFiller) real(pkt *rtp.Packet, pts time.Duration, now time.Time) ([]timedPacket, bool) {
	f.out = f.out[:0]
	f.started = true
	f.lastReal, f.lastRealPTS = now, pts
	f.timeline.observe(now, pts)
	resumed := f.filling
	f.filling = false
	request := false
	if f.kind == Video {
		if f.frameStart {
			f.collecting = isKeyframeStart(f.codec, pkt)
			f.cur = f.cur[:0]
		}
		if f.collecting {
			f.cur = append(f.cur, pkt.Clone())
		}
		f.frameStart = pkt.Marker
		if pkt.Marker && f.collecting {
			f.keyframe = append(f.keyframe[:0], f.cur...)
		}
		if resumed && !f.collecting {
			f.waitKey = true
		}
		if f.waitKey {
			if !f.collecting {
				if now.Sub(f.lastRequest) >= keyframeWait {
					f.lastRequest, request = now, true
				}
				return nil, request
			}
			f.waitKey = false
		}
	}
	// Never backwards: what the filler already covered is dropped. A
	// keyframe dropped so leaves the frames after it nothing to refer
	// to: wait for the next one.
	if f.seq != 0 && (pts < f.lastPTS || (f.kind == Audio && pts == f.lastPTS)) {
		if f.kind == Video && f.collecting && !f.waitKey {
			f.waitKey, f.lastRequest, request = true, now, true
		}
		return nil, request
	}
	f.emit(pkt, pts)
	return f.out, request
}

// fill returns the packets that cover the time since the last real one,
// if the track has been quiet for longer than holdoff. A track that has
// sent nothing yet is quiet from the first call, and is filled on the
// stream's timeline from where the other tracks began.
func (f *gapFiller) fill(now time.Time) []timedPacket {
	f.out = f.out[:0]
	if f.lastReal.IsZero() {
		f.lastReal = now
	}
	quiet := now.Sub(f.lastReal)
	if quiet < f.holdoff {
		return nil
	}
	wall, pts := f.lastReal, f.lastRealPTS
	if !f.started {
		var first time.Duration
		var ok bool
		if wall, pts, first, ok = f.timeline.anchor(); !ok {
			return nil // no track has started: nothing to line up with
		}
		if f.seq == 0 {
			f.lastPTS = first - f.step
		}
	}
	if f.kind == Video && len(f.keyframe) == 0 && !f.useStandIn() {
		return nil
	}
	f.filling = true
	until := pts + now.Sub(wall) - f.lag
	// Each inserted packet is a copy of its model (sharing the payload):
	// the reader marshals them after this returns, each with its own
	// sequence number and timestamp.
	for f.lastPTS+f.step <= until {
		pts := f.lastPTS + f.step
		if f.kind == Audio {
			p := f.silence
			f.emit(&p, pts)
			continue
		}
		for _, k := range f.keyframe {
			p := *k
			f.emit(&p, pts)
		}
	}
	return f.out
}

// useStandIn makes the stand-in keyframe the one to repeat, if there is
// one.
func (f *gapFiller) useStandIn() bool {
	if f.standInTried || f.standIn == nil {
		return false
	}
	f.standInTried = true
	f.keyframe = f.standIn()
	return len(f.keyframe) > 0
}

// emit renumbers pkt, stamps it with pts on the RTP clock and appends it.
func (f *gapFiller) emit(pkt *rtp.Packet, pts time.Duration) {
	f.seq++
	pkt.SequenceNumber = f.seq
	pkt.Timestamp = uint32(uint64(pts) * uint64(f.clock) / uint64(time.Second))
	f.lastPTS = pts
	f.out = append(f.out, timedPacket{pkt, pts})
}

// isKeyframeStart reports whether pkt is the first packet of a keyframe.
func isKeyframeStart(codec string, pkt *rtp.Packet) bool {
	b := pkt.Payload
	switch codec {
	case "h264":
		// Browsers send SPS and PPS with each IDR, first; a single NAL
		// unit, a STAP-A aggregate or the first fragment of an FU-A.
		if len(b) < 2 {
			return false
		}
		switch t := b[0] & 0x1f; t {
		case 5, 7:
			return true
		case 24:
			for b = b[1:]; len(b) > 2; {
				n := int(b[0])<<8 | int(b[1])
				if n == 0 || len(b) < 2+n {
					return false
				}
				if t := b[2] & 0x1f; t == 5 || t == 7 {
					return true
				}
				b = b[2+n:]
			}
		case 28:
			return b[1]&0x80 != 0 && b[1]&0x1f == 5
		}
	case "vp8":
		var p codecs.VP8Packet
		if _, err := p.Unmarshal(b); err != nil {
			return false
		}
		// RFC 7741: the P bit of the VP8 payload header is 0 for keyframes.
		return p.S == 1 && p.PID == 0 && len(p.Payload) > 0 && p.Payload[0]&1 == 0
	case "vp9":
		var p codecs.VP9Packet
		if _, err := p.Unmarshal(b); err != nil {
			return false
		}
		return p.B && !p.P
	case "av1":
		return isAV1KeyframeStart(b)
	}
	return false
}

// streamClock relates the wall clock to the tracks' shared presentation
// times, from the real packets of every track of a stream, so that a
// track that has sent nothing yet (a camera or microphone muted before
// the broadcast began) can be filled on the same timeline. A nil
// streamClock knows nothing.
type streamClock struct {
	mu    sync.Mutex
	set   bool
	first time.Duration // the first presentation time seen
	wall  time.Time     // arrival of the latest packet
	pts   time.Duration // its presentation time
}

func (c *streamClock) observe(now time.Time, pts time.Duration) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.set {
		c.set, c.first = true, pts
	}
	c.wall, c.pts = now, pts
}

// anchor returns the latest packet's arrival and presentation time, and
// the first presentation time of the stream; ok is false until a packet
// has been seen.
func (c *streamClock) anchor() (wall time.Time, pts, first time.Duration, ok bool) {
	if c == nil {
		return time.Time{}, 0, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall, c.pts, c.first, c.set
}
