package egress

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

func TestNewRejects(t *testing.T) {
	out := []Output{{ID: "o1", URL: mustURL(t, "rtmp://127.0.0.1/live/key")}}
	vp8 := &gstTrack{codec: Codec{Kind: Video, MimeType: "video/VP8", ClockRate: 90000}}
	opus := &gstTrack{codec: Codec{Kind: Audio, MimeType: "audio/opus", ClockRate: 48000}}
	for _, tc := range []struct {
		name   string
		opts   Options
		tracks []Track
		want   string
	}{
		{"no outputs", Options{}, []Track{opus}, "no outputs"},
		{"no tracks", Options{Outputs: out}, nil, "no tracks"},
		{"vp8 in passthrough", Options{Outputs: out, Video: VideoOptions{Mode: ModePassthrough}}, []Track{vp8, opus}, "video mode passthrough needs an H.264 track, but the track is video/VP8: unsupported codec"},
		{"bad mode", Options{Outputs: out, Video: VideoOptions{Mode: "copy"}}, []Track{vp8, opus}, `video mode "copy"`},
		{"odd size", Options{Outputs: out, Video: VideoOptions{Width: 641}}, []Track{vp8, opus}, "video size 641x720"},
		{"two audio", Options{Outputs: out}, []Track{opus, opus}, "unsupported codec"},
		{"same id twice", Options{Outputs: append(out, out[0])}, []Track{opus}, `output id "o1" is used twice`},
		{"no id", Options{Outputs: []Output{{URL: out[0].URL}}}, []Track{opus}, "output without an id"},
		{"no URL", Options{Outputs: []Output{{ID: "o"}}}, []Track{opus}, "output o: invalid RTMP URL: no URL"},
		{"nested connect info", Options{Outputs: []Output{{ID: "o", URL: out[0].URL, ConnectInfo: map[string]any{"a": []any{}}}}}, []Track{opus}, "connectInfo.a: want a string"},
		{"bad metadata", Options{Outputs: out, Metadata: map[string]any{"width": 1.0}}, []Track{opus}, "data.width: set by the stream"},
		{"huge metadata limit", Options{Outputs: out, MaxMetadataBytes: 1 << 24}, []Track{opus}, "MaxMetadataBytes"},
	} {
		_, err := New(tc.opts, tc.tracks...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestRefusedDestination: a destination nobody listens on fails the stream
// with an error that names the output and never shows the stream key.
func TestRefusedDestination(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now nothing listens there

	video, audio := testTracks(t)
	s, err := New(Options{Outputs: []Output{{ID: "yt", URL: mustURL(t, "rtmp://"+addr+"/live/topsecretkey")}}}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = s.Run(ctx)
	var oe *OutputError
	if !errors.As(err, &oe) {
		t.Fatalf("Run = %v, want an *OutputError", err)
	}
	if oe.ID != "yt" || !strings.Contains(err.Error(), "rtmp://"+addr+"/live/****") {
		t.Errorf("error %q does not name the destination", err)
	}
	if strings.Contains(err.Error(), "topsecretkey") {
		t.Errorf("error leaks the stream key: %v", err)
	}
	st := s.Stats().Outputs[0]
	if st.State != OutputFailed || strings.Contains(st.Error, "topsecretkey") || st.Error == "" {
		t.Errorf("output stats = %+v", st)
	}
	if n := LivePipelines(); n != 0 {
		t.Errorf("%d pipelines left after Run", n)
	}
}

// testTracks starts a 320x240 H.264 and an Opus track on one clock.
func testTracks(t *testing.T) (video, audio *gstTrack) {
	t.Helper()
	start := time.Now()
	video, err := h264Track(start, 320, 240, 30)
	if err != nil {
		t.Fatal(err)
	}
	audio, err = opusTrack(start)
	if err != nil {
		t.Fatal(err)
	}
	return video, audio
}

func mustURL(t *testing.T, s string) URL {
	t.Helper()
	u, err := ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestStreamToRTMP: the media side alone, behind its seam: RTP from real
// encoders in, and the RTMP session a player needs out, in order: one
// onMetaData, both sequence headers, then media starting on a keyframe;
// keyframes requested on the interval; a clean end on stop.
func TestStreamToRTMP(t *testing.T) {
	recv := newReceiver(t)
	video, audio := testTracks(t)
	changes := make(chan struct{}, 1)
	s, err := New(Options{
		Outputs:          []Output{{ID: "r", URL: mustURL(t, recv.URL("live", "k"))}},
		KeyframeInterval: time.Second,
		OnChange: func() {
			select {
			case changes <- struct{}{}:
			default: // one pending notice is enough; never block the stream
			}
		},
	}, video, audio)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()

	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Three seconds of video by the stream's clock.
	if _, err := sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
		v := sn.Video()
		return len(v) > 2 && v[len(v)-1].Timestamp >= 3000
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes: // the output went live
	case <-ctx.Done():
		t.Fatal("OnChange was not called when the output went live")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after a stop", err)
	}
	snap, err := sess.WaitEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.End != rtmptest.Clean {
		t.Errorf("session ended %v, want clean", snap.End)
	}

	kinds := sessionStart(snap)
	if len(kinds) < 4 || kinds[0] != "onMetaData" || kinds[1] != "avc-header" || kinds[2] != "aac-header" || kinds[3] != "keyframe" {
		t.Errorf("session starts %v, want onMetaData, avc-header, aac-header, keyframe", kinds[:min(len(kinds), 6)])
	}
	if n := len(snap.DataNamed("onMetaData")); n != 1 {
		t.Errorf("%d onMetaData messages, want 1 (TAG events must not re-send it)", n)
	}
	if n := video.keyframeRequests(); n < 3 {
		t.Errorf("%d keyframe requests in over 3 s at a 1 s interval, want at least 3", n)
	}
	st := s.Stats()
	if st.Keyframes < 3 || st.VideoFrames < 80 || st.AudioFrames < 100 || st.Outputs[0].State != OutputEnded {
		t.Errorf("stats = %+v", st)
	}
	if n := LivePipelines(); n != 0 {
		t.Errorf("%d pipelines left after Run", n)
	}
}

// newReceiver is an in-test RTMP receiver, closed when the test ends.
func newReceiver(t *testing.T) *rtmptest.Receiver {
	t.Helper()
	recv, err := rtmptest.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = recv.Close() })
	return recv
}
