package e2e

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/avc"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// live starts a broadcast of identity in room to a fresh in-test receiver
// and returns the broadcast and its RTMP session.
func live(t *testing.T, ctx context.Context, rc *roomcast, req bridge.StartRequest) (bridge.Info, *rtmptest.Session) {
	t.Helper()
	recv := newReceiver(t)
	req.Outputs = []bridge.OutputRequest{{URL: recv.URL("live", "k")}}
	in, err := rc.Start(ctx, req, false)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return in, sess
}

// stop ends the broadcast and returns it as it ended and the recording.
func stop(t *testing.T, ctx context.Context, rc *roomcast, id string, sess *rtmptest.Session) (bridge.Info, *rtmptest.Snapshot) {
	t.Helper()
	final, err := rc.Stop(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sess.WaitEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return final, snap
}

// videoFor waits until the session holds d of video by the stream clock.
func videoFor(d time.Duration) func(*rtmptest.Snapshot) bool {
	return func(s *rtmptest.Snapshot) bool { return mediaSpan(s.Video()) >= d }
}

func audioFor(d time.Duration) func(*rtmptest.Snapshot) bool {
	return func(s *rtmptest.Snapshot) bool { return mediaSpan(s.Audio()) >= d }
}

// maxFrameGap is the largest step between consecutive coded frames' timestamps.
func maxFrameGap(msgs []rtmptest.Message) (gap time.Duration, at uint32) {
	f := mediaFrames(msgs)
	for i := 1; i < len(f); i++ {
		if d := time.Duration(f[i].Timestamp-f[i-1].Timestamp) * time.Millisecond; d > gap {
			gap, at = d, f[i].Timestamp
		}
	}
	return gap, at
}

func avcHeaders(s *rtmptest.Snapshot) int {
	n := 0
	for _, m := range s.Video() {
		if len(m.Payload) > 1 && m.Payload[0]&0x0f == 7 && m.Payload[1] == 0 {
			n++
		}
	}
	return n
}

// pollStatus asks for the broadcast's status, as a dashboard would, until
// until holds: stats change without a state change, so there is nothing
// to wait on.
func pollStatus(ctx context.Context, rc *roomcast, id string, until func(bridge.Info) bool) (bridge.Info, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		in, err := rc.Get(ctx, id)
		if err != nil || until(in) {
			return in, err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return in, ctx.Err()
		}
	}
}

// TestVP8TranscodedToH264: Chrome's default, VP8 720p30, reaches the
// destination as H.264 1280x720 with keyframes at most 2.2 s apart and a
// constant bitrate within 15 % of the target over 10 s; status says VP8
// in, H.264 out, transcoding and why.
func TestVP8TranscodedToH264(t *testing.T) {
	lk := startLiveKit(t)
	publish(t, lk, "studio", "alice", testpattern.SourceOptions{Codec: "vp8", Width: 1280, Height: 720, BitrateKbps: 1500})
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const target = 2_000_000
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice",
		Video: &bridge.VideoRequest{Bitrate: target}})
	if _, err := sess.Wait(ctx, videoFor(13*time.Second)); err != nil {
		t.Fatal(err)
	}
	running, err := rc.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	final, snap := stop(t, ctx, rc, in.ID, sess)

	st := running.Stats
	if st == nil || st.VideoCodecIn != "vp8" || st.VideoCodec != "h264" || !st.Transcoding || st.Passthrough || st.VideoReason == "" {
		t.Errorf("status stats = %+v, want vp8 in, h264 out, transcoding with a reason", st)
	}
	if st != nil && (st.WidthIn != 1280 || st.HeightIn != 720) {
		t.Errorf("status input size %dx%d, want 1280x720", st.WidthIn, st.HeightIn)
	}
	if final.State != bridge.StateStopped {
		t.Errorf("broadcast ended %s: %+v", final.State, final.Error)
	}
	meta := snap.DataNamed("onMetaData")
	if len(meta) != 1 {
		t.Fatalf("%d onMetaData", len(meta))
	}
	fields, _ := meta[0].Values[len(meta[0].Values)-1].(map[string]any)
	if fields["width"] != 1280.0 || fields["height"] != 720.0 || fields["videocodecid"] != 7.0 {
		t.Errorf("onMetaData = %v, want 1280x720 H.264", fields)
	}

	v := mediaFrames(snap.Video())
	var keys []uint32
	for _, m := range v {
		if m.Payload[0]>>4 == 1 {
			keys = append(keys, m.Timestamp)
		}
	}
	for i := 1; i < len(keys); i++ {
		if keys[i]-keys[i-1] > 2200 {
			t.Errorf("keyframes %d ms apart at %d ms", keys[i]-keys[i-1], keys[i])
		}
	}
	if len(keys) < 6 || v[0].Payload[0]>>4 != 1 {
		t.Errorf("%d keyframes in 13 s, first frame keyframe: %v", len(keys), len(v) > 0 && v[0].Payload[0]>>4 == 1)
	}

	// Bitrate over 10 s of stream time, after the first second.
	from := v[0].Timestamp + 1000
	var bytes int
	for _, m := range v {
		if m.Timestamp >= from && m.Timestamp < from+10000 {
			bytes += len(m.Payload)
		}
	}
	bps := float64(bytes*8) / 10
	t.Logf("video %.0f kbit/s over 10 s, target %d", bps/1000, target/1000)
	if bps < 0.85*target || bps > 1.15*target {
		t.Errorf("video at %.0f kbit/s over 10 s, want %d ± 15 %%", bps/1000, target/1000)
	}
	if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
		t.Errorf("audio gap %v at %d ms", gap, at)
	}
}

// TestPassthroughRefuses: mode passthrough on a VP8 or AV1 track fails
// with a clear error before any destination is connected.
func TestPassthroughRefuses(t *testing.T) {
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, nil)
	for _, tc := range []struct{ codec, mime string }{{"vp8", "video/VP8"}, {"av1", "video/AV1"}} {
		t.Run(tc.codec, func(t *testing.T) {
			identity := tc.codec + "-host"
			publish(t, lk, "studio", identity, testpattern.SourceOptions{Codec: tc.codec, Width: 320, Height: 240, BitrateKbps: 300})
			recv := newReceiver(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			in, err := rc.Start(ctx, bridge.StartRequest{Room: "studio", Identity: identity,
				Outputs: []bridge.OutputRequest{{URL: recv.URL("live", "k")}},
				Video:   &bridge.VideoRequest{Mode: "passthrough"}}, true)
			var apiErr *bridge.Error
			if errors.As(err, &apiErr) {
				in.Error = apiErr
			} else if err != nil {
				t.Fatal(err)
			}
			if in.ID != "" && in.State != bridge.StateFailed {
				in, _ = rc.svc.Manager.Wait(ctx, in.ID, func(i bridge.Info) bool { return i.State.Final() })
			}
			if in.Error == nil || in.Error.Code != bridge.CodeUnsupportedCodec ||
				!strings.Contains(in.Error.Message, "passthrough needs an H.264 track") || !strings.Contains(in.Error.Message, tc.mime) {
				t.Errorf("broadcast = %s %+v, want unsupported_codec naming passthrough and %s", in.State, in.Error, tc.mime)
			}
			if n := len(recv.Sessions()); n != 0 {
				t.Errorf("the destination saw %d RTMP sessions, want none", n)
			}
		})
	}
}

// TestAudioOnlyAndVideoOnly: a participant without a camera goes out as
// audio-only FLV; one without a microphone still carries continuous AAC,
// since YouTube drops streams without audio.
func TestAudioOnlyAndVideoOnly(t *testing.T) {
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, nil)
	publish(t, lk, "studio", "voice", testpattern.SourceOptions{NoVideo: true})
	publish(t, lk, "studio", "silent", testpattern.SourceOptions{NoAudio: true, Width: 320, Height: 240, BitrateKbps: 300})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("audio only", func(t *testing.T) {
		in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "voice"})
		if _, err := sess.Wait(ctx, audioFor(4*time.Second)); err != nil {
			t.Fatal(err)
		}
		running, _ := rc.Get(ctx, in.ID)
		_, snap := stop(t, ctx, rc, in.ID, sess)
		if n := len(snap.Video()); n != 0 {
			t.Errorf("%d video messages in an audio-only stream", n)
		}
		if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
			t.Errorf("audio gap %v at %d ms", gap, at)
		}
		if st := running.Stats; st == nil || st.AudioCodec != "aac" || st.VideoCodec != "" || !strings.Contains(st.VideoReason, "audio only") {
			t.Errorf("status stats = %+v", st)
		}
		if running.State != bridge.StateBroadcasting || running.Outputs[0].State != "live" {
			t.Errorf("audio-only broadcast is %s with output %s, want broadcasting and live", running.State, running.Outputs[0].State)
		}
	})
	t.Run("video only", func(t *testing.T) {
		in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "silent"})
		if _, err := sess.Wait(ctx, videoFor(4*time.Second)); err != nil {
			t.Fatal(err)
		}
		_, snap := stop(t, ctx, rc, in.ID, sess)
		a := mediaFrames(snap.Audio())
		if span := mediaSpan(snap.Audio()); span < 3500*time.Millisecond {
			t.Errorf("%d AAC frames spanning %v, want silence all along (≥ 3.5 s)", len(a), span)
		}
		if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
			t.Errorf("audio gap %v at %d ms", gap, at)
		}
	})
}

// TestMuteUnmute: the participant mutes the microphone for 5 s, then the
// camera for 5 s; the one RTMP session carries on with no hole in the
// audio timeline over 100 ms, video at least every 600 ms (the last
// keyframe repeated), and the passed-through frames are the publisher's.
func TestMuteUnmute(t *testing.T) {
	lk := startLiveKit(t)
	pub := publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 640, Height: 360, BitrateKbps: 800})
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice"})
	if _, err := sess.Wait(ctx, videoFor(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Each mute lasts 5 s of the other track's stream time.
	muteFor := func(mute func(bool), clock func(*rtmptest.Snapshot) []rtmptest.Message) {
		mute(true)
		from := lastFrameTS(clock(sess.Snapshot()))
		if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(clock(s)) >= from+5000 }); err != nil {
			t.Fatalf("stream stalled while muted: %v", err)
		}
		mute(false)
	}
	muteFor(pub.pub.MuteAudio, (*rtmptest.Snapshot).Video)
	muteFor(pub.pub.MuteVideo, (*rtmptest.Snapshot).Audio)
	resumed := lastFrameTS(sess.Snapshot().Audio())
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool {
		return lastFrameTS(s.Video()) >= resumed+2000 && lastFrameTS(s.Audio()) >= resumed+2000
	}); err != nil {
		t.Fatalf("stream did not resume after unmute: %v", err)
	}
	final, snap := stop(t, ctx, rc, in.ID, sess)
	if final.State != bridge.StateStopped {
		t.Errorf("broadcast ended %s: %+v", final.State, final.Error)
	}
	if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
		t.Errorf("audio timeline gap %v at %d ms", gap, at)
	}
	if gap, at := maxFrameGap(snap.Video()); gap > 600*time.Millisecond {
		t.Errorf("video timeline gap %v at %d ms", gap, at)
	}
	for _, msgs := range [][]rtmptest.Message{snap.Video(), snap.Audio()} {
		f := mediaFrames(msgs)
		for i := 1; i < len(f); i++ {
			if f[i].Timestamp < f[i-1].Timestamp {
				t.Fatalf("timestamp goes back from %d to %d ms", f[i-1].Timestamp, f[i].Timestamp)
			}
		}
	}
	matched, total := countSent(t, snap.Video(), pub)
	if matched != total || total < 250 {
		t.Errorf("%d of %d frames are the publisher's (repeats are its keyframes too); want all, at least 250 (9 s at 30 fps, 5 s at 2 fps)", matched, total)
	}
	if n := len(rc.svc.Manager.List()); n != 1 {
		t.Errorf("%d broadcasts, want the one", n)
	}
}

// TestResolutionChangePassthrough: the publisher drops from 640x360 to
// 320x180 mid-stream, as WebRTC does under congestion. In passthrough the
// destination gets a second sequence header with the new SPS, every frame
// stays byte-identical, and ffmpeg decodes the whole recording without
// an error.
func TestResolutionChangePassthrough(t *testing.T) {
	lk := startLiveKit(t)
	pub := publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 640, Height: 360, BitrateKbps: 600})
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice"})
	if _, err := sess.Wait(ctx, videoFor(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := pub.SetResolution(320, 180); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return avcHeaders(s) >= 2 }); err != nil {
		t.Fatalf("no new sequence header after the size change: %v", err)
	}
	// Passed through, the output size is the input size.
	if _, err := pollStatus(ctx, rc, in.ID, func(i bridge.Info) bool {
		return i.Stats != nil && i.Stats.WidthIn == 320 && i.Stats.Width == 320 && i.Stats.Height == 180
	}); err != nil {
		t.Fatalf("status never showed the new size in and out: %v", err)
	}
	changed := lastFrameTS(sess.Snapshot().Video())
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(s.Video()) >= changed+3000 }); err != nil {
		t.Fatal(err)
	}
	_, snap := stop(t, ctx, rc, in.ID, sess)

	if headers := avcHeaders(snap); headers != 2 {
		t.Errorf("%d AVC sequence headers, want 2: the first and a new one after the size change", headers)
	}
	matched, total := countSent(t, snap.Video(), pub)
	if matched != total || total < 150 {
		t.Errorf("%d of %d frames byte-identical to the publisher's, want all (≥ 150)", matched, total)
	}
	path := filepath.Join(t.TempDir(), "rec.flv")
	if err := rtmptest.WriteFLV(path, snap); err != nil {
		t.Fatal(err)
	}
	// ffprobe -show_frames decodes every frame of every stream and, at
	// level error, prints only what the decoders complain about (ffmpeg's
	// null muxer would add its own views on timestamps).
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_frames", "-of", "compact", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("decoding the recording: %v\n%s", err, stderr.String())
	}
	if frames := strings.Count(string(out), "media_type=video"); frames < total {
		t.Errorf("%d video frames decoded, %d received", frames, total)
	}
}

// TestSimulcastLayers: Chrome's three VP8 layers; by default the highest
// arrives, and a 320x180 target picks the layer that fits.
func TestSimulcastLayers(t *testing.T) {
	lk := startLiveKit(t)
	publish(t, lk, "studio", "alice", testpattern.SourceOptions{Codec: "vp8", Simulcast: true, Width: 640, Height: 360, BitrateKbps: 800})
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name         string
		video        *bridge.VideoRequest
		layer        string
		wantW, wantH int
	}{
		{"highest by default", nil, "high 640x360", 640, 360},
		{"target picks a lower layer", &bridge.VideoRequest{Width: 320, Height: 180}, "medium 320x180", 320, 180},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice", Video: tc.video})
			if _, err := sess.Wait(ctx, videoFor(2*time.Second)); err != nil {
				t.Fatal(err)
			}
			got, err := pollStatus(ctx, rc, in.ID, func(i bridge.Info) bool {
				return i.Stats != nil && i.Stats.WidthIn == tc.wantW && i.Stats.HeightIn == tc.wantH
			})
			final, snap := stop(t, ctx, rc, in.ID, sess)
			if err != nil || got.Stats.SimulcastLayer != tc.layer {
				t.Errorf("status = %+v (%v), want layer %q arriving at %dx%d", got.Stats, err, tc.layer, tc.wantW, tc.wantH)
			}
			if final.State != bridge.StateStopped || len(mediaFrames(snap.Video())) < 30 {
				t.Errorf("broadcast ended %s with %d frames", final.State, len(mediaFrames(snap.Video())))
			}
		})
	}
}

// TestScreenShare: a participant sharing a screen (with its audio) and no
// camera goes out when the broadcast asks for source "screen"; asked for
// the camera, it fails with tracks_not_found naming what it has.
func TestScreenShare(t *testing.T) {
	lk := startLiveKit(t)
	publish(t, lk, "studio", "presenter", testpattern.SourceOptions{Screen: true, Width: 640, Height: 360, BitrateKbps: 500})
	rc := startRoomcast(t, lk, func(c *config.Config) { c.Broadcast.TrackWait = 3 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "presenter", Source: "screen"})
	if _, err := sess.Wait(ctx, videoFor(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	_, snap := stop(t, ctx, rc, in.ID, sess)
	if len(mediaFrames(snap.Video())) < 45 || mediaSpan(snap.Audio()) < 1500*time.Millisecond {
		t.Errorf("%d video frames, %v of audio; want the screen and its audio", len(mediaFrames(snap.Video())), mediaSpan(snap.Audio()))
	}

	camera, err := rc.Start(ctx, bridge.StartRequest{Room: "studio", Identity: "presenter",
		Outputs: []bridge.OutputRequest{{URL: "rtmp://127.0.0.1:1/live/k"}}}, true)
	var apiErr *bridge.Error
	if errors.As(err, &apiErr) {
		camera.Error = apiErr
	} else if err != nil {
		t.Fatal(err)
	}
	if camera.Error == nil || camera.Error.Code != bridge.CodeTracksNotFound || !strings.Contains(camera.Error.Message, "SCREEN_SHARE") {
		t.Errorf("camera broadcast of a screen sharer = %s %+v, want tracks_not_found listing the screen share", camera.State, camera.Error)
	}
}

// TestCameraSwitch: the participant unpublishes the camera and publishes
// a new one, as a browser does when the user picks another camera. The
// same RTMP session carries on: the audio never stops, the video resumes
// from the new track's first keyframe, timestamps never go back, and
// every frame is one the publisher sent (not LiveKit's 2x2 flush frames).
func TestCameraSwitch(t *testing.T) {
	lk := startLiveKit(t)
	pub := publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 640, Height: 360, BitrateKbps: 800})
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice"})
	if _, err := sess.Wait(ctx, videoFor(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	oldSID := pub.pub.VideoTrackSID()
	if err := pub.pub.RepublishVideo(ctx); err != nil {
		t.Fatal(err)
	}
	if pub.pub.VideoTrackSID() == oldSID {
		t.Fatal("the camera was not republished")
	}
	switched := lastFrameTS(sess.Snapshot().Video())
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(s.Video()) >= switched+4000 }); err != nil {
		t.Fatalf("video did not resume after the switch: %v", err)
	}
	mid, err := rc.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	final, snap := stop(t, ctx, rc, in.ID, sess)
	if mid.State != bridge.StateBroadcasting || final.State != bridge.StateStopped {
		t.Errorf("broadcast %s after the switch and %s at the end (%+v), want broadcasting, then stopped on request", mid.State, final.State, final.Error)
	}
	if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
		t.Errorf("audio gap %v at %d ms", gap, at)
	}
	gap, at := maxFrameGap(snap.Video())
	t.Logf("largest video gap %v at %d ms (switch at %d ms)", gap, at, switched)
	if gap > 1200*time.Millisecond {
		t.Errorf("video gap %v at %d ms, want ≤ 1.2 s", gap, at)
	}
	matched, total := countSent(t, snap.Video(), pub)
	if matched != total || total < 180 {
		t.Errorf("%d of %d frames are the publisher's, want all and ≥ 180", matched, total)
	}
	// The SFU's 2x2 flush frames must not reach the destination as a
	// change of size: the one encoder's parameter sets throughout.
	if n := avcHeaders(snap); n != 1 {
		t.Errorf("%d AVC sequence headers, want 1", n)
	}
}

// frameSource is a test-pattern source, or a publisher of one: it knows
// every access unit it sent.
type frameSource interface {
	FrameSentAt(hash [32]byte) (time.Time, bool)
}

// countSent fails the test if the video timestamps ever go back, and
// counts the coded frames that are byte for byte what src sent.
func countSent(t *testing.T, video []rtmptest.Message, src frameSource) (matched, total int) {
	t.Helper()
	var last uint32
	for _, m := range mediaFrames(video) {
		if m.Timestamp < last {
			t.Fatalf("video timestamp goes back from %d to %d ms", last, m.Timestamp)
		}
		last = m.Timestamp
		total++
		if sentBy(t, m, src) {
			matched++
		} else {
			t.Logf("frame at %d ms (%d bytes) is not the publisher's", m.Timestamp, len(m.Payload))
		}
	}
	return matched, total
}

// sentBy reports whether the coded video frame m carries, byte for byte,
// an access unit src sent.
func sentBy(t *testing.T, m rtmptest.Message, src frameSource) bool {
	t.Helper()
	nalus, err := avc.SplitAVCC(m.Payload[5:], 4)
	if err != nil {
		t.Fatalf("video message at %d ms: %v", m.Timestamp, err)
	}
	_, ok := src.FrameSentAt(avc.VCLHash(nalus))
	return ok
}
