package egress

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

// running is a Stream under test whose Run goes on in the background.
type running struct {
	*Stream
	stop func() error // cancels Run and returns its result
}

func start(t *testing.T, ctx context.Context, s *Stream) *running {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	r := &running{Stream: s}
	stopped := false
	var result error
	r.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// videoPast waits until the session holds video up to ms by the stream's
// clock.
func videoPast(ms uint32) func(*rtmptest.Snapshot) bool {
	return func(sn *rtmptest.Snapshot) bool {
		v := sn.Video()
		return len(v) > 0 && v[len(v)-1].Timestamp >= ms
	}
}

// sessionStart names the messages of a session up to its first keyframe.
func sessionStart(snap *rtmptest.Snapshot) []string {
	var kinds []string
	for _, m := range snap.Messages {
		switch {
		case m.Kind == rtmptest.KindData:
			kinds = append(kinds, m.Name)
		case m.Kind == rtmptest.KindVideo && m.Payload[1] == 0:
			kinds = append(kinds, "avc-header")
		case m.Kind == rtmptest.KindAudio && m.Payload[1] == 0:
			kinds = append(kinds, "aac-header")
		case m.Kind == rtmptest.KindVideo && m.Payload[1] == 1 && m.Payload[0]>>4 == 1:
			return append(kinds, "keyframe")
		case m.Kind == rtmptest.KindVideo || m.Kind == rtmptest.KindAudio:
			kinds = append(kinds, "frame")
		}
	}
	return kinds
}

func metaFields(t *testing.T, m rtmptest.Message) map[string]any {
	t.Helper()
	if len(m.Values) != 3 || m.Values[0] != "@setDataFrame" || m.Values[1] != "onMetaData" {
		t.Fatalf("onMetaData values = %#v, want [@setDataFrame onMetaData {...}]", m.Values)
	}
	f, ok := m.Values[2].(map[string]any)
	if !ok {
		t.Fatalf("onMetaData body is %T", m.Values[2])
	}
	return f
}

// TestConnectInfoAndMetadata: the connect command carries the extra fields
// with their types; the session starts with exactly one onMetaData holding
// both the stream's fields and the user keys; an update arrives as the
// merged onMetaData; stats show the measured rates.
func TestConnectInfoAndMetadata(t *testing.T) {
	recv := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	video, audio := testTracks(t)
	s, err := New(Options{
		Outputs: []Output{{ID: "r", URL: mustURL(t, recv.URL("live", "k")),
			ConnectInfo: map[string]any{"token": "abc", "bitrate": 2500.0, "hd": true}}},
		Metadata: map[string]any{"title": "Show", "tags": []any{"a", 1.0}},
	}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, ctx, s)
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sess.Wait(ctx, videoPast(2500))
	if err != nil {
		t.Fatal(err)
	}

	c := snap.Connect
	for k, want := range map[string]any{
		"token": "abc", "bitrate": 2500.0, "hd": true,
		"app": "live", "type": "nonprivate", "tcUrl": "rtmp://" + recv.Addr() + "/live", "flashVer": flashVer,
	} {
		if c[k] != want {
			t.Errorf("connect %s = %#v, want %#v", k, c[k], want)
		}
	}
	if got := strings.Join(commandNames(snap), ","); got != "connect,releaseStream,FCPublish,createStream,publish" {
		t.Errorf("commands %s, want the OBS/ffmpeg publish sequence", got)
	}
	if snap.StreamName != "k" {
		t.Errorf("published %q, want the stream key", snap.StreamName)
	}

	if got := sessionStart(snap); strings.Join(got, ",") != "onMetaData,avc-header,aac-header,keyframe" {
		t.Errorf("session starts %v", got)
	}
	metas := snap.DataNamed("onMetaData")
	if len(metas) != 1 {
		t.Fatalf("%d onMetaData messages, want 1", len(metas))
	}
	f := metaFields(t, metas[0])
	for k, want := range map[string]any{
		"videocodecid": 7.0, "width": 320.0, "height": 240.0, "framerate": 30.0,
		"audiocodecid": 10.0, "audiosamplerate": 48000.0, "stereo": true,
		"title": "Show",
	} {
		if f[k] != want {
			t.Errorf("onMetaData %s = %#v, want %#v", k, f[k], want)
		}
	}
	if rate, ok := f["audiodatarate"].(float64); !ok || rate <= 0 {
		t.Errorf("onMetaData audiodatarate = %#v", f["audiodatarate"])
	}
	if tags, _ := f["tags"].([]any); len(tags) != 2 || tags[0] != "a" || tags[1] != 1.0 {
		t.Errorf("onMetaData tags = %#v", f["tags"])
	}
	if metas[0].StreamID != 1 || snap.Video()[0].StreamID != 1 {
		t.Errorf("messages on stream %d/%d, want the created stream 1", metas[0].StreamID, snap.Video()[0].StreamID)
	}

	ts, err := r.SendData(HandlerMetaData, map[string]any{"chapter": "Two"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err = sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return len(sn.DataNamed("onMetaData")) == 2 })
	if err != nil {
		t.Fatal(err)
	}
	update := snap.DataNamed("onMetaData")[1]
	f = metaFields(t, update)
	if f["chapter"] != "Two" || f["title"] != "Show" || f["width"] != 320.0 {
		t.Errorf("update is not the merged onMetaData: %v", f)
	}
	if time.Duration(update.Timestamp)*time.Millisecond != ts {
		t.Errorf("update at %d ms, SendData said %v", update.Timestamp, ts)
	}

	st := r.Stats()
	if st.Width != 320 || st.Height != 240 {
		t.Errorf("stats size %dx%d, want 320x240", st.Width, st.Height)
	}
	if math.Abs(st.FrameRate-30) > 4 {
		t.Errorf("stats frame rate %.1f, want about 30", st.FrameRate)
	}
	// 1000 kb/s x264 and 128 kb/s AAC, measured over 2 s.
	// The test pattern compresses far below x264's 1000 kb/s target.
	if st.VideoBitrate < 50_000 || st.VideoBitrate > 2_000_000 || st.AudioBitrate < 90_000 || st.AudioBitrate > 170_000 {
		t.Errorf("stats bitrates video %d audio %d b/s", st.VideoBitrate, st.AudioBitrate)
	}
	t.Logf("measured: %.1f fps, video %d b/s, audio %d b/s", st.FrameRate, st.VideoBitrate, st.AudioBitrate)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if snap, _ := sess.WaitEnd(ctx); snap.End != rtmptest.Clean {
		t.Errorf("session ended %v, want clean", snap.End)
	}
}

func commandNames(snap *rtmptest.Snapshot) []string {
	var names []string
	for _, m := range snap.Commands() {
		names = append(names, m.Name)
	}
	return names
}

// TestCuePointsAndText: 20 cue points and text messages sent at random
// moments each arrive exactly once, in order, stamped with the media time
// of the moment they were sent, never behind the media before them.
func TestCuePointsAndText(t *testing.T) {
	recv := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	video, audio := testTracks(t)
	s, err := New(Options{Outputs: []Output{{ID: "r", URL: mustURL(t, recv.URL("live", "k"))}}}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, ctx, s)
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sess.Wait(ctx, videoPast(500))
	if err != nil {
		t.Fatal(err)
	}

	type sent struct {
		handler string
		id      string
		ts      time.Duration
		media   uint32 // newest media timestamp the receiver had then
	}
	var all []sent
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range 20 {
		// Wait a random number of media messages: a random moment.
		n := len(snap.Messages) + 1 + rng.IntN(25)
		if snap, err = sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return len(sn.Messages) >= n }); err != nil {
			t.Fatal(err)
		}
		var media uint32
		for _, m := range snap.Messages {
			if m.Kind == rtmptest.KindAudio || m.Kind == rtmptest.KindVideo {
				media = max(media, m.Timestamp)
			}
		}
		id := fmt.Sprintf("m%02d", i)
		handler, data := HandlerCuePoint, map[string]any{"name": id, "parameters": map[string]any{"i": float64(i)}}
		if i%2 == 1 {
			handler, data = HandlerTextData, map[string]any{"text": id, "language": "en"}
		}
		ts, err := r.SendData(handler, data)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{handler, id, ts, media})
	}
	snap, err = sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
		return len(sn.DataNamed(HandlerCuePoint))+len(sn.DataNamed(HandlerTextData)) >= 20
	})
	if err != nil {
		t.Fatal(err)
	}

	var got []rtmptest.Message
	var lastMedia uint32
	for _, m := range snap.Messages {
		switch {
		case m.Kind == rtmptest.KindAudio || m.Kind == rtmptest.KindVideo:
			lastMedia = max(lastMedia, m.Timestamp)
		case m.Name == HandlerCuePoint || m.Name == HandlerTextData:
			if m.Timestamp < lastMedia {
				t.Errorf("%s at %d ms is behind the media before it (%d ms)", m.Name, m.Timestamp, lastMedia)
			}
			got = append(got, m)
		}
	}
	if len(got) != len(all) {
		t.Fatalf("%d data messages arrived, want %d", len(got), len(all))
	}
	var worst time.Duration
	for i, m := range got {
		w := all[i]
		obj, _ := m.Values[1].(map[string]any)
		id := obj["name"]
		if w.handler == HandlerTextData {
			id = obj["text"]
		}
		if m.Name != w.handler || id != w.id {
			t.Errorf("message %d is %s %v, want %s %s (exactly once, in order)", i, m.Name, id, w.handler, w.id)
			continue
		}
		if at := time.Duration(m.Timestamp) * time.Millisecond; at != w.ts {
			t.Errorf("%s at %v, SendData said %v", w.id, at, w.ts)
		}
		lag := w.ts - time.Duration(w.media)*time.Millisecond
		worst = max(worst, lag.Abs())
		if lag.Abs() > 100*time.Millisecond {
			t.Errorf("%s stamped %v, media was at %d ms when it was sent", w.id, w.ts, w.media)
		}
		if w.handler == HandlerCuePoint {
			if obj["time"] != w.ts.Seconds() || obj["type"] != "event" {
				t.Errorf("cue point %v: time %v type %v, want %v event", w.id, obj["time"], obj["type"], w.ts.Seconds())
			}
		}
		if m.StreamID != 1 || len(m.Values) != 2 {
			t.Errorf("%s: stream %d values %v, want a plain data message on stream 1", w.id, m.StreamID, m.Values)
		}
	}
	t.Logf("largest distance between a message's stamp and the media the receiver had when it was sent: %v", worst)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// What a viewer's demuxer makes of it: record the session as FLV and
	// let ffprobe read it.
	snap, _ = sess.WaitEnd(ctx)
	path := filepath.Join(t.TempDir(), "session.flv")
	if d := os.Getenv("KEEP_FLV"); d != "" {
		path = d
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.WriteFLV(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	probe, err := rtmptest.Probe(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, st := range probe.Streams {
		kinds = append(kinds, st.CodecType+"/"+st.CodecName)
	}
	t.Logf("ffprobe streams: %v", kinds)
	if v, ok := probe.Stream("video"); !ok || v.CodecName != "h264" {
		t.Errorf("ffprobe streams %v: no h264 video", kinds)
	}
	if a, ok := probe.Stream("audio"); !ok || a.CodecName != "aac" {
		t.Errorf("ffprobe streams %v: no aac audio", kinds)
	}
	// ffmpeg's FLV demuxer turns onTextData into a text subtitle stream
	// whose packets hold the text, and puts onCuePoint there as its raw
	// AMF0 body.
	sub, ok := probe.Stream("subtitle")
	if !ok || sub.CodecName != "text" {
		t.Fatalf("ffprobe streams %v: onTextData should show as a text subtitle stream", kinds)
	}
	packets := probe.StreamPackets("subtitle")
	if len(packets) != len(all) {
		t.Fatalf("ffprobe shows %d data packets, want the %d sent", len(packets), len(all))
	}
	for i, p := range packets {
		w := all[i]
		if (p.PTS - w.ts).Abs() > time.Millisecond {
			t.Errorf("data packet %d at %v, sent at %v", i, p.PTS, w.ts)
		}
		if isText := p.Size == len(w.id); isText != (w.handler == HandlerTextData) {
			t.Errorf("data packet %d (%s) has %d bytes", i, w.handler, p.Size)
		}
	}
}

// TestReconnect: the receiver drops the session and refuses the next two
// connections; the output reconnects with backoff, and the new session
// starts with the merged onMetaData, both sequence headers and a
// keyframe, requested at once. A cue point sent during the gap is dropped
// and counted, never delivered late.
func TestReconnect(t *testing.T) {
	recv := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	video, audio := testTracks(t)
	changes := make(chan struct{}, 1)
	s, err := New(Options{
		Outputs:  []Output{{ID: "r", URL: mustURL(t, recv.URL("live", "k"))}},
		Metadata: map[string]any{"title": "Show"},
		// Long, so that a keyframe soon after the reconnect can only come
		// from the request the new session makes.
		KeyframeInterval: 20 * time.Second,
		OnChange: func() {
			select {
			case changes <- struct{}{}:
			default:
			}
		},
	}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	// The drop and two refused attempts: waits of 300 ms, 600 ms, then 1 s.
	s.backoff = backoff{min: 300 * time.Millisecond, max: time.Second, attempts: 6, stable: 10 * time.Second}
	r := start(t, ctx, s)
	first, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Wait(ctx, videoPast(1500)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SendData(HandlerMetaData, map[string]any{"chapter": "Two"}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return len(sn.DataNamed("onMetaData")) == 2 }); err != nil {
		t.Fatal(err)
	}

	recv.RejectNext(2)
	first.Drop()
	waitState(t, ctx, r.Stream, changes, OutputReconnecting)
	if _, err := r.SendData(HandlerCuePoint, map[string]any{"name": "during-gap"}); err != nil {
		t.Fatal(err)
	}
	second, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := second.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
		return slices.Contains(sessionStart(sn), "keyframe")
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SendData(HandlerCuePoint, map[string]any{"name": "after"}); err != nil {
		t.Fatal(err)
	}
	snap, err = second.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return len(sn.DataNamed(HandlerCuePoint)) > 0 })
	if err != nil {
		t.Fatal(err)
	}

	if n := recv.Rejected(); n != 2 {
		t.Errorf("%d connections refused, want 2", n)
	}
	if got := sessionStart(snap); strings.Join(got, ",") != "onMetaData,avc-header,aac-header,keyframe" {
		t.Errorf("reconnected session starts %v", got)
	}
	f := metaFields(t, snap.DataNamed("onMetaData")[0])
	if f["title"] != "Show" || f["chapter"] != "Two" || f["width"] != 320.0 {
		t.Errorf("reconnected session's onMetaData is not the merged one: %v", f)
	}
	var firstKey time.Time
	for _, m := range snap.Video() {
		if m.Payload[0]>>4 == 1 && m.Payload[1] == 1 {
			firstKey = m.Time
			break
		}
	}
	if wait := firstKey.Sub(second.Accepted); wait > 2*time.Second {
		t.Errorf("first keyframe %v after the reconnect; the keyframe request did not work", wait)
	}
	t.Logf("drop to new session %v (two refused attempts between), new session to first keyframe %v",
		second.Accepted.Sub(first.Snapshot().EndTime).Round(time.Millisecond), firstKey.Sub(second.Accepted).Round(time.Millisecond))
	for _, sess := range []*rtmptest.Session{first, second} {
		for _, m := range sess.Snapshot().DataNamed(HandlerCuePoint) {
			if m.Values[1].(map[string]any)["name"] == "during-gap" {
				t.Errorf("session %d got the cue point sent during the gap", sess.ID)
			}
		}
	}
	if cues := snap.DataNamed(HandlerCuePoint); len(cues) != 1 || cues[0].Values[1].(map[string]any)["name"] != "after" {
		t.Errorf("cue points after the reconnect: %v", cues)
	}
	st := r.Stats().Outputs[0]
	if st.Reconnects != 1 || st.DataDropped != 1 || st.State != OutputLive {
		t.Errorf("output stats %+v, want 1 reconnect, 1 dropped data message, live", st)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// waitState waits until the stream's first output is in state want.
func waitState(t *testing.T, ctx context.Context, s *Stream, changes <-chan struct{}, want OutputState) {
	t.Helper()
	for {
		if st := s.Stats().Outputs; len(st) > 0 && st[0].State == want {
			return
		}
		select {
		case <-changes:
		case <-ctx.Done():
			t.Fatalf("output never became %s: %+v", want, s.Stats().Outputs)
		}
	}
}

// TestReconnectGivesUp: a destination that keeps refusing after a drop
// fails the output after the policy's attempts, and with it the stream.
func TestReconnectGivesUp(t *testing.T) {
	recv := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	video, audio := testTracks(t)
	s, err := New(Options{Outputs: []Output{{ID: "r", URL: mustURL(t, recv.URL("live", "secretkey"))}}}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	s.backoff = backoff{min: 20 * time.Millisecond, max: 50 * time.Millisecond, attempts: 4, stable: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Wait(ctx, videoPast(200)); err != nil {
		t.Fatal(err)
	}
	recv.RejectNext(100)
	sess.Drop()
	err = <-done
	var oe *OutputError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "gave up after 4 failed reconnects") {
		t.Fatalf("Run = %v, want an *OutputError saying it gave up", err)
	}
	if strings.Contains(err.Error(), "secretkey") {
		t.Errorf("error leaks the key: %v", err)
	}
	// The drop counts as the first failure: three refused attempts follow.
	if n := recv.Rejected(); n != 3 {
		t.Errorf("%d refused attempts, want 3", n)
	}
	if st := s.Stats().Outputs[0]; st.State != OutputFailed {
		t.Errorf("output %+v, want failed", st)
	}
}

// TestBadDataLeavesStreamAlone: every invalid SendData is refused with an
// error naming the field and the limit, and the stream goes on unharmed.
func TestBadDataLeavesStreamAlone(t *testing.T) {
	recv := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	video, audio := testTracks(t)
	s, err := New(Options{Outputs: []Output{{ID: "r", URL: mustURL(t, recv.URL("live", "k"))}}, MaxMetadataBytes: 1000}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, ctx, s)
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Wait(ctx, videoPast(300)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		handler string
		data    map[string]any
		want    string
	}{
		{HandlerCuePoint, map[string]any{"name": "c", "parameters": nest("chapter", "info", "a", "b", "c", "d")}, "depth 7 exceeds the limit of 6"},
		{HandlerTextData, map[string]any{"text": strings.Repeat("x", 2000)}, "exceeds the limit of 1000"},
		{"onPlayStatus", map[string]any{"x": 1.0}, `handler "onPlayStatus" is not supported`},
		{HandlerCuePoint, map[string]any{"name": "c", "parameters": []any{1.0}}, "data.parameters: want an object, got an array"},
		{HandlerMetaData, map[string]any{"x": math.NaN()}, "data.x: NaN is not a finite number"},
		{HandlerMetaData, map[string]any{"x": math.Inf(1)}, "data.x: +Inf is not a finite number"},
		{HandlerTextData, map[string]any{"text": "\xc3\x28"}, "data.text: string is not valid UTF-8"},
	} {
		_, err := r.SendData(tc.handler, tc.data)
		if !errors.Is(err, ErrInvalidMetadata) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SendData(%s) = %v, want ErrInvalidMetadata containing %q", tc.handler, err, tc.want)
		}
	}
	// Merged metadata counts against the limit too.
	if _, err := r.SendData(HandlerMetaData, map[string]any{"a": strings.Repeat("x", 600)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SendData(HandlerMetaData, map[string]any{"b": strings.Repeat("y", 600)}); !errors.Is(err, ErrInvalidMetadata) || !strings.Contains(err.Error(), "merged metadata") {
		t.Errorf("growing the merged metadata past the limit: %v", err)
	}
	if _, err := r.SendData(HandlerCuePoint, map[string]any{"name": "ok"}); err != nil {
		t.Fatal(err)
	}
	snap, err := sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
		v := sn.Video()
		return len(sn.DataNamed(HandlerCuePoint)) == 1 && len(v) > 0 && v[len(v)-1].Timestamp >= 1500
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.DataNamed(HandlerTextData)); n != 0 {
		t.Errorf("%d rejected text messages reached the wire", n)
	}
	if n := len(snap.DataNamed(HandlerMetaData)); n != 2 {
		t.Errorf("%d onMetaData, want the first and one accepted update", n)
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run = %v after rejected data, want nil", err)
	}
}
