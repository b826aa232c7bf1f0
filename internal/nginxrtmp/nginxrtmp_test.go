package nginxrtmp

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

func startServer(t *testing.T, ctx context.Context) *Server {
	t.Helper()
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestRecordsPublishedStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := startServer(t, ctx)

	const key = "demo"
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine",
		"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30",
		"-c:a", "aac", "-f", "flv", s.URL("live", key)).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	// Closing the server makes sure nginx has finished the file.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	res, err := rtmptest.Probe(ctx, s.RecordingPath(key))
	if err != nil {
		t.Fatalf("%v\nnginx log:\n%s", err, s.errorLogTail())
	}
	v, okV := res.Stream("video")
	a, okA := res.Stream("audio")
	if !okV || !okA || v.CodecName != "h264" || v.Width != 320 || v.Height != 240 || a.CodecName != "aac" {
		t.Errorf("streams %+v, want h264 320x240 and aac", res.Streams)
	}
	if n := len(res.StreamPackets("video")); n < 85 || n > 91 {
		t.Errorf("%d video packets recorded, want about 90", n)
	}
	if gap, err := res.MaxKeyframeGap(); err != nil || gap > 1100*time.Millisecond {
		t.Errorf("MaxKeyframeGap = %v, %v; want about 1s", gap, err)
	}
}

func TestStartTwiceAndClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	a := startServer(t, ctx)
	b := startServer(t, ctx)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on %s", a.Addr())
	}
	if want := "rtmp://" + a.Addr() + "/live/k"; a.URL("live", "k") != want {
		t.Errorf("URL = %q, want %q", a.URL("live", "k"), want)
	}
	if !strings.HasSuffix(a.RecordingPath("k"), "/rec/k.flv") {
		t.Errorf("RecordingPath = %q", a.RecordingPath("k"))
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
