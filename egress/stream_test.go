package egress

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
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
		{"vp8 not yet", Options{Outputs: out}, []Track{vp8, opus}, "video track video/VP8: unsupported codec"},
		{"two audio", Options{Outputs: out}, []Track{opus, opus}, "unsupported codec"},
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

	start := time.Now()
	video, err := h264Track(start, 320, 240, 30)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := opusTrack(start)
	if err != nil {
		t.Fatal(err)
	}
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

func mustURL(t *testing.T, s string) URL {
	t.Helper()
	u, err := ParseURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
