package egress

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

func vp8Track(start time.Time, width, height, fps int) (*gstTrack, error) {
	return newGstTrack(start, Codec{Kind: Video, MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96}, fmt.Sprintf(
		"videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1"+
			" ! vp8enc name=enc deadline=1 cpu-used=8 keyframe-max-dist=100000 target-bitrate=1000000"+
			" ! rtpvp8pay pt=96 mtu=1200 ! appsink name=rtp sync=false", width, height, fps))
}

func vp9Track(start time.Time, width, height, fps int) (*gstTrack, error) {
	return newGstTrack(start, Codec{Kind: Video, MimeType: "video/VP9", ClockRate: 90000, PayloadType: 98}, fmt.Sprintf(
		"videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1"+
			" ! vp9enc name=enc deadline=1 cpu-used=8 keyframe-max-dist=100000 target-bitrate=500000"+
			" ! rtpvp9pay pt=98 mtu=1200 ! appsink name=rtp sync=false", width, height, fps))
}

// gatedTrack drops every packet while muted, as an SFU does for a muted
// track: the reader sees nothing at all.
type gatedTrack struct {
	Track
	muted atomic.Bool
}

func (g *gatedTrack) ReadRTP() (*rtp.Packet, time.Duration, error) {
	for {
		pkt, pts, err := g.Track.ReadRTP()
		if err != nil || !g.muted.Load() {
			return pkt, pts, err
		}
	}
}

// runStream starts s against a fresh receiver and returns the session and
// a stop function that ends the stream and returns the whole recording.
func runStream(t *testing.T, ctx context.Context, opts Options, tracks ...Track) (*Stream, *rtmptest.Session, func() *rtmptest.Snapshot) {
	t.Helper()
	recv := newReceiver(t)
	opts.Outputs = []Output{{ID: "r", URL: mustURL(t, recv.URL("live", "k"))}}
	s, err := New(opts, tracks...)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return s, sess, func() *rtmptest.Snapshot {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		snap, err := sess.WaitEnd(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
}

func frames(msgs []rtmptest.Message, kind rtmptest.Kind) []rtmptest.Message {
	var out []rtmptest.Message
	for _, m := range msgs {
		if m.Kind == kind && len(m.Payload) > 2 && m.Payload[1] == 1 {
			out = append(out, m)
		}
	}
	return out
}

// maxGap is the largest step between consecutive frame timestamps, in ms.
func maxGap(fs []rtmptest.Message) (gap, at uint32) {
	for i := 1; i < len(fs); i++ {
		if d := fs[i].Timestamp - fs[i-1].Timestamp; d > gap {
			gap, at = d, fs[i].Timestamp
		}
	}
	return gap, at
}

func spanAtLeast(kind rtmptest.Kind, ms uint32) func(*rtmptest.Snapshot) bool {
	return func(sn *rtmptest.Snapshot) bool {
		f := frames(sn.Messages, kind)
		return len(f) > 1 && f[len(f)-1].Timestamp-f[0].Timestamp >= ms
	}
}

// TestTranscode: a 640x480 VP8, VP9 or AV1 track leaves as H.264 at the
// requested fixed size (scaled and padded), at the requested constant
// bitrate, with keyframes on the interval the stream asked x264 for, and
// the stats say what happened and why.
func TestTranscode(t *testing.T) {
	for _, tc := range []struct {
		codec string
		track func(time.Time, int, int, int) (*gstTrack, error)
	}{{"vp8", vp8Track}, {"vp9", vp9Track}, {"av1", av1Track}} {
		t.Run(tc.codec, func(t *testing.T) { testTranscode(t, tc.codec, tc.track) })
	}
}

func testTranscode(t *testing.T, codec string, track func(time.Time, int, int, int) (*gstTrack, error)) {
	start := time.Now()
	video, err := track(start, 640, 480, 30)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := opusTrack(start)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, sess, stop := runStream(t, ctx, Options{Video: VideoOptions{Width: 640, Height: 360, Bitrate: 800_000}}, video, audio)
	if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindVideo, 5000)); err != nil {
		t.Fatal(err)
	}
	snap := stop()

	st := s.Stats()
	if !st.Transcoding || st.Passthrough || st.VideoCodecIn != codec || st.VideoCodec != "h264" || st.VideoReason == "" {
		t.Errorf("stats = %+v, want %s in, h264 out, transcoding with a reason", st, codec)
	}
	if st.VideoWidthIn != 640 || st.VideoHeightIn != 480 {
		t.Errorf("input size %dx%d, want 640x480", st.VideoWidthIn, st.VideoHeightIn)
	}
	meta := snap.DataNamed("onMetaData")
	if len(meta) != 1 {
		t.Fatalf("%d onMetaData", len(meta))
	}
	fields, _ := meta[0].Values[len(meta[0].Values)-1].(map[string]any)
	if fields["width"] != 640.0 || fields["height"] != 360.0 || fields["videocodecid"] != 7.0 {
		t.Errorf("onMetaData = %v, want 640x360 H.264", fields)
	}
	v := frames(snap.Messages, rtmptest.KindVideo)
	var last uint32
	keys := 0
	for _, m := range v {
		if m.Payload[0]>>4 != 1 {
			continue
		}
		if keys > 0 && m.Timestamp-last > 2200 {
			t.Errorf("keyframe gap %d ms at %d ms", m.Timestamp-last, m.Timestamp)
		}
		last = m.Timestamp
		keys++
	}
	if keys < 3 || len(v) < 140 {
		t.Errorf("%d keyframes, %d frames in 5 s; want ≥ 3 and ≥ 140 (30 fps)", keys, len(v))
	}
	// CBR: the first and last second aside (start-up, the drain), the
	// rate is the requested one.
	var bytes int
	from, to := v[0].Timestamp+1000, v[len(v)-1].Timestamp-1000
	for _, m := range v {
		if m.Timestamp >= from && m.Timestamp < to {
			bytes += len(m.Payload)
		}
	}
	if kbps := bytes * 8 / int(to-from); kbps < 680 || kbps > 920 {
		t.Errorf("video at %d kbit/s, want 800 ± 15%%", kbps)
	}
	if n := LivePipelines(); n != 0 {
		t.Errorf("%d pipelines left after Run", n)
	}
}

// TestMissingTrackStandIns: a stream with only video still carries
// continuous AAC (YouTube drops streams without audio), and one with only
// audio is audio-only FLV, or black H.264 when the request wants video.
func TestMissingTrackStandIns(t *testing.T) {
	for _, tc := range []struct {
		name         string
		video, audio bool
		slate        bool
	}{
		{"video only", true, false, false},
		{"audio only", false, true, false},
		{"audio only with slate", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			var tracks []Track
			if tc.video {
				v, err := h264Track(start, 320, 240, 30)
				if err != nil {
					t.Fatal(err)
				}
				tracks = append(tracks, v)
			}
			if tc.audio {
				a, err := opusTrack(start)
				if err != nil {
					t.Fatal(err)
				}
				tracks = append(tracks, a)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, sess, stop := runStream(t, ctx, Options{Video: VideoOptions{Slate: tc.slate, Width: 320, Height: 240}}, tracks...)
			if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindAudio, 3000)); err != nil {
				t.Fatal(err)
			}
			snap := stop()
			a := frames(snap.Messages, rtmptest.KindAudio)
			if gap, at := maxGap(a); gap > 100 {
				t.Errorf("audio gap %d ms at %d ms", gap, at)
			}
			v := frames(snap.Messages, rtmptest.KindVideo)
			wantVideo := tc.video || tc.slate
			if wantVideo && mediaSpanMS(v) < 2500 {
				t.Errorf("%d video frames spanning %d ms, want ≥ 2.5 s of video", len(v), mediaSpanMS(v))
			}
			if !wantVideo && len(snap.Video()) != 0 {
				t.Errorf("%d video messages in an audio-only stream", len(snap.Video()))
			}
			if st := s.Stats(); st.AudioCodec != "aac" || st.VideoReason == "" {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// TestTrackStartingBeforeZero: a room's synchronizer may give a track's
// first packets times before the stream's zero (each track's clock starts
// from its own first packets). Those are dropped, and the stream goes on;
// pushed, they reached the muxer as huge times and stalled it.
func TestTrackStartingBeforeZero(t *testing.T) {
	start := time.Now()
	video, err := h264Track(start.Add(500*time.Millisecond), 320, 240, 30) // its first half second is negative
	if err != nil {
		t.Fatal(err)
	}
	audio, err := opusTrack(start)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, sess, stop := runStream(t, ctx, Options{}, video, audio)
	if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindVideo, 2000)); err != nil {
		t.Fatalf("stream stalled: %v", err)
	}
	snap := stop()
	if gap, at := maxGap(frames(snap.Messages, rtmptest.KindAudio)); gap > 100 {
		t.Errorf("audio gap %d ms at %d ms", gap, at)
	}
}

func mediaSpanMS(fs []rtmptest.Message) uint32 {
	if len(fs) < 2 {
		return 0
	}
	return fs[len(fs)-1].Timestamp - fs[0].Timestamp
}

// TestMuteKeepsTimeline: muting a track (the SFU stops forwarding it) for
// 3 s keeps the one RTMP session going with no hole in the audio timeline
// over 100 ms, video at least every 600 ms, and both resume after unmute.
func TestMuteKeepsTimeline(t *testing.T) {
	for _, tc := range []struct {
		name      string
		track     func(time.Time, int, int, int) (*gstTrack, error)
		transcode bool
		muteAudio bool
	}{
		{"audio passthrough", h264Track, false, true},
		{"video passthrough", h264Track, false, false},
		{"video transcode", vp8Track, true, false},
		// AV1 resumes only at a keyframe, which the encoder makes when asked.
		{"video transcode av1", av1Track, true, false},
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
			video, audio := &gatedTrack{Track: v}, &gatedTrack{Track: a}
			gated := video
			if tc.muteAudio {
				gated = audio
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, sess, stop := runStream(t, ctx, Options{KeyframeInterval: time.Second, Video: VideoOptions{Width: 320, Height: 240}}, video, audio)
			if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindVideo, 2000)); err != nil {
				t.Fatal(err)
			}
			gated.muted.Store(true)
			mutedAt := sess.Snapshot().Messages
			muteTS := lastTS(mutedAt)
			// The other track's clock runs on: wait for 3 s of it.
			other := rtmptest.KindAudio
			if tc.muteAudio {
				other = rtmptest.KindVideo
			}
			if _, err := sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
				f := frames(sn.Messages, other)
				return len(f) > 0 && f[len(f)-1].Timestamp >= muteTS+3000
			}); err != nil {
				t.Fatalf("stream stalled while muted: %v", err)
			}
			gated.muted.Store(false)
			unmuteTS := lastTS(sess.Snapshot().Messages)
			if _, err := sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
				f := frames(sn.Messages, rtmptest.KindVideo)
				g := frames(sn.Messages, rtmptest.KindAudio)
				return len(f) > 0 && len(g) > 0 && f[len(f)-1].Timestamp >= unmuteTS+2000 && g[len(g)-1].Timestamp >= unmuteTS+2000
			}); err != nil {
				t.Fatalf("stream did not resume after unmute: %v", err)
			}
			snap := stop()
			if gap, at := maxGap(frames(snap.Messages, rtmptest.KindAudio)); gap > 100 {
				t.Errorf("audio gap %d ms at %d ms (muted at %d, unmuted at %d)", gap, at, muteTS, unmuteTS)
			}
			vmax := uint32(100)
			if !tc.muteAudio && !tc.transcode {
				vmax = 600 // passthrough repeats the last keyframe at 2 fps
			}
			if gap, at := maxGap(frames(snap.Messages, rtmptest.KindVideo)); gap > vmax {
				t.Errorf("video gap %d ms at %d ms, want ≤ %d (muted at %d, unmuted at %d)", gap, at, vmax, muteTS, unmuteTS)
			}
		})
	}
}

func lastTS(msgs []rtmptest.Message) uint32 {
	var ts uint32
	for _, m := range msgs {
		if (m.Kind == rtmptest.KindAudio || m.Kind == rtmptest.KindVideo) && m.Timestamp > ts {
			ts = m.Timestamp
		}
	}
	return ts
}
