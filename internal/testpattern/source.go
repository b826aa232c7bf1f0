// Package testpattern publishes a live test pattern into a LiveKit room as
// a real participant would: camera video (H.264 from x264enc, VP8 from
// vp8enc or AV1 from av1enc, optionally as three simulcast layers) and Opus
// microphone audio,
// written through server-sdk-go; either track can be left out, muted and
// unmuted. One Source (the encoder) can feed many Publishers (room
// connections), so a benchmark can load N rooms for the price of one
// encoder.
//
// Like a WebRTC encoder, the Source sends a keyframe only for the first frame
// and when asked (a PLI or FIR from any room, or a new Publisher), never on a
// timer, so tests see exactly what a browser publisher would give the bridge.
package testpattern

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/roomcast/roomcast/internal/avc"
	"github.com/roomcast/roomcast/internal/forcekey"
)

// SourceOptions configure the encoder. Zero fields take the defaults.
type SourceOptions struct {
	Width, Height int // default 1280x720
	FPS           int // default 30
	BitrateKbps   int // video bitrate, default 2500
	// Codec is "h264" (the default, constrained baseline), "vp8" or
	// "av1".
	Codec string
	// Simulcast encodes three layers (full, half and quarter size), as
	// Chrome does, published as one simulcast track.
	Simulcast bool
	// Pattern is videotestsrc's pattern: "ball" (the default, easy to
	// encode) or e.g. "snow" (noise, the encoder's worst case).
	Pattern string
	// Screen publishes the video as a screen share and the audio as
	// screen-share audio, instead of camera and microphone.
	Screen bool
	// NoVideo and NoAudio leave a track out.
	NoVideo, NoAudio bool
	// SyncMarks replaces the pattern with A/V sync marks: black video with
	// one white frame and silence with a 100 ms 1 kHz beep, both starting
	// exactly every SyncEvery of stream time.
	SyncMarks bool
	// MaxFrames bounds the frame log; past it the oldest half is dropped.
	// Default 108000 (an hour at 30 fps).
	MaxFrames int
	Logger    *slog.Logger // default slog.Default()
}

func (o SourceOptions) withDefaults() SourceOptions {
	if o.Width == 0 {
		o.Width = 1280
	}
	if o.Height == 0 {
		o.Height = 720
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.BitrateKbps == 0 {
		o.BitrateKbps = 2500
	}
	if o.MaxFrames == 0 {
		o.MaxFrames = 108000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

const (
	// keyIntMax is x264enc's GOP limit: an hour at 30 fps, so that in any
	// test the only keyframes are the first one and those asked for.
	keyIntMax = 108000
	// keyframeRetry: a keyframe request that produced no keyframe within
	// this time is sent again; repeats within it are coalesced into one.
	keyframeRetry = 500 * time.Millisecond
	// opusFrame is opusenc's default frame size.
	opusFrame = 20 * time.Millisecond
)

// SyncEvery is the period of the sync marks.
const SyncEvery = 2 * time.Second

// syncBeep is how long each sync beep lasts.
const syncBeep = 100 * time.Millisecond

// layers are the simulcast layers' sizes as fractions of the full size,
// highest first; Chrome sends full, half and quarter.
var layers = []int{1, 2, 4}

// pipelineDesc reads the way the data flows. format=I420 matters: without
// it x264enc negotiates Y444 (High 4:4:4), which browsers reject.
// scenecut=0 keeps x264 from inserting keyframes of its own accord; aud=false
// drops the access unit delimiters WebRTC has no use for. vp8enc with
// deadline=1 is realtime mode, as browsers run it; so is av1enc's
// usage-profile=realtime, with cpu-used=10 (its fastest) so that AV1 stays
// cheap on a small machine.
//
// Each layer's capsfilter "sizeN" can be changed while running
// (SetResolution); its encoder then starts a new stream at the new size,
// as a browser's does under congestion.
//
// With SyncMarks the sources are not live, so their timestamps are exact
// multiples of the frame and sample durations and the marks fall on the
// same instants, and the sinks hand each encoded frame over at its
// timestamp (sync=true). A frame is then sent when it was "captured", so
// the sender reports, which map RTP time to the time of sending, map it to
// capture time as a browser's do. Paced before the encoders instead, an
// Opus frame would leave 20 ms after its first sample and the receiver
// would place the audio 20 ms late.
func pipelineDesc(o SourceOptions) string {
	live, sync := "is-live=true", "false"
	if o.SyncMarks {
		live, sync = "is-live=false", "true"
	}
	var d []string
	if !o.NoVideo {
		pattern := "ball"
		if o.Pattern != "" {
			pattern = o.Pattern
		}
		if o.SyncMarks {
			pattern = "black"
		}
		d = append(d, fmt.Sprintf("videotestsrc %s pattern=%s ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1"+
			" ! identity name=rawvideo ! tee name=layers",
			live, pattern, o.Width, o.Height, o.FPS))
		n := 1
		if o.Simulcast {
			n = len(layers)
		}
		for i := range n {
			w, h := o.Width/layers[i]&^1, o.Height/layers[i]&^1
			enc, caps := encoderDesc(o, i)
			d = append(d, fmt.Sprintf("layers. ! queue max-size-buffers=2 ! videoscale ! capsfilter name=size%d caps=video/x-raw,width=%d,height=%d ! %s%s ! appsink name=video%d sync=%s max-buffers=30",
				i, w, h, enc, caps, i, sync))
		}
	}
	if !o.NoAudio {
		wave := "sine freq=440"
		if o.SyncMarks {
			wave = "sine freq=1000 samplesperbuffer=480"
		}
		d = append(d, fmt.Sprintf("audiotestsrc %s wave=%s ! audio/x-raw,format=S16LE,rate=48000,channels=2"+
			" ! identity name=rawaudio ! opusenc bitrate=64000 ! appsink name=audio sync=%s max-buffers=50", live, wave, sync))
	}
	return strings.Join(d, "  ")
}

// encoderDesc is layer i's encoder, as one element so that forcekey can
// make it again, and the caps after it.
func encoderDesc(o SourceOptions, i int) (enc, caps string) {
	kbps := o.BitrateKbps / (layers[i] * layers[i])
	switch o.Codec {
	case "vp8":
		return fmt.Sprintf("vp8enc name=encoder%d deadline=1 cpu-used=8 threads=2 keyframe-max-dist=%d target-bitrate=%d end-usage=cbr", i, keyIntMax, kbps*1000), ""
	case "av1":
		// keyframe-mode=disabled: libaom makes the first frame a
		// keyframe and no more; forcekey makes the others. max-quantizer:
		// av1enc's default of 0 fails libaom's CBR rate control.
		return fmt.Sprintf("av1enc name=encoder%d usage-profile=realtime cpu-used=10 threads=2 lag-in-frames=0 keyframe-mode=disabled"+
				" end-usage=cbr target-bitrate=%d min-quantizer=4 max-quantizer=56", i, kbps),
			" ! video/x-av1,stream-format=obu-stream,alignment=tu"
	default:
		return fmt.Sprintf("x264enc name=encoder%d tune=zerolatency speed-preset=ultrafast bitrate=%d key-int-max=%d aud=false option-string=scenecut=0", i, kbps, keyIntMax),
			" ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au"
	}
}

var gstInitOnce sync.Once

func initGStreamer() { gstInitOnce.Do(func() { gst.Init(nil) }) }

// Source runs the encoding pipeline and fans every encoded frame out to the
// Publishers attached to it.
type Source struct {
	opts     SourceOptions
	log      *slog.Logger
	pipeline *gst.Pipeline
	encoders []*forcekey.Encoder // one per layer, highest first
	videos   []*app.Sink         // one per layer; none with NoVideo
	audio    *app.Sink           // nil with NoAudio
	sizes    []*gst.Element      // capsfilters setting each layer's size

	mu         sync.Mutex
	publishers []*Publisher // replaced, never modified in place
	frames     frameLog
	kfPending  bool
	kfSentAt   time.Time

	// Random RTP timestamp origins, as RFC 3550 asks; never 0, which the
	// SDK reads as "no timestamp".
	videoBase, audioBase uint32

	videoFrames atomic.Int64
	audioFrames atomic.Int64
	kfRequests  atomic.Int64

	startOnce sync.Once
	stopOnce  sync.Once
	wg        sync.WaitGroup
	stopBus   chan struct{}
	done      chan struct{}
	err       error // set before done is closed
}

// NewSource builds the pipeline; Start runs it.
func NewSource(opts SourceOptions) (*Source, error) {
	initGStreamer()
	opts = opts.withDefaults()
	pipeline, err := gst.NewPipelineFromString(pipelineDesc(opts))
	if err != nil {
		return nil, fmt.Errorf("testpattern: build pipeline: %w", err)
	}
	s := &Source{
		opts:      opts,
		log:       opts.Logger,
		pipeline:  pipeline,
		frames:    frameLog{max: opts.MaxFrames},
		videoBase: rand.Uint32() | 1,
		audioBase: rand.Uint32() | 1,
		stopBus:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	for i := 0; !opts.NoVideo; i++ {
		enc, err := pipeline.GetElementByName(fmt.Sprintf("encoder%d", i))
		if err != nil {
			break // no more layers
		}
		video, err := pipeline.GetElementByName(fmt.Sprintf("video%d", i))
		if err != nil {
			return nil, fmt.Errorf("testpattern: %w", err)
		}
		size, err := pipeline.GetElementByName(fmt.Sprintf("size%d", i))
		if err != nil {
			return nil, fmt.Errorf("testpattern: %w", err)
		}
		desc, _ := encoderDesc(opts, i)
		s.encoders = append(s.encoders, forcekey.New(pipeline.Bin, enc, desc))
		s.videos = append(s.videos, app.SinkFromElement(video))
		s.sizes = append(s.sizes, size)
	}
	if !opts.NoAudio {
		audio, err := pipeline.GetElementByName("audio")
		if err != nil {
			return nil, fmt.Errorf("testpattern: %w", err)
		}
		s.audio = app.SinkFromElement(audio)
	}
	if opts.SyncMarks {
		if err := s.addSyncMarks(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Start sets the pipeline playing. The source runs until Close is called,
// ctx is done or the pipeline fails; Done and Err tell which.
func (s *Source) Start(ctx context.Context) error {
	select {
	case <-s.done:
		return errors.New("testpattern: source is closed")
	default:
	}
	err := errors.New("testpattern: source already started")
	s.startOnce.Do(func() {
		err = nil
		if e := s.pipeline.SetState(gst.StatePlaying); e != nil {
			err = fmt.Errorf("testpattern: start pipeline: %w", e)
			s.stop(err)
			return
		}
		for i := range s.videos {
			s.wg.Add(1)
			go s.videoLoop(i)
		}
		if s.audio != nil {
			s.wg.Add(1)
			go s.audioLoop()
		}
		s.wg.Add(1)
		go s.busLoop()
		context.AfterFunc(ctx, func() { s.stop(ctx.Err()) })
		s.log.Debug("test pattern started", "width", s.opts.Width, "height", s.opts.Height, "fps", s.opts.FPS, "kbps", s.opts.BitrateKbps)
	})
	return err
}

// Close stops the pipeline and waits for its goroutines. It does not close
// the Publishers; it is safe to call more than once.
func (s *Source) Close() error {
	s.stop(nil)
	return nil
}

// Done is closed once the source has stopped.
func (s *Source) Done() <-chan struct{} { return s.done }

// Err returns why the source stopped: nil after Close, the context's error,
// or the pipeline's error. It returns nil while the source runs.
func (s *Source) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// stop may run on any goroutine except the source's own loops, which it
// waits for; the bus loop reports errors through a separate goroutine.
func (s *Source) stop(err error) {
	s.stopOnce.Do(func() {
		close(s.stopBus)
		// Going to NULL unblocks PullSample in both sample loops.
		if e := s.pipeline.SetState(gst.StateNull); e != nil {
			s.log.Warn("test pattern: stop pipeline", "error", e)
		}
		s.wg.Wait()
		s.err = err
		close(s.done)
	})
}

// videoLoop sends one layer's frames; layer 0 is the highest and the only
// one whose frames are logged.
func (s *Source) videoLoop(layer int) {
	defer s.wg.Done()
	fallback := time.Second / time.Duration(s.opts.FPS)
	for {
		data, pts, dur, ok := pullSample(s.videos[layer], fallback)
		if !ok {
			return
		}
		var nalus [][]byte
		var key bool
		switch s.opts.Codec {
		case "vp8":
			key = len(data) > 0 && data[0]&1 == 0 // RFC 6386: P bit clear
		case "av1":
			key = hasSequenceHeader(data)
		default:
			nalus = avc.SplitAnnexB(data)
			key = avc.IsKeyframe(nalus)
		}
		sample := media.Sample{Data: data, Duration: dur, PacketTimestamp: s.videoBase + rtpTicks(pts, videoClock)}
		if layer > 0 {
			for _, p := range s.attached() {
				p.writeVideo(layer, sample)
			}
			continue
		}
		if key {
			s.mu.Lock()
			s.kfPending = false
			s.mu.Unlock()
		}
		pubs := s.attached()
		if len(pubs) == 0 {
			continue
		}
		// Record before writing so that a fast receiver always finds it.
		if nalus != nil {
			hash := avc.VCLHash(nalus)
			s.mu.Lock()
			s.frames.add(SentFrame{Hash: hash, SentAt: time.Now(), Keyframe: key, Size: len(data)})
			s.mu.Unlock()
		}
		for _, p := range pubs {
			p.writeVideo(0, sample)
		}
		s.videoFrames.Add(1)
	}
}

func (s *Source) audioLoop() {
	defer s.wg.Done()
	for {
		data, pts, dur, ok := pullSample(s.audio, opusFrame)
		if !ok {
			return
		}
		pubs := s.attached()
		if len(pubs) == 0 {
			continue
		}
		sample := media.Sample{Data: data, Duration: dur, PacketTimestamp: s.audioBase + rtpTicks(pts, audioClock)}
		for _, p := range pubs {
			p.writeAudio(sample)
		}
		s.audioFrames.Add(1)
	}
}

// pullSample blocks for the next encoded buffer and copies it out with its
// presentation time and duration. The sample and buffer are released at
// once: go-gst would otherwise free them only when the garbage collector
// runs its finalizers.
func pullSample(sink *app.Sink, fallback time.Duration) (data []byte, pts, dur time.Duration, ok bool) {
	sample := sink.PullSample()
	if sample == nil {
		return nil, 0, 0, false // EOS or the pipeline is stopping
	}
	runtime.SetFinalizer(sample, nil)
	defer sample.Unref()
	buf := sample.GetBuffer()
	if buf == nil {
		return nil, 0, fallback, true
	}
	runtime.SetFinalizer(buf, nil)
	defer buf.Unref()
	dur = fallback
	if d := buf.Duration().AsDuration(); d != nil && *d > 0 {
		dur = *d
	}
	if p := buf.PresentationTimestamp().AsDuration(); p != nil {
		pts = *p
	}
	return buf.Bytes(), pts, dur, true
}

// RTP clock rates of the published codecs.
const (
	videoClock = 90000
	audioClock = 48000
)

// rtpTicks converts a capture time into RTP clock ticks. The samples carry
// RTP timestamps from their capture times, as a browser's do: given only
// durations, the SDK truncates each 1/30 s frame to 2999 ticks (a clock
// 0.03 % slow, 100 ms over five minutes) and stops the clock while muted.
// Encoders may offset their timestamps (x264enc adds 1000 hours), so the
// whole seconds are scaled apart from the rest, which cannot overflow.
func rtpTicks(pts time.Duration, rate int64) uint32 {
	sec, frac := int64(pts/time.Second), int64(pts%time.Second)
	return uint32(sec*rate + (frac*rate+int64(time.Second)/2)/int64(time.Second))
}

func (s *Source) busLoop() {
	defer s.wg.Done()
	bus := s.pipeline.GetPipelineBus()
	for {
		select {
		case <-s.stopBus:
			return
		default:
		}
		msg := bus.TimedPop(gst.ClockTime(100 * time.Millisecond))
		if msg == nil {
			continue
		}
		switch msg.Type() {
		case gst.MessageError:
			gerr := msg.ParseError()
			err := fmt.Errorf("testpattern: pipeline error from %s: %s (%s)", msg.Source(), gerr.Error(), gerr.DebugString())
			s.log.Error("test pattern failed", "error", err)
			go s.stop(err) // stop waits for this loop
			return
		case gst.MessageEOS:
			go s.stop(errors.New("testpattern: pipeline reached end of stream"))
			return
		}
	}
}

// RequestKeyframe asks the encoder for a keyframe (IDR with SPS/PPS) as soon
// as possible. Requests while one is outstanding are coalesced, as browser
// encoders do, so a burst of PLIs from many rooms yields one keyframe.
func (s *Source) RequestKeyframe() {
	s.kfRequests.Add(1)
	s.mu.Lock()
	if s.kfPending && time.Since(s.kfSentAt) < keyframeRetry {
		s.mu.Unlock()
		return
	}
	s.kfPending = true
	s.kfSentAt = time.Now()
	s.mu.Unlock()

	for _, enc := range s.encoders {
		if err := enc.Request(); err != nil {
			s.log.Debug("test pattern: keyframe request", "error", err)
		}
	}
}

// hasSequenceHeader reports whether an AV1 temporal unit (OBUs with size
// fields, as av1enc writes them) holds a sequence header, which libaom
// writes with every keyframe: the AV1 payloader then sets the N bit that
// receivers know a keyframe by.
func hasSequenceHeader(tu []byte) bool {
	for len(tu) > 1 {
		typ, ext := tu[0]>>3&0x0f, int(tu[0]>>2&1)
		if typ == 1 {
			return true
		}
		size, n := 0, 0
		for k := 1 + ext; k < len(tu) && n < 8; k++ {
			size |= int(tu[k]&0x7f) << (7 * n)
			n++
			if tu[k]&0x80 == 0 {
				break
			}
		}
		tu = tu[min(len(tu), 1+ext+n+size):]
	}
	return false
}

// SetResolution changes the full video size while running, as a browser's
// encoder does under congestion: the encoders restart at the new size
// with a keyframe carrying the new parameter sets.
func (s *Source) SetResolution(width, height int) error {
	if len(s.sizes) == 0 {
		return errors.New("testpattern: no video")
	}
	for i, size := range s.sizes {
		caps := gst.NewCapsFromString(fmt.Sprintf("video/x-raw,width=%d,height=%d", width/layers[i]&^1, height/layers[i]&^1))
		if err := size.SetProperty("caps", caps); err != nil {
			return fmt.Errorf("testpattern: set resolution: %w", err)
		}
	}
	return nil
}

// Layers is how many video layers the source encodes: 1, or 3 with
// Simulcast, highest first.
func (s *Source) Layers() int { return len(s.videos) }

// KeyframeRequests counts RequestKeyframe calls, coalesced or not.
func (s *Source) KeyframeRequests() int64 { return s.kfRequests.Load() }

// VideoFrames counts video access units written to at least one Publisher.
func (s *Source) VideoFrames() int64 { return s.videoFrames.Load() }

// AudioFrames counts Opus frames written to at least one Publisher.
func (s *Source) AudioFrames() int64 { return s.audioFrames.Load() }

// Frames returns a copy of the log of video access units written to at
// least one Publisher, oldest first.
func (s *Source) Frames() []SentFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames.copy()
}

// FrameSentAt returns when the access unit with the given avc.VCLHash was
// first written, so a receiver can measure latency and prove the frame
// passed through unchanged.
func (s *Source) FrameSentAt(hash [32]byte) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames.sentAt(hash)
}

func (s *Source) attached() []*Publisher {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publishers
}

func (s *Source) attach(p *Publisher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publishers = append(s.publishers[:len(s.publishers):len(s.publishers)], p)
}

func (s *Source) detach(p *Publisher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pubs := make([]*Publisher, 0, len(s.publishers))
	for _, q := range s.publishers {
		if q != p {
			pubs = append(pubs, q)
		}
	}
	s.publishers = pubs
}
