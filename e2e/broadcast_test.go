package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/egress"
	"github.com/roomcast/roomcast/internal/nginxrtmp"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// TestBroadcastH264Opus is issue #2's story: a participant publishes 720p30
// H.264 and Opus; an operator starts a broadcast to two RTMP destinations;
// both receive a standard FLV stream with the video passed through
// untouched; stop ends the sessions cleanly and leaves nothing behind.
func TestBroadcastH264Opus(t *testing.T) {
	lk := startLiveKit(t)
	pub := publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2500})

	recv := newReceiver(t)
	nginx, err := nginxrtmp.Start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer nginx.Close()

	rc := startRoomcast(t, lk, nil)
	goroutinesBefore := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, err := rc.Start(ctx, bridge.StartRequest{
		Room: "studio", Identity: "alice",
		Outputs: []bridge.OutputRequest{{URL: recv.URL("live", "recv-key")}, {URL: nginx.URL("live", "nginx-key")}},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if in.State != bridge.StateBroadcasting {
		t.Fatalf("started broadcast is %s, want broadcasting: %+v", in.State, in)
	}
	for _, o := range in.Outputs {
		if strings.Contains(o.URL, "-key") {
			t.Errorf("output URL %q shows the stream key", o.URL)
		}
	}

	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ten seconds of media on the wire, measured by the stream's own clock.
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return mediaSpan(s.Video()) >= 10*time.Second }); err != nil {
		t.Fatal(err)
	}

	final, err := rc.Stop(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != bridge.StateStopped {
		t.Errorf("stopped broadcast is %s (%v), want stopped", final.State, final.Error)
	}
	for _, o := range final.Outputs {
		if o.State != string(egress.OutputEnded) {
			t.Errorf("output %s ended as %s (%s), want ended", o.ID, o.State, o.Error)
		}
	}
	snap, err := sess.WaitEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.End != rtmptest.Clean {
		t.Errorf("RTMP session ended %v, want clean (FCUnpublish/deleteStream)", snap.End)
	}

	t.Run("passthrough is byte-identical", func(t *testing.T) {
		matched, total := 0, 0
		for _, m := range snap.Video() {
			if !isAVCFrame(m.Payload) {
				continue
			}
			total++
			if sentBy(t, m, pub) {
				matched++
			}
		}
		if total < 270 || matched != total {
			t.Errorf("%d of %d received access units match one the publisher sent; want all, and at least 270 (9 s at 30 fps)", matched, total)
		}
	})

	t.Run("keyframes at most 2.2 s apart", func(t *testing.T) {
		var last uint32
		var keyframes int
		for i, m := range snap.Video() {
			if !isAVCFrame(m.Payload) {
				continue
			}
			if m.Payload[0]>>4 == 1 {
				if keyframes > 0 && m.Timestamp-last > 2200 {
					t.Errorf("keyframe gap %d ms ending at %d ms", m.Timestamp-last, m.Timestamp)
				}
				last = m.Timestamp
				keyframes++
			} else if keyframes == 0 {
				t.Fatalf("video message %d (at %d ms) is not a keyframe but precedes the first one", i, m.Timestamp)
			}
		}
		if end := lastFrameTS(snap.Video()); end-last > 2200 {
			t.Errorf("no keyframe in the last %d ms", end-last)
		}
		if keyframes < 5 {
			t.Errorf("%d keyframes in 10 s, want at least 5", keyframes)
		}
	})

	t.Run("audio and video in step", func(t *testing.T) {
		v, a := mediaFrames(snap.Video()), mediaFrames(snap.Audio())
		if len(v) == 0 || len(a) == 0 {
			t.Fatalf("%d video and %d audio frames", len(v), len(a))
		}
		if d := math.Abs(float64(v[0].Timestamp) - float64(a[0].Timestamp)); d > 100 {
			t.Errorf("first video at %d ms, first audio at %d ms: %v ms apart, want ≤ 100", v[0].Timestamp, a[0].Timestamp, d)
		}
		for _, frames := range [][]rtmptest.Message{v, a} {
			for i := 1; i < len(frames); i++ {
				if frames[i].Timestamp < frames[i-1].Timestamp {
					t.Fatalf("timestamp goes back from %d to %d ms", frames[i-1].Timestamp, frames[i].Timestamp)
				}
			}
		}
	})

	t.Run("metadata", func(t *testing.T) {
		meta := snap.DataNamed("onMetaData")
		if len(meta) != 1 {
			t.Fatalf("%d onMetaData messages, want exactly 1", len(meta))
		}
		fields, _ := meta[0].Values[len(meta[0].Values)-1].(map[string]any)
		if fields["width"] != 1280.0 || fields["height"] != 720.0 || fields["videocodecid"] != 7.0 || fields["audiocodecid"] != 10.0 {
			t.Errorf("onMetaData = %v", fields)
		}
	})

	t.Run("nginx recording plays", func(t *testing.T) {
		if err := nginx.Close(); err != nil { // flushes the recording
			t.Fatal(err)
		}
		probe, err := rtmptest.Probe(ctx, nginx.RecordingPath("nginx-key"))
		if err != nil {
			t.Fatal(err)
		}
		v, ok := probe.Stream("video")
		if !ok || v.CodecName != "h264" || v.Width != 1280 || v.Height != 720 {
			t.Errorf("video stream = %+v", v)
		}
		if fps, err := probe.MeasuredFrameRate(); err != nil || math.Abs(fps-30) > 3 {
			t.Errorf("measured frame rate %.2f (%v), want 30 ± 10%%", fps, err)
		}
		a, ok := probe.Stream("audio")
		if !ok || a.CodecName != "aac" || (a.SampleRate != 44100 && a.SampleRate != 48000) {
			t.Errorf("audio stream = %+v", a)
		}
		if probe.Format.Duration < 10*time.Second {
			t.Errorf("recording is %v long, want at least 10 s", probe.Format.Duration)
		}
		if gap, err := probe.MaxKeyframeGap(); err != nil || gap > 2200*time.Millisecond {
			t.Errorf("recording's largest keyframe gap is %v (%v)", gap, err)
		}
	})

	t.Run("nothing left behind", func(t *testing.T) {
		if n := egress.LivePipelines(); n != 0 {
			t.Errorf("%d GStreamer pipelines still exist", n)
		}
		// The API client's keep-alive connection is the test's, not a leak.
		http.DefaultClient.CloseIdleConnections()
		if err := settleGoroutines(goroutinesBefore); err != nil {
			t.Error(err)
		}
	})
}

// isAVCFrame reports whether an FLV video body holds a coded H.264 frame
// (not a sequence header or end of sequence).
func isAVCFrame(b []byte) bool { return len(b) > 5 && b[0]&0x0f == 7 && b[1] == 1 }

// isAACFrame reports whether an FLV audio body holds raw AAC.
func isAACFrame(b []byte) bool { return len(b) > 2 && b[0]>>4 == 10 && b[1] == 1 }

func mediaFrames(msgs []rtmptest.Message) []rtmptest.Message {
	var out []rtmptest.Message
	for _, m := range msgs {
		if isAVCFrame(m.Payload) || isAACFrame(m.Payload) {
			out = append(out, m)
		}
	}
	return out
}

// mediaSpan is the stream time covered by the coded frames in msgs.
func mediaSpan(msgs []rtmptest.Message) time.Duration {
	f := mediaFrames(msgs)
	if len(f) < 2 {
		return 0
	}
	return time.Duration(f[len(f)-1].Timestamp-f[0].Timestamp) * time.Millisecond
}

func lastFrameTS(msgs []rtmptest.Message) uint32 {
	f := mediaFrames(msgs)
	if len(f) == 0 {
		return 0
	}
	return f[len(f)-1].Timestamp
}

// settleGoroutines waits, boundedly, for the goroutine count to return to
// before: some goroutines of the SDK's closed connections end just after
// the calls that closed them return, and nothing signals it.
func settleGoroutines(before int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines, %d before the broadcast:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(50 * time.Millisecond)
	}
}
