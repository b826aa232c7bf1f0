package egress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/roomcast/roomcast/internal/forcekey"
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
	keys     *forcekey.Encoder // asked instead of enc, if set
	// packetizer, if set, makes RTP of the encoder's frames, for a codec
	// GStreamer 1.22 has no payloader for (AV1); frameTicks is one frame
	// on the RTP clock.
	packetizer rtp.Packetizer
	frameTicks uint32
	queued     []*rtp.Packet
	once       sync.Once
	pli        chan struct{}
	requests   int
	mu         sync.Mutex
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

// av1Encoder is libaom in realtime mode, as a browser runs it, cheap at
// test sizes: keyframes only on the first frame and when asked.
const av1Encoder = "av1enc usage-profile=realtime cpu-used=10 threads=2 lag-in-frames=0 keyframe-mode=disabled" +
	" end-usage=cbr target-bitrate=500 min-quantizer=4 max-quantizer=56 name=enc"

// av1Track sends AV1 as server-sdk-go publishes it: pion's AV1Payloader
// makes the RTP, since GStreamer 1.22 has no AV1 payloader.
func av1Track(start time.Time, width, height, fps int) (*gstTrack, error) {
	return av1TrackMTU(start, width, height, fps, 1200)
}

// av1TrackMTU is av1Track with packets of at most mtu bytes: a small one
// spreads each frame over several.
func av1TrackMTU(start time.Time, width, height, fps int, mtu uint16) (*gstTrack, error) {
	t, err := newGstTrack(start, Codec{Kind: Video, MimeType: "video/AV1", ClockRate: 90000, PayloadType: 45}, fmt.Sprintf(
		"videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1"+
			" ! %s ! video/x-av1,stream-format=obu-stream,alignment=tu ! appsink name=rtp sync=false", width, height, fps, av1Encoder))
	if err != nil {
		return nil, err
	}
	t.packetizer = rtp.NewPacketizer(mtu, 45, 0x1234, &codecs.AV1Payloader{}, rtp.NewRandomSequencer(), 90000)
	t.frameTicks = uint32(90000 / fps)
	// av1enc ignores force-key-unit events: forcekey replaces it instead.
	t.keys = forcekey.New(t.pipe.Bin, t.enc, av1Encoder)
	return t, nil
}

func opusTrack(start time.Time) (*gstTrack, error) {
	return newGstTrack(start, Codec{Kind: Audio, MimeType: "audio/opus", ClockRate: 48000, PayloadType: 111},
		"audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay pt=111"+
			" ! appsink name=rtp sync=false")
}

func (t *gstTrack) Codec() Codec { return t.codec }

func (t *gstTrack) ReadRTP() (*rtp.Packet, time.Duration, error) {
	pkt, err := t.next()
	if err != nil {
		return nil, 0, err
	}
	if !t.first {
		t.first, t.firstRTP, t.offset = true, pkt.Timestamp, time.Since(t.start)
	}
	elapsed := time.Duration(pkt.Timestamp-t.firstRTP) * time.Second / time.Duration(t.codec.ClockRate)
	return pkt, t.offset + elapsed, nil
}

// next returns the next RTP packet, packetizing a frame if need be.
func (t *gstTrack) next() (*rtp.Packet, error) {
	for len(t.queued) == 0 {
		sample := t.sink.PullSample()
		if sample == nil {
			return nil, io.EOF
		}
		buf := sample.GetBuffer()
		data := buf.Bytes()
		release(buf)
		release(sample)
		if t.packetizer != nil {
			t.queued = t.packetizer.Packetize(data, t.frameTicks)
			continue
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(data); err != nil {
			return nil, err
		}
		return &pkt, nil
	}
	pkt := t.queued[0]
	t.queued = t.queued[1:]
	return pkt, nil
}

func (t *gstTrack) RequestKeyframe() {
	t.mu.Lock()
	t.requests++
	t.mu.Unlock()
	if t.keys != nil {
		_ = t.keys.Request()
		return
	}
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
