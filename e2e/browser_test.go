package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/rtmptest"
)

// The browser path: Debian's Chromium with fake capture devices publishes
// through livekit-client, as a broadcaster's page does, instead of the Go
// SDK publishers the other tests use. Chromium's fake camera is a 1280x720
// test pattern at 20 fps here (livekit-client asks for 720p), its fake
// microphone a beep, its fake screen a 1920x1080 "monitor" with audio.

const (
	chromiumPath = "/usr/bin/chromium"
	publisherDir = "browser" // e2e/browser: publish.mjs and its pinned npm packages
)

// browserPublisher is one Chromium publishing into a room until the test
// ends.
type browserPublisher struct {
	Tracks []browserTrack // as published, capture size included

	stdin  io.WriteCloser
	lines  <-chan string // stdout after the published line; closed at exit
	stderr *syncBuffer
}

// browserTrack is a published track as livekit-client describes it.
type browserTrack struct {
	SID       string  `json:"sid"`
	Kind      string  `json:"kind"`   // "video", "audio"
	Source    string  `json:"source"` // "camera", "microphone", "screen_share", "screen_share_audio"
	Simulcast bool    `json:"simulcast"`
	Label     string  `json:"label"`
	Width     int     `json:"width"` // capture size
	Height    int     `json:"height"`
	FrameRate float64 `json:"frameRate"`
}

// browserLayer is one outbound RTP stream (a simulcast layer, or the one
// stream of a track) as Chromium's encoder reports it (getStats).
type browserLayer struct {
	Source            string  `json:"source"`
	Kind              string  `json:"kind"`
	RID               string  `json:"rid"`
	Codec             string  `json:"codec"` // "video/VP8", ...
	Encoder           string  `json:"encoder"`
	Width             int     `json:"width"`
	Height            int     `json:"height"`
	FPS               float64 `json:"fps"`
	FramesEncoded     int     `json:"framesEncoded"`
	KeyFramesEncoded  int     `json:"keyFramesEncoded"`
	QualityLimitation string  `json:"qualityLimitation"`
}

func (l browserLayer) String() string {
	if l.Kind == "audio" {
		return fmt.Sprintf("%s %s", l.Source, l.Codec)
	}
	return fmt.Sprintf("%s rid=%q %s %dx%d %.0f fps, %d frames, %d keyframes (%s, limited by %s)",
		l.Source, l.RID, l.Codec, l.Width, l.Height, l.FPS, l.FramesEncoded, l.KeyFramesEncoded, l.Encoder, l.QualityLimitation)
}

// publishBrowser starts Chromium as identity in room with publish.mjs's
// args (e.g. "--codec", "h264" or "--screen") and returns once every track
// is published. Chromium leaves the room when the test ends.
func publishBrowser(t *testing.T, lk *livekitdev.Server, room, identity string, args ...string) *browserPublisher {
	t.Helper()
	requireBrowser(t)
	token, err := lk.Token(room, identity)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", append([]string{"publish.mjs", "--chromium", chromiumPath, "--url", lk.URL(), "--token", token}, args...)...)
	cmd.Dir = publisherDir
	// Its own process group, so that Chromium's processes can be ended
	// with node if node does not end them itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &browserPublisher{stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the browser publisher: %v", err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 16)
	go func() {
		scanLines(stdout, lines)
		_ = cmd.Wait()
		close(exited)
	}()
	p.lines = lines
	t.Cleanup(func() { p.close(t, cmd, exited) })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var published struct {
		Published bool           `json:"published"`
		Tracks    []browserTrack `json:"tracks"`
	}
	if err := p.next(ctx, &published); err != nil || !published.Published {
		t.Fatalf("browser publisher did not publish: %v\n%s", err, p.stderr)
	}
	p.Tracks = published.Tracks
	t.Logf("chromium published %+v", p.Tracks)
	return p
}

// requireBrowser fails, saying what to run, when scripts/deps.sh has not
// installed Chromium, Node.js or the publisher's npm packages.
func requireBrowser(t *testing.T) {
	t.Helper()
	for _, need := range []string{chromiumPath, filepath.Join(publisherDir, "node_modules", "playwright-core", "package.json")} {
		if _, err := os.Stat(need); err != nil {
			t.Fatalf("browser tests need %s: run scripts/deps.sh (make test does): %v", need, err)
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("browser tests need Node.js: run scripts/deps.sh: %v", err)
	}
}

func scanLines(r io.Reader, lines chan<- string) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		lines <- sc.Text()
	}
}

// next decodes the publisher's next stdout line into v.
func (p *browserPublisher) next(ctx context.Context, v any) error {
	select {
	case line, ok := <-p.lines:
		if !ok {
			return errors.New("the publisher exited")
		}
		if err := json.Unmarshal([]byte(line), v); err != nil {
			return fmt.Errorf("publisher line %q: %w", line, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Layers asks Chromium for its encoders' view of every stream it sends.
func (p *browserPublisher) Layers(ctx context.Context) ([]browserLayer, error) {
	if _, err := io.WriteString(p.stdin, "stats\n"); err != nil {
		return nil, fmt.Errorf("asking the publisher for stats: %w", err)
	}
	var answer struct {
		Stats []browserLayer `json:"stats"`
	}
	if err := p.next(ctx, &answer); err != nil {
		return nil, fmt.Errorf("publisher stats: %w", err)
	}
	return answer.Stats, nil
}

// waitEncoding polls Chromium's encoder until it sends frames of source
// at size ("WxH").
func (p *browserPublisher) waitEncoding(ctx context.Context, source, size string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		layers, err := p.Layers(ctx)
		if err != nil {
			return err
		}
		for _, l := range layers {
			if l.Source == source && fmt.Sprintf("%dx%d", l.Width, l.Height) == size && l.FramesEncoded > 0 {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("chromium never encoded %s at %s: %v (%w)", source, size, layers, ctx.Err())
		}
	}
}

// close asks the publisher to leave (stdin closed) and, if it has not
// exited within 15 s, kills its process group.
func (p *browserPublisher) close(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}) {
	_ = p.stdin.Close()
	go func() {
		for range p.lines { // unread lines must not block its exit
		}
	}()
	select {
	case <-exited:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("browser publisher exited %d:\n%s", code, p.stderr)
		}
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		t.Errorf("browser publisher did not exit within 15 s of stdin closing:\n%s", p.stderr)
	}
}

// videoTrack is the publisher's video track of source.
func (p *browserPublisher) videoTrack(t *testing.T, source string) browserTrack {
	t.Helper()
	for _, tr := range p.Tracks {
		if tr.Kind == "video" && tr.Source == source {
			return tr
		}
	}
	t.Fatalf("chromium published no %s video: %+v", source, p.Tracks)
	return browserTrack{}
}

// TestBrowserPublisher: what a broadcaster's Chromium publishes with
// livekit-client reaches the destination as H.264 + AAC that YouTube and
// Twitch accept. Chrome's default, VP8 in three simulcast layers, is
// transcoded from the highest layer, or from the one that fits a smaller
// target; so is VP9; H.264 (OpenH264) passes through untouched; a screen
// share goes out when asked for source "screen".
//
// Chromium enables its upper layers as its bandwidth estimate grows (VP8's
// top layer 5 s after publishing, H.264's at once), so each case first
// waits until it encodes the layer the broadcast will take, as for a
// broadcaster who was in the room before going live. LiveKit then still
// starts roomcast's new subscription on a lower layer and steps it up
// (seen: 320x180 or 640x360 at once, the chosen layer 1.1–2.2 s later);
// each case waits for the chosen layer to arrive, then records 4 s more.
// In passthrough the destination sees those sizes go by.
func TestBrowserPublisher(t *testing.T) {
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, nil)
	for _, tc := range []struct {
		name    string
		args    []string // publish.mjs options
		screen  bool     // source "screen"
		video   *bridge.VideoRequest
		codecIn string // status videoCodecIn
		streams int    // streams Chromium sends for the video track
		layer   string // status simulcastLayer: LiveKit's name, capture size scaled
		pass    bool   // passthrough, else transcode
		profile string // ffprobe's H.264 profile at the destination
		out     string // transcoded size
	}{
		// x264 makes Main profile.
		{name: "chrome defaults VP8 simulcast", codecIn: "vp8", streams: 3, layer: "high 1280x720", profile: "Main", out: "1280x720"},
		{name: "VP8 layer that fits 640x360", video: &bridge.VideoRequest{Width: 640, Height: 360},
			codecIn: "vp8", streams: 3, layer: "medium 640x360", profile: "Main", out: "640x360"},
		// OpenH264's Constrained Baseline at the destination means
		// Chrome's own access units went through, not a re-encode.
		{name: "chrome H.264 simulcast passes through", args: []string{"--codec", "h264"},
			codecIn: "h264", streams: 3, layer: "high 1280x720", pass: true, profile: "Constrained Baseline"},
		// VP9 is one stream with spatial layers (SVC), not simulcast.
		{name: "chrome VP9 SVC", args: []string{"--codec", "vp9"},
			codecIn: "vp9", streams: 1, layer: "high 1280x720", profile: "Main", out: "1280x720"},
		// A screen share has two layers, named low and medium.
		{name: "screen share", args: []string{"--screen"}, screen: true,
			codecIn: "vp8", streams: 2, layer: "medium 1920x1080", profile: "Main", out: "1280x720"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			identity := strings.ReplaceAll(tc.name, " ", "-")
			pub := publishBrowser(t, lk, "studio", identity, tc.args...)
			req := bridge.StartRequest{Room: "studio", Identity: identity, Video: tc.video}
			source := "camera"
			if tc.screen {
				req.Source, source = "screen", "screen_share"
			}
			track := pub.videoTrack(t, source)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, size, _ := strings.Cut(tc.layer, " ")
			if err := pub.waitEncoding(ctx, source, size); err != nil {
				t.Fatal(err)
			}
			in, sess := live(t, ctx, rc, req)
			running, arrived := waitArriving(t, ctx, rc, in.ID, sess, size)
			if _, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return lastFrameTS(s.Video()) >= arrived+4000 }); err != nil {
				t.Fatal(err)
			}
			layers, err := pub.Layers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			final, snap := stop(t, ctx, rc, in.ID, sess)
			for _, l := range layers {
				t.Logf("chromium sends %v", l)
			}

			checkChromeLayers(t, layers, source, "video/"+strings.ToUpper(tc.codecIn), tc.streams)
			st := running.Stats
			if st.VideoCodecIn != tc.codecIn || st.VideoCodec != "h264" || st.AudioCodec != "aac" ||
				st.Passthrough != tc.pass || st.Transcoding == tc.pass || st.SimulcastLayer != tc.layer {
				t.Errorf("status = %+v, want %s in from layer %q, h264 + aac out, passthrough %v", st, tc.codecIn, tc.layer, tc.pass)
			}
			if final.State != bridge.StateStopped {
				t.Errorf("broadcast ended %s: %+v", final.State, final.Error)
			}
			rec := probeBrowserRecording(t, ctx, snap)
			checkBrowserRecording(t, rec, tc.profile)
			if tc.pass {
				checkPassthroughSizes(t, rec, track)
			} else {
				checkTranscode(t, rec, tc.out)
			}
		})
	}
}

// waitArriving waits until the broadcast's input arrives at size ("WxH")
// and returns the status then and the stream time (ms) the destination
// had reached.
func waitArriving(t *testing.T, ctx context.Context, rc *roomcast, id string, sess *rtmptest.Session, size string) (bridge.Info, uint32) {
	t.Helper()
	start := time.Now()
	var seen []string
	in, err := pollStatus(ctx, rc, id, func(i bridge.Info) bool {
		if i.Stats == nil || i.Stats.WidthIn == 0 {
			return false
		}
		now := fmt.Sprintf("%dx%d", i.Stats.WidthIn, i.Stats.HeightIn)
		if len(seen) == 0 || !strings.HasPrefix(seen[len(seen)-1], now+" ") {
			seen = append(seen, fmt.Sprintf("%s at %.1f s", now, time.Since(start).Seconds()))
		}
		return now == size
	})
	if err != nil {
		t.Fatalf("%s never arrived (seen %v): %v", size, seen, err)
	}
	st := in.Stats
	t.Logf("arriving %s after the broadcast started; status: %s in (layer %q), %s out, passthrough %v, transcoding %v: %s",
		strings.Join(seen, ", "), st.VideoCodecIn, st.SimulcastLayer, st.VideoCodec, st.Passthrough, st.Transcoding, st.VideoReason)
	return in, lastFrameTS(sess.Snapshot().Video())
}

// checkChromeLayers: Chromium sends n streams of the track in codec, each
// encoding frames.
func checkChromeLayers(t *testing.T, layers []browserLayer, source, codec string, n int) {
	t.Helper()
	var video []browserLayer
	for _, l := range layers {
		if l.Kind == "video" && l.Source == source {
			video = append(video, l)
		}
	}
	if len(video) != n {
		t.Errorf("chromium sends %d %s streams, want %d", len(video), source, n)
	}
	for _, l := range video {
		if l.Codec != codec || l.FramesEncoded == 0 {
			t.Errorf("chromium stream %v: %d frames encoded, want %s frames", l, l.FramesEncoded, codec)
		}
	}
}

// browserRecording is what the destination received, as ffprobe reads it.
type browserRecording struct {
	path   string // the FLV file
	snap   *rtmptest.Snapshot
	probe  *rtmptest.ProbeResult
	sizes  []string // each decoded video frame's size, in order
	errors string   // what the decoders complained about
}

// probeBrowserRecording writes the session to FLV and has ffprobe read the
// streams and decode every video frame.
func probeBrowserRecording(t *testing.T, ctx context.Context, snap *rtmptest.Snapshot) browserRecording {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec.flv")
	if err := rtmptest.WriteFLV(path, snap); err != nil {
		t.Fatal(err)
	}
	probe, err := rtmptest.Probe(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v",
		"-show_entries", "frame=width,height", "-of", "csv=p=0", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("decoding the recording: %v\n%s", err, stderr.String())
	}
	// Lines are "width,height", with a trailing field for frames that
	// carry side data.
	var sizes []string
	for _, line := range strings.Fields(string(out)) {
		if f := strings.Split(line, ","); len(f) >= 2 {
			sizes = append(sizes, f[0]+"x"+f[1])
		}
	}
	return browserRecording{path: path, snap: snap, probe: probe, sizes: sizes, errors: stderr.String()}
}

// checkBrowserRecording: H.264 of profile, decoding without an error, a
// keyframe at least every 2.2 s, and AAC 48 kHz with no gap over 100 ms
// (Chrome's microphone uses Opus DTX) alongside all of the video.
func checkBrowserRecording(t *testing.T, rec browserRecording, profile string) {
	t.Helper()
	v, _ := rec.probe.Stream("video")
	a, _ := rec.probe.Stream("audio")
	gap, gapErr := rec.probe.MaxKeyframeGap()
	t.Logf("recording: %s %s %s, %d keyframes, largest gap %v; %s %d Hz",
		v.CodecName, v.Profile, v.PixFmt, rec.probe.Keyframes(), gap, a.CodecName, a.SampleRate)
	if v.CodecName != "h264" || v.Profile != profile || v.PixFmt != "yuv420p" {
		t.Errorf("video stream = %+v, want h264 %s yuv420p", v, profile)
	}
	if rec.errors != "" {
		t.Errorf("the decoder complained:\n%s", rec.errors)
	}
	if gapErr != nil || gap > 2200*time.Millisecond {
		t.Errorf("largest keyframe gap %v (%v), want ≤ 2.2 s", gap, gapErr)
	}
	if a.CodecName != "aac" || a.SampleRate != 48000 {
		t.Errorf("audio stream = %+v, want AAC 48 kHz", a)
	}
	if gap, at := maxFrameGap(rec.snap.Audio()); gap > 100*time.Millisecond {
		t.Errorf("audio gap %v at %d ms", gap, at)
	}
	if as, vs := mediaSpan(rec.snap.Audio()), mediaSpan(rec.snap.Video()); math.Abs((as - vs).Seconds()) > 0.5 {
		t.Errorf("%v of audio for %v of video", as, vs)
	}
	// Chromium's fake audio beeps; roomcast's filler for a missing or
	// quiet track is silence.
	if peak, err := peakVolume(t.Context(), rec.path); err != nil || peak < -30 {
		t.Errorf("audio peaks at %.1f dBFS (%v), want Chromium's beep (> -30)", peak, err)
	}
}

// peakVolume decodes the audio of path and returns its peak in dBFS.
func peakVolume(ctx context.Context, path string) (float64, error) {
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostats", "-i", path,
		"-map", "0:a", "-af", "volumedetect", "-f", "null", "-").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ffmpeg volumedetect: %w\n%s", err, out)
	}
	_, after, ok := strings.Cut(string(out), "max_volume: ")
	var peak float64
	if _, err := fmt.Sscanf(after, "%f dB", &peak); !ok || err != nil {
		return 0, fmt.Errorf("no max_volume in ffmpeg's output:\n%s", out)
	}
	return peak, nil
}

// checkTranscode: whatever layer arrived, the destination gets size at a
// constant 30 fps.
func checkTranscode(t *testing.T, rec browserRecording, size string) {
	t.Helper()
	if sizes := distinct(rec.sizes); len(sizes) != 1 || sizes[0] != size {
		t.Errorf("decoded frame sizes %v, want %s throughout", sizes, size)
	}
	if fps, err := rec.probe.MeasuredFrameRate(); err != nil || math.Abs(fps-30) > 1 {
		t.Errorf("measured %.1f fps (%v), want 30", fps, err)
	}
}

// checkPassthroughSizes: the destination gets Chromium's own frames, at
// the capture's rate, ending at the capture size. What comes before
// depends on how far the publisher's and the SFU's bandwidth estimates
// have ramped up: lower layers, or the top layer scaled down; every size
// is the capture scaled, and each one has its own sequence header.
func checkPassthroughSizes(t *testing.T, rec browserRecording, track browserTrack) {
	t.Helper()
	sizes := distinct(rec.sizes)
	t.Logf("decoded frame sizes in order: %v (%d frames)", sizes, len(rec.sizes))
	for _, s := range sizes {
		var w, h int
		if _, err := fmt.Sscanf(s, "%dx%d", &w, &h); err != nil || w*track.Height != h*track.Width {
			t.Errorf("frames of %s, not the %dx%d capture scaled", s, track.Width, track.Height)
		}
	}
	if full := fmt.Sprintf("%dx%d", track.Width, track.Height); len(sizes) == 0 || sizes[len(sizes)-1] != full {
		t.Errorf("decoded frame sizes %v, want %s at the end", sizes, full)
	}
	if n := avcHeaders(rec.snap); n != len(sizes) {
		t.Errorf("%d AVC sequence headers for %d sizes", n, len(sizes))
	}
	// Frames may be lost to the shared CPU, never added.
	if fps, err := rec.probe.MeasuredFrameRate(); err != nil || fps < 0.75*track.FrameRate || fps > 1.05*track.FrameRate {
		t.Errorf("measured %.1f fps (%v), want Chromium's %.0f", fps, err, track.FrameRate)
	}
}

// distinct drops consecutive repeats: the sizes a stream went through.
func distinct(sizes []string) []string {
	var out []string
	for _, s := range sizes {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}
