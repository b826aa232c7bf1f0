package egress

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
)

// Element names the code looks up in the main pipeline.
const (
	videoSrcName = "video"
	audioSrcName = "audio"
	muxName      = "mux"
	tagSinkName  = "tags"
)

// description builds the main pipeline, in the order the data flows:
// RTP sources → depayload/decode → parse/encode → flvmux → appsink, whose
// FLV tags the pump hands to the outputs.
//
// The sources are not live: flvmux then waits for data on every pad and
// interleaves strictly by timestamp, which no clock or latency setting has
// to guess. Buffer timestamps come from Track.ReadRTP (the shared clock).
func (s *Stream) description() string {
	var d []string
	// Bounded so a stalled branch cannot grow memory: leaky-type=downstream
	// drops the oldest packets; the depayloader recovers at the next keyframe.
	const appsrcProps = "format=time is-live=false do-timestamp=false max-bytes=4000000 leaky-type=downstream"
	if s.video != nil {
		c := s.video.Codec()
		d = append(d, fmt.Sprintf(
			"appsrc name=%s %s caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate=%d,payload=%d\""+
				// Passthrough: h264parse only reframes the access units as
				// AVC (length-prefixed, SPS/PPS in codec data) for FLV.
				" ! rtph264depay ! h264parse ! video/x-h264,stream-format=avc,alignment=au"+
				" ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=2000000000 ! %s.video",
			videoSrcName, appsrcProps, c.ClockRate, c.PayloadType, muxName))
	}
	if s.audio != nil {
		c := s.audio.Codec()
		d = append(d, fmt.Sprintf(
			"appsrc name=%s %s caps=\"application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=%d,payload=%d\""+
				// FLV carries no Opus (flvmux 1.22 has no Opus caps): decode
				// with packet-loss concealment and encode AAC-LC. voaacenc,
				// not avenc_aac: the same AAC-LC for 2.5x less CPU (0.29 s
				// against 0.73 s per minute of 48 kHz stereo here), and the
				// encoder was the largest single cost of a broadcast.
				" ! rtpopusdepay ! opusdec plc=true ! audioconvert ! audioresample"+
				" ! audio/x-raw,rate=%d,channels=2 ! voaacenc bitrate=%d ! aacparse"+
				" ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=2000000000 ! %s.audio",
			audioSrcName, appsrcProps, c.ClockRate, c.PayloadType, s.opts.AudioSampleRate, s.opts.AudioBitrate, muxName))
	}
	// streamable: no seeking back to patch the header, which RTMP cannot do.
	d = append(d, fmt.Sprintf("flvmux name=%s streamable=true ! appsink name=%s sync=false max-buffers=200", muxName, tagSinkName))
	return strings.Join(d, "  ")
}

// read pushes one track's packets into its appsrc until the track ends,
// then ends the appsrc's stream so the muxer can drain.
func (s *Stream) read(t Track, src *app.Source) {
	defer src.EndStream()
	var wire []byte
	for {
		pkt, pts, err := t.ReadRTP()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Debug("track read ended", "kind", t.Codec().Kind, "err", err)
			}
			return
		}
		n := pkt.MarshalSize()
		if cap(wire) < n {
			wire = make([]byte, n)
		}
		if n, err = pkt.MarshalTo(wire[:n]); err != nil {
			continue
		}
		buf := gst.NewBufferFromBytes(wire[:n])
		buf.SetPresentationTimestamp(gst.ClockTime(pts))
		ret := src.PushBuffer(buf)
		release(buf)
		if ret != gst.FlowOK {
			return
		}
	}
}
