package rtmptest

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "test.flv")
	// A keyframe every 15 frames exactly (scenecut=0), so the gap is known.
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=sample_rate=48000",
		"-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-x264-params", "keyint=15:min-keyint=15:scenecut=0",
		"-c:a", "aac", "-ac", "1", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}

	res, err := Probe(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Format.Name != "flv" {
		t.Errorf("format %q, want flv", res.Format.Name)
	}
	if d := res.Format.Duration; d < 1900*time.Millisecond || d > 2200*time.Millisecond {
		t.Errorf("duration %v, want about 2s", d)
	}

	v, ok := res.Stream("video")
	if !ok {
		t.Fatalf("no video stream in %+v", res.Streams)
	}
	want := Stream{Index: v.Index, CodecType: "video", CodecName: "h264", Profile: v.Profile,
		PixFmt: "yuv420p", Width: 320, Height: 240, AvgFrameRate: 30, RFrameRate: 30}
	if v != want {
		t.Errorf("video stream %+v, want %+v", v, want)
	}
	a, ok := res.Stream("audio")
	if !ok || a.CodecName != "aac" || a.SampleRate != 48000 || a.Channels != 1 || a.Profile != "LC" {
		t.Errorf("audio stream %+v (found %v), want aac LC 48000 Hz mono", a, ok)
	}

	if n := len(res.StreamPackets("video")); n != 60 {
		t.Errorf("%d video packets, want 60", n)
	}
	if n := res.Keyframes(); n != 4 {
		t.Errorf("%d keyframes, want 4", n)
	}
	fps, err := res.MeasuredFrameRate()
	if err != nil || math.Abs(fps-30) > 0.5 {
		t.Errorf("MeasuredFrameRate = %v, %v; want 30", fps, err)
	}
	gap, err := res.MaxKeyframeGap()
	if err != nil || gap != 500*time.Millisecond {
		t.Errorf("MaxKeyframeGap = %v, %v; want 500ms", gap, err)
	}
	for _, p := range res.StreamPackets("audio") {
		if p.Size <= 0 || p.CodecType != "audio" {
			t.Fatalf("bad audio packet %+v", p)
		}
	}
}

func TestParseProbeUnknowns(t *testing.T) {
	res, err := parseProbe([]byte(`{
		"streams": [{"index": 0, "codec_type": "video", "avg_frame_rate": "0/0", "r_frame_rate": "30000/1001"}],
		"format": {"format_name": "flv", "duration": "N/A"},
		"packets": [{"stream_index": 0, "codec_type": "video", "pts_time": "0.033367", "size": "10", "flags": "K__"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	s := res.Streams[0]
	if s.AvgFrameRate != 0 || math.Abs(s.RFrameRate-29.97) > 0.01 || res.Format.Duration != 0 {
		t.Errorf("got %+v %+v", s, res.Format)
	}
	if p := res.Packets[0]; !p.Keyframe || p.PTS != 33367*time.Microsecond || p.DTS != 0 || p.Size != 10 {
		t.Errorf("packet %+v", p)
	}
	if _, err := res.MeasuredFrameRate(); err == nil {
		t.Errorf("MeasuredFrameRate with one packet: want an error")
	}
	if gap, err := res.MaxKeyframeGap(); err != nil || gap != 0 {
		t.Errorf("MaxKeyframeGap with one keyframe = %v, %v; want 0", gap, err)
	}
}
