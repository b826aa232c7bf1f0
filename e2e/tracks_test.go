package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/internal/avc"
	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// publishWith is publish with options for the video track.
func publishWith(tb testing.TB, lk *livekitdev.Server, room, identity string, opts testpattern.SourceOptions, pubOpts testpattern.PublishOptions) *publisher {
	tb.Helper()
	src := startSource(tb, opts)
	token, err := lk.Token(room, identity)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := testpattern.PublishWith(ctx, src, lk.URL(), token, pubOpts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pub.Close() })
	return &publisher{Source: src, pub: pub}
}

// waitUntil polls cond, for state that has nothing to wait on, until it
// holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Mean luma of a black picture (limited range: 16) and of SMPTE bars.
const (
	blackLuma  = 20
	camera     = 40
	smpteBars  = "smpte"
	cameraSize = 640
)

// TestMutedFromStart: the camera is muted before the broadcast starts:
// it published and sent a few frames, then muted, as a browser does with
// setCameraEnabled and then mute. The destination gets a live stream at
// once, continuous audio and black video from the same first moment at
// the size the camera announced, and the camera's picture follows its
// unmute within a second, in the same RTMP session, with no hole in the
// audio and timestamps that never go back.
func TestMutedFromStart(t *testing.T) {
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, nil)
	for _, tc := range []struct {
		name, codec string
		passthrough bool
	}{
		{"h264 passthrough", "h264", true},
		{"vp8 transcode", "vp8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			identity := "cam-" + tc.codec
			pub := publish(t, lk, "studio", identity, testpattern.SourceOptions{Codec: tc.codec, Width: cameraSize, Height: 360, BitrateKbps: 600, Pattern: smpteBars})
			if err := waitUntil(ctx, func() bool { return pub.VideoFrames() >= 10 }); err != nil {
				t.Fatalf("the camera sent no frames: %v", err)
			}
			pub.pub.MuteVideo(true)

			started := time.Now()
			in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: identity})
			if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool {
				return len(mediaFrames(s.Video())) > 0 && len(mediaFrames(s.Audio())) > 0
			}); err != nil {
				t.Fatalf("the stream stalls while the camera is muted: %v", err)
			}
			firstMedia := time.Since(started)
			if _, err := sess.Wait(ctx, audioFor(3*time.Second)); err != nil {
				t.Fatal(err)
			}
			muted, err := rc.Get(ctx, in.ID)
			if err != nil {
				t.Fatal(err)
			}
			unmuteTS := lastFrameTS(sess.Snapshot().Audio())
			pub.pub.MuteVideo(false)
			unmuted := time.Now()
			if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool {
				return lastFrameTS(s.Video()) >= unmuteTS+3000
			}); err != nil {
				t.Fatalf("video did not go on after the unmute: %v", err)
			}
			final, snap := stop(t, ctx, rc, in.ID, sess)

			t.Logf("first audio and video %v after the start request", firstMedia.Round(time.Millisecond))
			if firstMedia > 5*time.Second {
				t.Errorf("media began %v after the start request, want within 5 s", firstMedia)
			}
			if muted.State != bridge.StateBroadcasting || final.State != bridge.StateStopped {
				t.Errorf("broadcast %s while muted, ended %s (%+v); want broadcasting, then stopped on request", muted.State, final.State, final.Error)
			}
			a, v := mediaFrames(snap.Audio()), mediaFrames(snap.Video())
			if d := int64(v[0].Timestamp) - int64(a[0].Timestamp); d < -100 || d > 100 {
				t.Errorf("video begins at %d ms, audio at %d ms; want together (±100 ms)", v[0].Timestamp, a[0].Timestamp)
			}
			gap, at := maxFrameGap(snap.Audio())
			t.Logf("largest audio gap %v", gap)
			if gap > 100*time.Millisecond {
				t.Errorf("audio gap %v at %d ms", gap, at)
			}
			if gap, at := maxFrameGap(snap.Video()); gap > 600*time.Millisecond {
				t.Errorf("video gap %v at %d ms, want ≤ 600 ms (black at 2 fps at least)", gap, at)
			}
			for i := 1; i < len(v); i++ {
				if v[i].Timestamp < v[i-1].Timestamp {
					t.Fatalf("video timestamp goes back from %d to %d ms", v[i-1].Timestamp, v[i].Timestamp)
				}
			}
			// Passthrough sends the camera's size from the first (black)
			// frame; a transcode its fixed output size.
			wantW, wantH := 1280.0, 720.0
			if tc.passthrough {
				wantW, wantH = cameraSize, 360
			}
			if n := len(snap.DataNamed("onMetaData")); n != 1 {
				t.Errorf("%d onMetaData", n)
			} else if f := metaOf(snap); f["width"] != wantW || f["height"] != wantH {
				t.Errorf("onMetaData says %vx%v, want %vx%v from the first frame", f["width"], f["height"], wantW, wantH)
			}

			// The picture: black until the unmute, the camera's after.
			path := filepath.Join(t.TempDir(), "rec.flv")
			if err := rtmptest.WriteFLV(path, snap); err != nil {
				t.Fatal(err)
			}
			luma, err := rtmptest.Luma(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			first := -1
			for i, f := range luma {
				if f.Y > camera {
					first = i
					break
				}
			}
			if first < 1 {
				t.Fatalf("the camera's picture is frame %d of %d, want black frames first", first, len(luma))
			}
			shown := v[0].Timestamp + uint32((luma[first].Time - luma[0].Time).Milliseconds())
			arrived := v[len(v)-1].Time
			for _, m := range v {
				if m.Timestamp >= shown {
					arrived = m.Time
					break
				}
			}
			latency := arrived.Sub(unmuted)
			t.Logf("%d black frames, then the camera at %d ms (unmuted at %d ms), at the receiver %v after the unmute",
				first, shown, unmuteTS, latency.Round(time.Millisecond))
			if latency > time.Second {
				t.Errorf("the camera reached the destination %v after the unmute, want within 1 s", latency)
			}
			if shown < unmuteTS {
				t.Errorf("the camera's picture at %d ms, before the unmute at %d ms", shown, unmuteTS)
			}
			for _, f := range luma[:first] {
				if f.Y > blackLuma {
					t.Errorf("a frame at %v before the camera's has luma %.0f, want black", f.Time, f.Y)
					break
				}
			}
			if span := luma[first-1].Time - luma[0].Time; span < 2500*time.Millisecond {
				t.Errorf("black for %v, want the ≥ 3 s before the unmute", span)
			}
			for _, f := range luma[first:] {
				if f.Y < camera {
					t.Errorf("a dark frame at %v after the camera's first (luma %.0f)", f.Time, f.Y)
					break
				}
			}
			if !tc.passthrough {
				return
			}
			// Passthrough: after the stand-ins, the publisher's own frames.
			mine := 0
			for _, m := range v {
				ok := sentBy(t, m, pub)
				if ok {
					mine++
				}
				if ok != (m.Timestamp >= shown) {
					t.Errorf("frame at %d ms: the publisher's %v; want the publisher's from %d ms on", m.Timestamp, ok, shown)
					break
				}
			}
			if mine < 60 {
				t.Errorf("%d of the publisher's frames, want ≥ 60 (3 s at 30 fps)", mine)
			}
		})
	}
}

// metaOf is the fields of the recording's onMetaData.
func metaOf(s *rtmptest.Snapshot) map[string]any {
	meta := s.DataNamed("onMetaData")
	if len(meta) == 0 || len(meta[0].Values) == 0 {
		return nil
	}
	f, _ := meta[0].Values[len(meta[0].Values)-1].(map[string]any)
	return f
}

// TestTrackByName: a participant publishes two cameras, "front" at
// 640x360 and "side" at 320x180. A broadcast with video.track "side"
// sends that one, every frame of it and none of the other; an unknown
// name fails with tracks_not_found listing what the participant
// publishes, without waiting all of track_wait.
func TestTrackByName(t *testing.T) {
	lk := startLiveKit(t)
	front := publishWith(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 640, Height: 360, BitrateKbps: 600},
		testpattern.PublishOptions{VideoName: "front"})
	sideSrc := startSource(t, testpattern.SourceOptions{Width: 320, Height: 180, BitrateKbps: 300, NoAudio: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	side, err := front.pub.AddVideo(ctx, sideSrc, testpattern.PublishOptions{VideoName: "side"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = side.Close() })
	rc := startRoomcast(t, lk, nil)

	t.Run("the second camera by name", func(t *testing.T) {
		in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice", Video: &bridge.VideoRequest{Track: "side"}})
		if _, err := sess.Wait(ctx, videoFor(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		running, err := pollStatus(ctx, rc, in.ID, func(i bridge.Info) bool { return i.Stats != nil && i.Stats.WidthIn != 0 })
		if err != nil {
			t.Fatal(err)
		}
		_, snap := stop(t, ctx, rc, in.ID, sess)
		if st := running.Stats; st.WidthIn != 320 || st.HeightIn != 180 {
			t.Errorf("status input size %dx%d, want the side camera's 320x180", st.WidthIn, st.HeightIn)
		}
		if f := metaOf(snap); f["width"] != 320.0 || f["height"] != 180.0 {
			t.Errorf("onMetaData says %vx%v, want 320x180", f["width"], f["height"])
		}
		sides, fronts, total := 0, 0, 0
		for _, m := range mediaFrames(snap.Video()) {
			total++
			if sentBy(t, m, sideSrc) {
				sides++
			}
			if sentBy(t, m, front) {
				fronts++
			}
		}
		if sides != total || fronts != 0 || total < 60 {
			t.Errorf("of %d frames, %d are the side camera's and %d the front's; want all (≥ 60) the side's", total, sides, fronts)
		}
		if mediaSpan(snap.Audio()) < 2500*time.Millisecond {
			t.Errorf("%v of audio, want the microphone alongside", mediaSpan(snap.Audio()))
		}
	})

	t.Run("an unknown name", func(t *testing.T) {
		started := time.Now()
		in, err := rc.Start(ctx, bridge.StartRequest{Room: "studio", Identity: "alice",
			Outputs: []bridge.OutputRequest{{URL: "rtmp://127.0.0.1:1/live/k"}},
			Video:   &bridge.VideoRequest{Track: "back"}}, true)
		var apiErr *bridge.Error
		if errors.As(err, &apiErr) {
			in.Error = apiErr
		} else if err != nil {
			t.Fatal(err)
		}
		took := time.Since(started)
		t.Logf("failed after %v: %+v", took.Round(time.Millisecond), in.Error)
		if in.Error == nil || in.Error.Code != bridge.CodeTracksNotFound {
			t.Fatalf("broadcast = %s %+v, want tracks_not_found", in.State, in.Error)
		}
		for _, want := range []string{`no video track named "back"`, `CAMERA "front"`, `CAMERA "side"`, `MICROPHONE "testpattern-microphone"`} {
			if !strings.Contains(in.Error.Message, want) {
				t.Errorf("error %q does not say %s", in.Error.Message, want)
			}
		}
		if strings.Count(in.Error.Message, `"front"`) != 1 {
			t.Errorf("error %q lists a track twice", in.Error.Message)
		}
		if took >= rc.cfg.Broadcast.TrackWait {
			t.Errorf("failed after %v, want before track_wait (%v): the participant's tracks are all known", took, rc.cfg.Broadcast.TrackWait)
		}
	})
}

// TestCodecSwitch: the participant republishes its H.264 camera as VP8
// (another browser, or a page that changes videoCodec). One RTMP session
// cannot change codec, so the broadcast carries on: the audio never
// stops, the destination keeps the last picture (the last keyframe,
// repeated) past republishWait instead of losing its video, and status
// carries a track_changed warning naming both codecs. When the
// participant publishes an H.264 camera again, the video resumes with its
// frames and the warning goes.
func TestCodecSwitch(t *testing.T) {
	lk := startLiveKit(t)
	pub := publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 640, Height: 360, BitrateKbps: 600})
	vp8 := startSource(t, testpattern.SourceOptions{Codec: "vp8", Width: 640, Height: 360, BitrateKbps: 600, NoAudio: true})
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice"})
	if _, err := sess.Wait(ctx, videoFor(3*time.Second)); err != nil {
		t.Fatal(err)
	}

	switched := time.Now()
	switchTS := lastFrameTS(sess.Snapshot().Video())
	if err := pub.pub.UnpublishVideo(); err != nil {
		t.Fatal(err)
	}
	vp8Cam, err := pub.pub.AddVideo(ctx, vp8, testpattern.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	warned, err := pollStatus(ctx, rc, in.ID, func(i bridge.Info) bool { return i.Warning != nil })
	if err != nil {
		t.Fatalf("status never warned about the codec change: %v", err)
	}
	t.Logf("warning %v after the switch: %s", time.Since(switched).Round(time.Millisecond), warned.Warning.Message)
	w := warned.Warning
	if w.Code != bridge.CodeTrackChanged || w.Name != "track_changed" || !strings.Contains(w.Message, "video/VP8") || !strings.Contains(w.Message, "video/H264") {
		t.Errorf("warning = %+v, want track_changed naming VP8 and H.264", w)
	}
	if warned.State != bridge.StateBroadcasting || warned.Error != nil {
		t.Errorf("broadcast %s (%+v) after the switch, want broadcasting", warned.State, warned.Error)
	}
	// Past republishWait (5 s), the video still goes on.
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(s.Video()) >= switchTS+8000 }); err != nil {
		t.Fatalf("the video ended after the codec change: %v", err)
	}

	_ = vp8Cam.Close() // unpublishes the VP8 camera
	back := time.Now()
	h264Cam, err := pub.pub.AddVideo(ctx, pub.Source, testpattern.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h264Cam.Close() })
	resumed, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool {
		f := mediaFrames(s.Video())
		if len(f) == 0 {
			return false
		}
		nalus, err := avc.SplitAVCC(f[len(f)-1].Payload[5:], 4)
		sent, ok := pub.FrameSentAt(avc.VCLHash(nalus))
		return err == nil && ok && sent.After(back)
	})
	if err != nil {
		t.Fatalf("the video did not resume with the H.264 camera: %v", err)
	}
	t.Logf("video resumed %v after the H.264 camera came back", time.Since(back).Round(time.Millisecond))
	cleared, err := pollStatus(ctx, rc, in.ID, func(i bridge.Info) bool { return i.Warning == nil })
	if err != nil {
		t.Errorf("the warning stayed after the H.264 camera came back: %+v", cleared.Warning)
	}
	backTS := lastFrameTS(resumed.Video())
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(s.Video()) >= backTS+2000 }); err != nil {
		t.Fatal(err)
	}
	final, snap := stop(t, ctx, rc, in.ID, sess)

	if final.State != bridge.StateStopped || len(rc.svc.Manager.List()) != 1 {
		t.Errorf("broadcast ended %s (%+v), want stopped on request, the one broadcast", final.State, final.Error)
	}
	gap, at := maxFrameGap(snap.Audio())
	t.Logf("largest audio gap %v", gap)
	if gap > 100*time.Millisecond {
		t.Errorf("audio gap %v at %d ms", gap, at)
	}
	if gap, at := maxFrameGap(snap.Video()); gap > 1200*time.Millisecond {
		t.Errorf("video gap %v at %d ms (switched at %d ms), want ≤ 1.2 s", gap, at, switchTS)
	}
	matched, total := countSent(t, snap.Video(), pub)
	if matched != total {
		t.Errorf("%d of %d frames are the H.264 camera's, want all (the last picture repeated while VP8 came)", matched, total)
	}
}

// TestCameraNeverSent: a camera published muted before it sent a single
// frame is not announced by LiveKit (it stays pending until its first
// packet), so roomcast cannot tell it from no camera: the broadcast goes
// out audio-only. When the camera unmutes and appears, the running
// stream does not grow a video track (players handle that badly); status
// warns with track_changed, naming it.
func TestCameraNeverSent(t *testing.T) {
	lk := startLiveKit(t)
	pub := publishWith(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 640, Height: 360, BitrateKbps: 600},
		testpattern.PublishOptions{VideoMuted: true})
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice"})
	if _, err := sess.Wait(ctx, audioFor(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	pub.pub.MuteVideo(false)
	warned, err := pollStatus(ctx, rc, in.ID, func(i bridge.Info) bool { return i.Warning != nil })
	if err != nil {
		t.Fatalf("status never warned about the late camera: %v", err)
	}
	from := lastFrameTS(sess.Snapshot().Audio())
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(s.Audio()) >= from+2000 }); err != nil {
		t.Fatal(err)
	}
	_, snap := stop(t, ctx, rc, in.ID, sess)
	w := warned.Warning
	t.Logf("warning: %s", w.Message)
	if w.Code != bridge.CodeTrackChanged || !strings.Contains(w.Message, `CAMERA "testpattern-camera"`) || !strings.Contains(w.Message, "without video") {
		t.Errorf("warning = %+v, want track_changed naming the camera", w)
	}
	if warned.State != bridge.StateBroadcasting {
		t.Errorf("broadcast %s with the warning, want broadcasting", warned.State)
	}
	if n := len(snap.Video()); n != 0 {
		t.Errorf("%d video messages: the audio-only stream grew video", n)
	}
	if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
		t.Errorf("audio gap %v at %d ms", gap, at)
	}
}
