package rtmptest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// client is an external RTMP client run for the length of a test.
type client struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

// startPublisher runs argv until it exits or ctx ends. Call wait before the
// test returns.
func startPublisher(t *testing.T, ctx context.Context, argv ...string) *client {
	t.Helper()
	p := &client{cmd: exec.CommandContext(ctx, argv[0], argv[1:]...), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", argv[0], err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p
}

// wait returns the combined output and the exit error.
func (p *client) wait() (string, error) {
	err := <-p.done
	return p.out.String(), err
}

func ffmpegArgs(url string, seconds string) []string {
	return []string{"ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine",
		"-t", seconds, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30",
		"-c:a", "aac", "-f", "flv", url}
}

func gstArgs(url string) []string {
	pipeline := "videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1,format=I420 " +
		"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h264parse " +
		"! flvmux name=m streamable=true ! rtmp2sink location=" + url + " " +
		"audiotestsrc num-buffers=130 ! audioconvert ! avenc_aac ! aacparse ! m."
	return append([]string{"gst-launch-1.0", "-q"}, strings.Fields(pipeline)...)
}

func TestReceiverRecordsPublisher(t *testing.T) {
	tests := []struct {
		name         string
		argv         func(url string) []string
		wantCommands []string // in this order, others may come between
		wantFrames   int      // coded video frames (AVC NALU messages)
	}{
		{
			name:         "ffmpeg",
			argv:         func(url string) []string { return ffmpegArgs(url, "3") },
			wantCommands: []string{"connect", "releaseStream", "FCPublish", "createStream", "publish", "FCUnpublish", "deleteStream"},
			wantFrames:   90,
		},
		{
			name:         "rtmp2sink",
			argv:         gstArgs,
			wantCommands: []string{"connect", "releaseStream", "FCPublish", "createStream", "publish", "FCUnpublish", "deleteStream"},
			wantFrames:   90,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()

			r, err := NewReceiver()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			const key = "secret-key_1"
			pub := startPublisher(t, ctx, tt.argv(r.URL("live", key))...)

			s, err := r.WaitSession(ctx)
			if err != nil {
				out, perr := pub.wait()
				t.Fatalf("WaitSession: %v (publisher: %v\n%s)", err, perr, out)
			}
			snap, err := s.WaitEnd(ctx)
			if out, perr := pub.wait(); perr != nil {
				t.Fatalf("publisher: %v\n%s", perr, out)
			}
			if err != nil {
				t.Fatalf("WaitEnd: %v", err)
			}

			if snap.End != Clean {
				t.Errorf("End = %v (err %v), want clean", snap.End, snap.Err)
			}
			if snap.App != "live" || snap.StreamName != key {
				t.Errorf("app %q stream %q, want live %q", snap.App, snap.StreamName, key)
			}
			if tc, _ := snap.Connect["tcUrl"].(string); tc != "rtmp://"+r.Addr()+"/live" {
				t.Errorf("connect tcUrl = %q, want rtmp://%s/live", tc, r.Addr())
			}
			checkCommandOrder(t, snap, tt.wantCommands)
			checkMetadata(t, snap)
			checkMedia(t, snap, tt.wantFrames)
		})
	}
}

func checkCommandOrder(t *testing.T, snap *Snapshot, want []string) {
	t.Helper()
	var got []string
	for _, m := range snap.Commands() {
		got = append(got, m.Name)
	}
	rest := got
	for _, name := range want {
		i := slices.Index(rest, name)
		if i < 0 {
			t.Errorf("commands %v: missing %q in order %v", got, name, want)
			return
		}
		rest = rest[i+1:]
	}
	connect, _ := snap.Command("connect")
	if connect.TransactionID != 1 {
		t.Errorf("connect transaction id = %v, want 1", connect.TransactionID)
	}
}

func checkMetadata(t *testing.T, snap *Snapshot) {
	t.Helper()
	meta := snap.DataNamed("onMetaData")
	if len(meta) == 0 {
		t.Fatalf("no onMetaData among %d data messages", len(snap.Data()))
	}
	m := meta[0]
	if len(m.Values) != 3 || m.Values[0] != "@setDataFrame" {
		t.Fatalf("onMetaData values = %#v, want [@setDataFrame onMetaData {...}]", m.Values)
	}
	fields, ok := m.Values[2].(map[string]any)
	if !ok {
		t.Fatalf("onMetaData body is %T, want map[string]any", m.Values[2])
	}
	if fields["width"] != 320.0 || fields["height"] != 240.0 {
		t.Errorf("onMetaData width×height = %v×%v, want 320×240", fields["width"], fields["height"])
	}
	if m.StreamID != 1 {
		t.Errorf("onMetaData on message stream %d, want 1 (the created stream)", m.StreamID)
	}
}

func checkMedia(t *testing.T, snap *Snapshot, wantFrames int) {
	t.Helper()
	video, audio := snap.Video(), snap.Audio()
	if len(video) == 0 || len(audio) == 0 {
		t.Fatalf("%d video and %d audio messages, want both", len(video), len(audio))
	}
	// FLV video tag body: 0x17 = keyframe + AVC, then AVCPacketType 0 =
	// sequence header. A publisher must send it first.
	if p := video[0].Payload; len(p) < 5 || p[0] != 0x17 || p[1] != 0 {
		t.Errorf("first video payload starts % x, want 17 00 (AVC sequence header)", video[0].Payload[:min(5, len(video[0].Payload))])
	}
	// 0xaf = AAC 44.1 kHz 16-bit stereo flags, then AACPacketType 0 =
	// sequence header; only the codec nibble is fixed.
	if p := audio[0].Payload; len(p) < 2 || p[0]>>4 != 10 || p[1] != 0 {
		t.Errorf("first audio payload starts % x, want AAC sequence header", audio[0].Payload[:min(2, len(audio[0].Payload))])
	}
	// Both publishers end with an AVC end-of-sequence message (17 02).
	frames := 0
	for _, m := range video {
		if len(m.Payload) > 1 && m.Payload[1] == 1 {
			frames++
		}
	}
	if frames != wantFrames {
		t.Errorf("%d coded video frames in %d video messages, want %d", frames, len(video), wantFrames)
	}
	if v, a := video[0].StreamID, audio[0].StreamID; v != 1 || a != 1 {
		t.Errorf("video on message stream %d, audio on %d, want 1", v, a)
	}
	for name, msgs := range map[string][]Message{"video": video, "audio": audio} {
		for i := 1; i < len(msgs); i++ {
			if msgs[i].Timestamp < msgs[i-1].Timestamp {
				t.Errorf("%s message %d: timestamp %d after %d", name, i, msgs[i].Timestamp, msgs[i-1].Timestamp)
				break
			}
			if msgs[i].Time.Before(msgs[i-1].Time) {
				t.Errorf("%s message %d: arrival time goes backwards", name, i)
				break
			}
		}
	}
	if last := video[len(video)-1].Timestamp; last < 2800 || last > 3300 {
		t.Errorf("last video timestamp %d ms, want about 3000", last)
	}
}

// TestReceiverDrop checks that a server-side drop is recorded and that the
// next publish is a new session, which is how an output reconnect looks.
func TestReceiverDrop(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	pub := startPublisher(t, ctx, ffmpegArgs(r.URL("live", "k"), "30")...)
	s, err := r.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Wait(ctx, func(sn *Snapshot) bool { return len(sn.Video()) >= 10 })
	if err != nil {
		t.Fatalf("waiting for video: %v", err)
	}
	s.Drop()
	snap, err := s.WaitEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.End != Dropped {
		t.Errorf("End = %v, want dropped", snap.End)
	}
	if out, perr := pub.wait(); perr == nil {
		t.Errorf("ffmpeg exited cleanly after the ingest dropped it:\n%s", out)
	}
	if _, err := s.Wait(ctx, func(sn *Snapshot) bool { return false }); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("Wait on an ended session = %v, want ErrSessionEnded", err)
	}

	pub = startPublisher(t, ctx, ffmpegArgs(r.URL("live", "k"), "0.5")...)
	s2, err := r.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap2, err := s2.WaitEnd(ctx)
	if out, perr := pub.wait(); perr != nil {
		t.Fatalf("second publisher: %v\n%s", perr, out)
	}
	if err != nil {
		t.Fatal(err)
	}
	if s2.ID != 2 || snap2.End != Clean || snap2.StreamName != "k" {
		t.Errorf("second session: id %d end %v stream %q, want 2 clean k", s2.ID, snap2.End, snap2.StreamName)
	}
	if n := len(r.Sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

// TestReceiverClose checks that Close ends a connection stuck in the
// handshake and releases waiters.
func TestReceiverClose(t *testing.T) {
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := r.WaitSession(ctx)
		errc <- err
	}()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("WaitSession after Close = %v, want ErrClosed", err)
	}
	// The handshake goroutine closed its side, so the client sees EOF.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("read after Close succeeded, want EOF")
	}
	if len(r.Sessions()) != 0 {
		t.Errorf("a connection that never shook hands became a session")
	}
}

// TestReceiverConcurrentSessions publishes two streams at once, as two
// outputs of one broadcast would.
func TestReceiverConcurrentSessions(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	keys := []string{"a", "b"}
	var pubs []*client
	for _, k := range keys {
		pubs = append(pubs, startPublisher(t, ctx, ffmpegArgs(r.URL("live", k), "1")...))
	}
	got := map[string]End{}
	for range keys {
		s, err := r.WaitSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := s.WaitEnd(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[snap.StreamName] = snap.End
	}
	for _, p := range pubs {
		if out, err := p.wait(); err != nil {
			t.Errorf("publisher: %v\n%s", err, out)
		}
	}
	if got["a"] != Clean || got["b"] != Clean {
		t.Errorf("sessions ended %v, want a and b clean", got)
	}
}
