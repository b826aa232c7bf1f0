package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/internal/avc"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// av1Source is a camera publishing AV1 as a browser's libaom runs it
// (realtime), at a size this 2-core machine encodes cheaply.
var av1Source = testpattern.SourceOptions{Codec: "av1", Width: 640, Height: 360, BitrateKbps: 600}

// TestAV1TranscodedToH264: a participant publishing AV1 reaches the
// destination as H.264 at the requested size (640x360 in, 320x240 out:
// scaled and padded), keyframes at most 2.2 s apart, and the recording
// decodes; status says AV1 in, H.264 out, transcoding and why.
func TestAV1TranscodedToH264(t *testing.T) {
	lk := startLiveKit(t)
	publish(t, lk, "studio", "alice", av1Source)
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice",
		Video: &bridge.VideoRequest{Width: 320, Height: 240, Bitrate: 500_000}})
	if _, err := sess.Wait(ctx, videoFor(8*time.Second)); err != nil {
		t.Fatal(err)
	}
	running, err := rc.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	final, snap := stop(t, ctx, rc, in.ID, sess)

	st := running.Stats
	if st == nil || st.VideoCodecIn != "av1" || st.VideoCodec != "h264" || !st.Transcoding || st.Passthrough || !strings.Contains(st.VideoReason, "av1") {
		t.Errorf("status stats = %+v, want av1 in, h264 out, transcoding because of av1", st)
	}
	if st != nil && (st.WidthIn != 640 || st.HeightIn != 360) {
		t.Errorf("status input size %dx%d, want 640x360", st.WidthIn, st.HeightIn)
	}
	if final.State != bridge.StateStopped {
		t.Errorf("broadcast ended %s: %+v", final.State, final.Error)
	}
	v := mediaFrames(snap.Video())
	if len(v) < 8*28 || v[0].Payload[0]>>4 != 1 {
		t.Errorf("%d frames in 8 s, first a keyframe: %v; want ≥ 224 (30 fps) starting with one", len(v), len(v) > 0 && v[0].Payload[0]>>4 == 1)
	}
	if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
		t.Errorf("audio gap %v at %d ms", gap, at)
	}

	// What a viewer's player makes of it.
	path := filepath.Join(t.TempDir(), "rec.flv")
	if err := rtmptest.WriteFLV(path, snap); err != nil {
		t.Fatal(err)
	}
	probe, err := rtmptest.Probe(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	vs, ok := probe.Stream("video")
	if !ok || vs.CodecName != "h264" || vs.Width != 320 || vs.Height != 240 || vs.PixFmt != "yuv420p" {
		t.Errorf("recording's video = %+v, want H.264 yuv420p 320x240", vs)
	}
	if gap, err := probe.MaxKeyframeGap(); err != nil || gap > 2200*time.Millisecond {
		t.Errorf("recording's largest keyframe gap is %v (%v), want ≤ 2.2 s", gap, err)
	}
	if n := probe.Keyframes(); n < 4 {
		t.Errorf("%d keyframes in 8 s, want ≥ 4", n)
	}
}

// TestAV1MuteUnmute: the AV1 camera is muted for 4 s and unmuted. The one
// RTMP session carries on without a hole in either timeline (the last
// keyframe is repeated, and videorate holds 30 fps), and after unmute the
// picture moves again: the publisher's stream was taken up at a keyframe,
// not left frozen on the repeats.
func TestAV1MuteUnmute(t *testing.T) {
	lk := startLiveKit(t)
	pub := publish(t, lk, "studio", "alice", av1Source)
	rc := startRoomcast(t, lk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: "alice",
		Video: &bridge.VideoRequest{Width: 320, Height: 240, Bitrate: 500_000}})
	if _, err := sess.Wait(ctx, videoFor(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Mute for 4 s of stream time by the audio clock, which runs on.
	pub.pub.MuteVideo(true)
	mutedAt := lastFrameTS(sess.Snapshot().Audio())
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(s.Audio()) >= mutedAt+4000 }); err != nil {
		t.Fatalf("stream stalled while muted: %v", err)
	}
	pub.pub.MuteVideo(false)
	unmutedAt := lastFrameTS(sess.Snapshot().Audio())
	if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool {
		return lastFrameTS(s.Video()) >= unmutedAt+3000 && lastFrameTS(s.Audio()) >= unmutedAt+3000
	}); err != nil {
		t.Fatalf("stream did not go on after unmute: %v", err)
	}
	final, snap := stop(t, ctx, rc, in.ID, sess)
	if final.State != bridge.StateStopped {
		t.Errorf("broadcast ended %s: %+v", final.State, final.Error)
	}
	if n := len(rc.svc.Manager.List()); n != 1 {
		t.Errorf("%d broadcasts, want the one", n)
	}
	if gap, at := maxFrameGap(snap.Audio()); gap > 100*time.Millisecond {
		t.Errorf("audio gap %v at %d ms", gap, at)
	}
	if gap, at := maxFrameGap(snap.Video()); gap > 100*time.Millisecond {
		t.Errorf("video gap %v at %d ms (muted at %d, unmuted at %d)", gap, at, mutedAt, unmutedAt)
	}

	// The moving ball costs x264 bytes in every P-frame; a frozen picture
	// costs almost none (x264's CBR filler aside). Compare the last 2 s
	// of the mute with the 2 s from 1 s after unmute.
	frozen := picturePBytes(t, snap.Video(), mutedAt+2000, mutedAt+4000)
	moving := picturePBytes(t, snap.Video(), unmutedAt+1000, unmutedAt+3000)
	t.Logf("P-frame picture bytes: %d while muted, %d after unmute", frozen, moving)
	if moving < 4*frozen || moving == 0 {
		t.Errorf("P-frames carry %d picture bytes after unmute, %d while muted: the picture does not move again", moving, frozen)
	}
}

// picturePBytes sums the slice data of the P-frames with timestamps in
// [from, to): the NAL units of the picture, without x264's filler or SEI.
func picturePBytes(t *testing.T, msgs []rtmptest.Message, from, to uint32) int {
	t.Helper()
	n := 0
	for _, m := range mediaFrames(msgs) {
		if m.Timestamp < from || m.Timestamp >= to || m.Payload[0]>>4 == 1 {
			continue
		}
		nalus, err := avc.SplitAVCC(m.Payload[5:], 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, nal := range nalus {
			if avc.IsVCL(nal) {
				n += len(nal)
			}
		}
	}
	return n
}
