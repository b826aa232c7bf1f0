package egress

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/pion/rtp"

	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// markTracks are a video and an Opus track encoded by one pipeline from
// sync-marked sources, with presentation times straight from the capture
// timestamps: what a room's synchronizer would give with perfect sender
// reports. Whatever offset the recording shows is the media side's own.
type markTracks struct {
	pipe *gst.Pipeline
	once sync.Once
}

type markTrack struct {
	codec Codec
	sink  *app.Sink
	owner *markTracks
	last  time.Duration // for packets the payloader leaves untimed
}

func newMarkTracks(t *testing.T, vp8 bool) (video, audio *markTrack) {
	t.Helper()
	initGStreamer()
	enc, mime, pay := "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! video/x-h264,profile=constrained-baseline", "video/H264", "rtph264pay config-interval=-1 aggregate-mode=zero-latency"
	if vp8 {
		enc, mime, pay = "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60", "video/VP8", "rtpvp8pay"
	}
	desc := fmt.Sprintf("videotestsrc is-live=false pattern=black ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! clocksync"+
		" ! identity name=rawvideo ! %s ! %s pt=96 mtu=1200 ! appsink name=v sync=false"+
		" audiotestsrc is-live=false wave=sine freq=1000 samplesperbuffer=480 ! audio/x-raw,format=S16LE,rate=48000,channels=2 ! clocksync"+
		" ! identity name=rawaudio ! opusenc ! rtpopuspay pt=111 ! appsink name=a sync=false", enc, pay)
	pipe, err := gst.NewPipelineFromString(desc)
	if err != nil {
		t.Fatal(err)
	}
	if err := testpattern.AddSyncMarks(pipe, 320, 240, 30, nil); err != nil {
		t.Fatal(err)
	}
	owner := &markTracks{pipe: pipe}
	v, _ := pipe.GetElementByName("v")
	a, _ := pipe.GetElementByName("a")
	video = &markTrack{codec: Codec{Kind: Video, MimeType: mime, ClockRate: 90000, PayloadType: 96}, sink: app.SinkFromElement(v), owner: owner}
	audio = &markTrack{codec: Codec{Kind: Audio, MimeType: "audio/opus", ClockRate: 48000, PayloadType: 111}, sink: app.SinkFromElement(a), owner: owner}
	if err := pipe.SetState(gst.StatePlaying); err != nil {
		t.Fatal(err)
	}
	return video, audio
}

func (t *markTrack) Codec() Codec     { return t.codec }
func (t *markTrack) RequestKeyframe() {}
func (t *markTrack) Close() error {
	t.owner.once.Do(func() { _ = t.owner.pipe.SetState(gst.StateNull) })
	return nil
}

func (t *markTrack) ReadRTP() (*rtp.Packet, time.Duration, error) {
	sample := t.sink.PullSample()
	if sample == nil {
		return nil, 0, io.EOF
	}
	buf := sample.GetBuffer()
	data, pts := buf.Bytes(), buf.PresentationTimestamp().AsDuration()
	release(buf)
	release(sample)
	var pkt rtp.Packet
	if err := pkt.Unmarshal(data); err != nil {
		return nil, 0, err
	}
	if pts != nil {
		// GstVideoEncoder (x264enc) shifts its output segment by 1000 h
		// to keep DTS positive; the stream's running time is what counts.
		t.last = *pts % (1000 * time.Hour)
	}
	return &pkt, t.last, nil
}

// TestMediaSideLipSync measures the media side's own contribution to lip
// sync, with exact capture times in: passthrough and transcode keep a
// flash and a beep made on one instant within 40 ms in the output, and,
// once running, within 10 ms (the calibration of audioPathDelay).
func TestMediaSideLipSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		vp8  bool
	}{{"passthrough", false}, {"transcode", true}} {
		t.Run(tc.name, func(t *testing.T) {
			video, audio := newMarkTracks(t, tc.vp8)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, sess, stop := runStream(t, ctx, Options{Video: VideoOptions{Width: 320, Height: 240}}, video, audio)
			if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindVideo, 7000)); err != nil {
				t.Fatal(err)
			}
			snap := stop()
			path := filepath.Join(t.TempDir(), "sync.flv")
			if err := rtmptest.WriteFLV(path, snap); err != nil {
				t.Fatal(err)
			}
			offsets, err := rtmptest.SyncOffsets(ctx, path, testpattern.SyncEvery)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("beep minus flash per mark: %v", offsets)
			if len(offsets) < 3 {
				t.Fatalf("%d marks in 7 s, want at least 3", len(offsets))
			}
			for i, o := range offsets {
				if o.Abs() > 40*time.Millisecond {
					t.Errorf("mark %d: beep %v after flash, want within ±40ms", i, o)
				}
				// Past the start-up, audioPathDelay's calibration holds.
				if i > 0 && o.Abs() > 10*time.Millisecond {
					t.Errorf("mark %d: beep %v after flash; audioPathDelay no longer matches the media path (want ±10ms)", i, o)
				}
			}
		})
	}
}
