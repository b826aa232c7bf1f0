package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// roomSetup is a room with roomcast auto-joined through LiveKit's webhook,
// an RTMP receiver as the operator's destination "rec", and the
// participant alice publishing camera and microphone.
type roomSetup struct {
	lk    *livekitdev.Server
	rc    *roomcast
	recv  *rtmptest.Receiver
	alice *testpattern.Member
}

const recKey = "reckey-secret-0001"

func startRoomSetup(t *testing.T, adjust func(*config.Config)) *roomSetup {
	t.Helper()
	ln := listen(t)
	lk := startLiveKitWith(t, livekitdev.Options{WebhookURLs: []string{"http://" + ln.Addr().String() + "/v1/webhooks/livekit"}})
	recv := newReceiver(t)
	rc := startRoomcastOn(t, ln, lk, func(c *config.Config) {
		c.Room.AutoJoin = "studio*"
		c.Destinations = map[string]config.Destination{"rec": {URL: recv.URL("live", recKey)}}
		if adjust != nil {
			adjust(c)
		}
	}, testLog())
	pub := publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 640, Height: 360, BitrateKbps: 800})
	alice := pub.pub.Member()
	waitPresent(t, alice, "roomcast")
	return &roomSetup{lk: lk, rc: rc, recv: recv, alice: alice}
}

// member joins the studio as a participant that only exchanges data.
func (s *roomSetup) member(t *testing.T, identity string, attrs map[string]string) *testpattern.Member {
	t.Helper()
	return joinMember(t, s.lk, "studio", identity, attrs)
}

func waitPresent(t *testing.T, m *testpattern.Member, identity string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Inbox().WaitFor(ctx, func() bool { return m.Present(identity) }); err != nil {
		t.Fatalf("%s never appeared in the room: %v", identity, err)
	}
}

// send puts a control message on the data channel.
func send(t *testing.T, m *testpattern.Member, msg string) {
	t.Helper()
	if err := m.SendData(bridge.TopicControl, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// answer waits for the ack or error that answers requestID.
func answer(t *testing.T, m *testpattern.Member, requestID string) bridge.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var st bridge.Status
	_, _, err := m.Inbox().Wait(ctx, 0, func(d testpattern.DataMessage) bool {
		st = bridge.Status{}
		return d.Topic == bridge.TopicStatus && json.Unmarshal(d.Payload, &st) == nil &&
			st.Type != bridge.TypeStatus && st.RequestID == requestID
	})
	if err != nil {
		t.Fatalf("no answer to request %q: %v", requestID, err)
	}
	return st
}

// statuses decodes every status message about broadcast id received so far.
func statuses(m *testpattern.Member, id string) []bridge.Status {
	var list []bridge.Status
	for _, d := range m.Inbox().Messages() {
		var st bridge.Status
		if d.Topic == bridge.TopicStatus && json.Unmarshal(d.Payload, &st) == nil && st.Type == bridge.TypeStatus && st.BroadcastID == id {
			list = append(list, st)
		}
	}
	return list
}

// waitStatus waits for a status of broadcast id that satisfies cond.
func waitStatus(t *testing.T, m *testpattern.Member, id string, what string, cond func(bridge.Status) bool) bridge.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var found bridge.Status
	err := m.Inbox().WaitFor(ctx, func() bool {
		for _, st := range statuses(m, id) {
			if cond(st) {
				found = st
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no status %s for %s: %v", what, id, err)
	}
	return found
}

// TestRoomProtocol is the broadcaster's page story: alice starts her
// broadcast from the room, sees it go live with statistics, a late joiner
// sees its state, and a producer stops it.
func TestRoomProtocol(t *testing.T) {
	s := startRoomSetup(t, func(c *config.Config) {
		c.Room.AuthorizedAttribute = "role=producer"
	})
	send(t, s.alice, `{"v":1,"type":"start","requestId":"go-1","outputs":[{"destination":"rec"}]}`)
	ack := answer(t, s.alice, "go-1")
	if ack.Type != bridge.TypeAck || ack.BroadcastID == "" || ack.Error != nil {
		t.Fatalf("start answered %+v, want an ack with a broadcast id", ack)
	}
	id := ack.BroadcastID

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := s.recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return s.StreamName != "" })
	if err != nil || snap.StreamName != recKey {
		t.Errorf("receiver got stream %q (%v), want the destination's key", snap.StreamName, err)
	}

	// Three statistics messages while live, then compare with what the
	// receiver measured over the same time.
	live := waitStatus(t, s.alice, id, "broadcasting", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateBroadcasting })
	firstLive := live.Broadcast.Stats.VideoFrames
	var last bridge.Status
	if err := s.alice.Inbox().WaitFor(ctx, func() bool {
		n := 0
		for _, st := range statuses(s.alice, id) {
			if st.Broadcast.State == bridge.StateBroadcasting && st.Broadcast.Stats.VideoFrames > firstLive {
				n++
				last = st
			}
		}
		return n >= 3
	}); err != nil {
		t.Fatalf("no 3 statistics messages while live: %v", err)
	}
	checkStats(t, last.Broadcast, sess.Snapshot())

	// A participant who joins now reads the state from roomcast's
	// attributes without waiting for the next status.
	late := s.member(t, "dave", nil)
	waitPresent(t, late, "roomcast")
	attr := late.Attributes("roomcast")[bridge.AttributePrefix+"alice"]
	var badge struct {
		BroadcastID string       `json:"broadcastId"`
		State       bridge.State `json:"state"`
		Outputs     []struct{ ID, URL, State string }
	}
	if err := json.Unmarshal([]byte(attr), &badge); err != nil || badge.BroadcastID != id || badge.State != bridge.StateBroadcasting {
		t.Errorf("late joiner reads attribute %q (%v), want %s broadcasting", attr, err, id)
	}
	if len(badge.Outputs) != 1 || badge.Outputs[0].State != "live" || strings.Contains(attr, recKey) {
		t.Errorf("attribute outputs %+v: want one live output with the key redacted", badge.Outputs)
	}

	// The producer, authorized by attribute, stops it.
	producer := s.member(t, "pat", map[string]string{"role": "producer"})
	waitPresent(t, producer, "roomcast")
	send(t, producer, fmt.Sprintf(`{"type":"stop","requestId":"halt","broadcastId":%q}`, id))
	if st := answer(t, producer, "halt"); st.Type != bridge.TypeAck {
		t.Fatalf("producer's stop answered %+v", st)
	}
	waitStatus(t, s.alice, id, "stopped", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateStopped })
	if snap, err := sess.WaitEnd(ctx); err != nil || snap.End != rtmptest.Clean {
		t.Errorf("RTMP session ended %v (%v), want clean", snap.End, err)
	}

	// Every state, once and in order, as alice saw them.
	var seen []bridge.State
	for _, st := range statuses(s.alice, id) {
		if len(seen) == 0 || seen[len(seen)-1] != st.Broadcast.State {
			seen = append(seen, st.Broadcast.State)
		}
	}
	want := []bridge.State{bridge.StateSignalling, bridge.StateConnected, bridge.StateBroadcasting, bridge.StateStopping, bridge.StateStopped}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("alice saw states %v, want %v", seen, want)
	}
}

// checkStats holds the status statistics against what the receiver got.
func checkStats(t *testing.T, in *bridge.Info, snap *rtmptest.Snapshot) {
	t.Helper()
	st := in.Stats
	if st == nil {
		t.Fatal("status without stats")
	}
	if st.VideoCodec != "h264" || st.AudioCodec != "aac" || !st.Passthrough {
		t.Errorf("codecs %q/%q passthrough=%v, want h264/aac passthrough", st.VideoCodec, st.AudioCodec, st.Passthrough)
	}
	if st.Keyframes == 0 || st.VideoFrames == 0 || st.AudioFrames == 0 || st.Bytes == 0 {
		t.Errorf("counters %+v, want frames, keyframes and bytes", st)
	}
	if len(in.Outputs) != 1 || in.Outputs[0].State != "live" || in.Outputs[0].Bytes == 0 {
		t.Errorf("outputs %+v, want one live output that sent bytes", in.Outputs)
	}
	if in.Stats.UptimeSeconds <= 0 {
		t.Errorf("uptime %v, want > 0", in.Stats.UptimeSeconds)
	}
	rate, fps := receivedRates(snap, 2*time.Second)
	t.Logf("status: %.1f fps, %d b/s video; receiver measured %.1f fps, %.0f b/s", st.FrameRate, st.VideoBitrate, fps, rate)
	if st.FrameRate < fps*0.9 || st.FrameRate > fps*1.1 {
		t.Errorf("status fps %.1f, receiver measured %.1f: want within 10%%", st.FrameRate, fps)
	}
	if got := float64(st.VideoBitrate); got < rate*0.75 || got > rate*1.25 {
		t.Errorf("status video bitrate %.0f b/s, receiver measured %.0f: want within 25%%", got, rate)
	}
	if st.Width != 640 || st.Height != 360 {
		t.Errorf("status size %dx%d, want 640x360", st.Width, st.Height)
	}
}

// receivedRates measures the video bitrate (b/s) and frame rate of the
// last window of media the receiver got, by media timestamps.
func receivedRates(snap *rtmptest.Snapshot, window time.Duration) (bitrate, fps float64) {
	video := snap.Video()
	if len(video) < 2 {
		return 0, 0
	}
	end := video[len(video)-1].Timestamp
	var bytes, frames int
	first := end
	for i := len(video) - 1; i >= 0 && end-video[i].Timestamp <= uint32(window.Milliseconds()); i-- {
		bytes += len(video[i].Payload)
		frames++
		first = video[i].Timestamp
	}
	span := float64(end-first) / 1000
	if span <= 0 {
		return 0, 0
	}
	// frames-1 intervals span the window; bytes are spread over as many.
	return float64(bytes*8) * float64(frames-1) / float64(frames) / span, float64(frames-1) / span
}

// TestRoomBadInput: every bad control message is answered with an error
// that carries its code and the sender's requestId, and the broadcast that
// is running meanwhile does not notice.
func TestRoomBadInput(t *testing.T) {
	s := startRoomSetup(t, func(c *config.Config) {
		c.Room.MaxMessageBytes = 4096
		c.Room.AllowedURLs = []string{"rtmp://127.0.0.1:*/allowed"}
		c.Room.MessageRate, c.Room.MessageBurst = 5, 10
	})
	send(t, s.alice, `{"type":"start","requestId":"go","outputs":[{"destination":"rec"}]}`)
	id := answer(t, s.alice, "go").BroadcastID
	waitStatus(t, s.alice, id, "broadcasting", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateBroadcasting })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := s.recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	framesBefore := len(sess.Snapshot().Video())

	// A second broadcast in the same room, from its own participant.
	bob := publish(t, s.lk, "studio", "bob", testpattern.SourceOptions{Width: 320, Height: 240, BitrateKbps: 300}).pub.Member()
	waitPresent(t, bob, "roomcast")
	send(t, bob, `{"type":"start","requestId":"bob-go","outputs":[{"destination":"rec"}]}`)
	bobID := answer(t, bob, "bob-go").BroadcastID
	waitStatus(t, bob, bobID, "broadcasting", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateBroadcasting })

	carol := s.member(t, "carol", nil)
	waitPresent(t, carol, "roomcast")
	for _, tc := range []struct {
		name     string
		from     *testpattern.Member
		msg      string
		reqID    string
		wantCode int
	}{
		{"malformed JSON", s.alice, `{"type":"stop","requestId":"bad-json",`, "bad-json", bridge.CodeInvalidRequest},
		{"unknown type", s.alice, `{"type":"explode","requestId":"bad-type"}`, "bad-type", bridge.CodeUnknownType},
		{"unknown field", s.alice, `{"type":"stop","requestId":"bad-field","now":true}`, "bad-field", bridge.CodeInvalidRequest},
		{"missing field", s.alice, `{"type":"metadata","requestId":"no-handler","data":{}}`, "no-handler", bridge.CodeInvalidRequest},
		{"oversize", s.alice, `{"requestId":"too-big","type":"metadata","handler":"onTextData","data":{"text":"` + strings.Repeat("x", 5000) + `"}}`, "too-big", bridge.CodeMessageTooLarge},
		{"not allowed to stop", carol, fmt.Sprintf(`{"type":"stop","requestId":"not-yours","broadcastId":%q}`, id), "not-yours", bridge.CodeForbidden},
		{"not allowed to start", carol, `{"type":"start","requestId":"not-you","identity":"alice","outputs":[{"destination":"rec"}]}`, "not-you", bridge.CodeForbidden},
		{"disallowed URL", carol, `{"type":"start","requestId":"raw-url","outputs":[{"url":"` + s.recv.URL("live", "carolkey") + `"}]}`, "raw-url", bridge.CodeURLNotAllowed},
		{"unknown destination", carol, `{"type":"start","requestId":"no-dest","outputs":[{"destination":"nosuch"}]}`, "no-dest", bridge.CodeUnknownDest},
		{"stop of no broadcast", s.alice, `{"type":"stop","requestId":"ghost","broadcastId":"bc_nosuch"}`, "ghost", bridge.CodeBroadcastNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send(t, tc.from, tc.msg)
			st := answer(t, tc.from, tc.reqID)
			if st.Type != bridge.TypeError || st.Error == nil || st.Error.Code != tc.wantCode || st.Error.Message == "" {
				t.Fatalf("answer %+v, want error %d", st, tc.wantCode)
			}
			if strings.Contains(st.Error.Message, "carolkey") || strings.Contains(st.Error.Message, recKey) {
				t.Errorf("error shows a stream key: %s", st.Error.Message)
			}
		})
	}

	// A burst over the rate limit: every message is answered, the excess
	// with rate_limited.
	const burst = 20
	for i := range burst {
		send(t, carol, fmt.Sprintf(`{"type":"stop","requestId":"burst-%d"}`, i))
	}
	limited := 0
	for i := range burst {
		st := answer(t, carol, fmt.Sprintf("burst-%d", i))
		switch {
		case st.Error != nil && st.Error.Code == bridge.CodeRateLimited:
			limited++
		case st.Error == nil || st.Error.Code != bridge.CodeBroadcastNotFound:
			t.Errorf("burst answer %+v, want rate_limited or broadcast_not_found", st)
		}
	}
	if limited < burst-10 {
		t.Errorf("%d of %d burst messages rate-limited, want at least %d", limited, burst, burst-10)
	}

	// The broadcasts went on through all of it.
	for _, id := range []string{id, bobID} {
		in, err := s.rc.Get(ctx, id)
		if err != nil || in.State != bridge.StateBroadcasting {
			t.Fatalf("broadcast after bad input: %+v (%v)", in, err)
		}
	}
	if _, err := sess.Wait(ctx, func(snap *rtmptest.Snapshot) bool { return len(snap.Video()) > framesBefore+30 }); err != nil {
		t.Errorf("media stopped after bad input: %v", err)
	}
}

// syncBuffer collects roomcast's logs from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStreamKeysNowhere captures everything roomcast says (debug logs,
// room status and attributes, API answers and errors, metrics) through
// broadcasts to a named destination, a raw URL and a refused destination,
// and searches it for the stream keys.
func TestStreamKeysNowhere(t *testing.T) {
	keys := []string{"key-destination-1234", "key-rawurl-5678", "key-refused-9012"}
	var logs syncBuffer
	ln := listen(t)
	lk := startLiveKitWith(t, livekitdev.Options{WebhookURLs: []string{"http://" + ln.Addr().String() + "/v1/webhooks/livekit"}})
	recv := newReceiver(t)
	refused := listen(t) // a port where nothing answers RTMP
	refusedURL := "rtmp://" + refused.Addr().String() + "/live/" + keys[2]
	refused.Close()
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rc := startRoomcastOn(t, ln, lk, func(c *config.Config) {
		c.Room.AutoJoin = "*"
		c.Room.AllowedURLs = []string{"rtmp://127.0.0.1:*/live"}
		c.Destinations = map[string]config.Destination{"rec": {URL: recv.URL("live", keys[0])}}
	}, log)
	pub := publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 320, Height: 240, BitrateKbps: 300})
	alice := pub.pub.Member()
	waitPresent(t, alice, "roomcast")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var said []string // everything roomcast answered
	note := func(v any) {
		b, _ := json.Marshal(v)
		said = append(said, string(b))
	}
	send(t, alice, `{"type":"start","requestId":"k1","outputs":[{"destination":"rec"},{"url":"`+recv.URL("live", keys[1])+`"}]}`)
	id := answer(t, alice, "k1").BroadcastID
	waitStatus(t, alice, id, "broadcasting", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateBroadcasting })
	in, err := rc.Get(ctx, id)
	note(in)
	note(err)
	if _, err := rc.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, alice, id, "stopped", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateStopped })
	_, err = rc.Start(ctx, bridge.StartRequest{Room: "studio", Identity: "alice", Outputs: []bridge.OutputRequest{{URL: refusedURL}}}, true)
	note(err)
	note(rc.svc.Manager.List())
	res, err := http.Get(rc.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()

	for _, d := range alice.Inbox().Messages() {
		said = append(said, string(d.Payload))
	}
	said = append(said, fmt.Sprint(alice.Attributes("roomcast")), string(metrics))
	everything := logs.String() + strings.Join(said, "\n")
	if !strings.Contains(everything, "/live/****") || !strings.Contains(everything, "destination_failed") {
		t.Fatalf("the capture lacks redacted URLs or the refused destination's error; it proves nothing:\n%s", everything)
	}
	for _, key := range keys {
		if i := strings.Index(everything, key); i >= 0 {
			t.Errorf("stream key %q appears: ...%s...", key, everything[max(0, i-200):min(len(everything), i+50)])
		}
	}
}
