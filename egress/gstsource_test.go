package egress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/pion/rtp"
)

// gstTrack is a Track fed by a real GStreamer encoder and RTP payloader:
// the media side's tests need real RTP, not a room. Presentation times are
// computed as a room's synchronizer does without sender reports: arrival of
// the first packet on a clock shared by the tracks, plus RTP time since.
type gstTrack struct {
	codec    Codec
	start    time.Time // shared by the tracks of one stream
	first    bool
	firstRTP uint32
	offset   time.Duration
	pipe     *gst.Pipeline
	sink     *app.Sink
	enc      *gst.Element
	once     sync.Once
	pli      chan struct{}
	requests int
	mu       sync.Mutex
}

// newGstTrack starts desc, which must end in "appsink name=rtp" and name its
// video encoder "enc" (keyframe requests go there).
func newGstTrack(start time.Time, codec Codec, desc string) (*gstTrack, error) {
	initGStreamer()
	pipe, err := gst.NewPipelineFromString(desc)
	if err != nil {
		return nil, err
	}
	el, err := pipe.GetElementByName("rtp")
	if err != nil {
		return nil, err
	}
	t := &gstTrack{start: start, codec: codec, pipe: pipe, sink: app.SinkFromElement(el)}
	t.enc, _ = pipe.GetElementByName("enc")
	if err := pipe.SetState(gst.StatePlaying); err != nil {
		return nil, err
	}
	return t, nil
}

func h264Track(start time.Time, width, height, fps int) (*gstTrack, error) {
	return newGstTrack(start, Codec{Kind: Video, MimeType: "video/H264", ClockRate: 90000, PayloadType: 102}, fmt.Sprintf(
		"videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1"+
			" ! x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=100000 bitrate=1000"+
			" ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 mtu=1200 config-interval=-1 aggregate-mode=zero-latency"+
			" ! appsink name=rtp sync=false", width, height, fps))
}

func opusTrack(start time.Time) (*gstTrack, error) {
	return newGstTrack(start, Codec{Kind: Audio, MimeType: "audio/opus", ClockRate: 48000, PayloadType: 111},
		"audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay pt=111"+
			" ! appsink name=rtp sync=false")
}

func (t *gstTrack) Codec() Codec { return t.codec }

func (t *gstTrack) ReadRTP() (*rtp.Packet, time.Duration, error) {
	sample := t.sink.PullSample()
	if sample == nil {
		return nil, 0, io.EOF
	}
	buf := sample.GetBuffer()
	data := buf.Bytes()
	release(buf)
	release(sample)
	var pkt rtp.Packet
	if err := pkt.Unmarshal(data); err != nil {
		return nil, 0, err
	}
	if !t.first {
		t.first, t.firstRTP, t.offset = true, pkt.Timestamp, time.Since(t.start)
	}
	elapsed := time.Duration(pkt.Timestamp-t.firstRTP) * time.Second / time.Duration(t.codec.ClockRate)
	return &pkt, t.offset + elapsed, nil
}

func (t *gstTrack) RequestKeyframe() {
	t.mu.Lock()
	t.requests++
	t.mu.Unlock()
	if t.enc != nil {
		st := gst.NewStructure("GstForceKeyUnit")
		_ = st.SetValue("all-headers", true)
		t.enc.SendEvent(gst.NewCustomEvent(gst.EventTypeCustomUpstream, st))
	}
}

func (t *gstTrack) keyframeRequests() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requests
}

func (t *gstTrack) Close() error {
	t.once.Do(func() { _ = t.pipe.SetState(gst.StateNull) })
	return nil
}
