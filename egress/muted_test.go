package egress

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

// TestCameraMutedFromStart: a video track that sends nothing from the
// start, as a camera muted before the broadcast. The destination gets
// audio from the first moment, video (black) from the same moment, and
// the camera's own picture once it unmutes, in one session whose
// timelines have no holes; in passthrough the camera's size comes as a
// second sequence header.
func TestCameraMutedFromStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		track func(time.Time, int, int, int) (*gstTrack, error)
		// Largest step between video frames: passthrough sends the black
		// keyframe at 2 fps; a transcode holds 30 fps.
		maxVideoGap uint32
	}{
		{"h264 passthrough", h264Track, 600},
		{"vp8 transcode", vp8Track, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			v, err := tc.track(start, 320, 240, 30)
			if err != nil {
				t.Fatal(err)
			}
			a, err := opusTrack(start)
			if err != nil {
				t.Fatal(err)
			}
			video := &gatedTrack{Track: v}
			video.muted.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, sess, stop := runStream(t, ctx, Options{KeyframeInterval: time.Second, Video: VideoOptions{Width: 640, Height: 360}}, video, a)
			if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindVideo, 3000)); err != nil {
				t.Fatalf("no video while the camera is muted: %v", err)
			}
			muted := waitStats(t, ctx, s, func(st Stats) bool { return st.VideoWidthIn != 0 })
			video.muted.Store(false)
			unmutedAt := time.Now()
			in := waitStats(t, ctx, s, func(st Stats) bool { return st.VideoWidthIn == 320 })
			t.Logf("camera's picture in the pipeline %v after unmuting", time.Since(unmutedAt).Round(time.Millisecond))
			unmuteTS := lastTS(sess.Snapshot().Messages)
			if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindVideo, unmuteTS+2000)); err != nil {
				t.Fatalf("video did not go on after unmuting: %v", err)
			}
			snap := stop()

			if muted.VideoWidthIn != 640 || muted.VideoHeightIn != 360 || in.VideoHeightIn != 240 {
				t.Errorf("input size %dx%d while muted, then %dx%d; want the 640x360 stand-in, then the camera's 320x240",
					muted.VideoWidthIn, muted.VideoHeightIn, in.VideoWidthIn, in.VideoHeightIn)
			}
			af, vf := frames(snap.Messages, rtmptest.KindAudio), frames(snap.Messages, rtmptest.KindVideo)
			if d := int64(vf[0].Timestamp) - int64(af[0].Timestamp); d < -100 || d > 100 {
				t.Errorf("video begins at %d ms, audio at %d ms; want together (±100 ms)", vf[0].Timestamp, af[0].Timestamp)
			}
			if gap, at := maxGap(af); gap > 100 {
				t.Errorf("audio gap %d ms at %d ms", gap, at)
			}
			if gap, at := maxGap(vf); gap > tc.maxVideoGap {
				t.Errorf("video gap %d ms at %d ms (unmuted at %d ms), want ≤ %d", gap, at, unmuteTS, tc.maxVideoGap)
			}
			for i := 1; i < len(vf); i++ {
				if vf[i].Timestamp < vf[i-1].Timestamp {
					t.Fatalf("video timestamp goes back from %d to %d ms", vf[i-1].Timestamp, vf[i].Timestamp)
				}
			}
			headers := 0
			for _, m := range snap.Video() {
				if len(m.Payload) > 1 && m.Payload[1] == 0 {
					headers++
				}
			}
			wantHeaders := 1 // the transcoder's, at the output size
			if !s.Stats().Transcoding {
				wantHeaders = 2 // the stand-in's, then the camera's
			}
			if headers != wantHeaders {
				t.Errorf("%d AVC sequence headers, want %d", headers, wantHeaders)
			}
		})
	}
}
