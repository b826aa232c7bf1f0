package egress

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/pion/rtp"
)

// blackEncoders make one black keyframe in each video codec's RTP payload
// format, for a video track that has sent no keyframe yet (a camera muted
// before the broadcast started): the gap filler repeats it as it would
// the track's own last keyframe, so the muxer never waits for video.
// H.264 is constrained baseline with SPS and PPS in band, since in
// passthrough it reaches the viewer as it is; in a transcode it is only
// decoded. Codecs without an entry get no stand-in.
var blackEncoders = map[string]string{
	"h264": "x264enc speed-preset=ultrafast tune=zerolatency key-int-max=1 ! video/x-h264,profile=constrained-baseline" +
		" ! rtph264pay config-interval=-1 aggregate-mode=zero-latency",
	"vp8": "vp8enc deadline=1 ! rtpvp8pay",
	"vp9": "vp9enc deadline=1 ! rtpvp9pay",
}

// blackKeyframeTimeout bounds the wait for each packet of the black
// keyframe; making one takes tens of milliseconds.
const blackKeyframeTimeout = 5 * time.Second

// blackKeyframe encodes one black width x height picture as a keyframe
// in codec's RTP payload format, the packets in order, the last with the
// marker bit. It runs a small pipeline to its end (tens of ms at 720p).
func blackKeyframe(codec string, payloadType uint8, width, height int) ([]*rtp.Packet, error) {
	enc, ok := blackEncoders[codec]
	if !ok {
		return nil, fmt.Errorf("no black keyframe for %s", codec)
	}
	p, err := newPipeline(fmt.Sprintf("videotestsrc num-buffers=1 pattern=black"+
		" ! video/x-raw,format=I420,width=%d,height=%d,framerate=30/1 ! %s mtu=1200 pt=%d ! appsink name=out sync=false",
		width, height, enc, payloadType))
	if err != nil {
		return nil, fmt.Errorf("black keyframe: %w", err)
	}
	defer releasePipeline(p)
	el, err := p.GetElementByName("out")
	if err != nil {
		return nil, fmt.Errorf("black keyframe: %w", err)
	}
	sink := app.SinkFromElement(el)
	if err := p.SetState(gst.StatePlaying); err != nil {
		return nil, fmt.Errorf("black keyframe: %w", err)
	}
	var pkts []*rtp.Packet
	for {
		// nil at EOS, once the encoder has drained; the timeout covers
		// an encoder that failed and will never get there.
		sample := sink.TryPullSample(gst.ClockTime(blackKeyframeTimeout))
		if sample == nil {
			break
		}
		buf := sample.GetBuffer()
		pkt := &rtp.Packet{}
		err := pkt.Unmarshal(buf.Bytes()) // a copy
		release(buf)
		release(sample)
		if err != nil {
			return nil, fmt.Errorf("black keyframe: %w", err)
		}
		pkts = append(pkts, pkt)
	}
	if !sink.IsEOS() || len(pkts) == 0 || !pkts[len(pkts)-1].Marker {
		return nil, errors.New("black keyframe: the encoder made no whole frame")
	}
	return pkts, nil
}

// blackStandIn is the stand-in keyframe for a video track that has sent
// none yet: black at the size the publisher announced, else at the
// output size.
func (s *Stream) blackStandIn(c Codec) []*rtp.Packet {
	w, h := s.opts.Video.Width, s.opts.Video.Height
	if c.Width >= 16 && c.Height >= 16 {
		w, h = c.Width&^1, c.Height&^1 // 4:2:0 wants even sizes
	}
	pkts, err := blackKeyframe(s.videoCodec.name, c.PayloadType, w, h)
	if err != nil {
		s.log.Warn("video track has sent no keyframe and there is no black stand-in: the stream waits for it", "codec", c.MimeType, "err", err)
		return nil
	}
	s.log.Info("video track has sent no keyframe yet (muted?): sending black until it does", "codec", c.MimeType)
	return pkts
}
