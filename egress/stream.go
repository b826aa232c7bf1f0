package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
)

// ErrTracksEnded is returned by Run when every track ended on its own (the
// participant left or unpublished), as opposed to a stop request.
var ErrTracksEnded = errors.New("tracks ended")

// ErrUnsupportedCodec is returned by New for a track this version cannot mux.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// Options configure a Stream. The zero value of each field but Outputs
// means its default.
type Options struct {
	Outputs          []Output
	KeyframeInterval time.Duration // keyframe request cadence; default 2 s
	AudioSampleRate  int           // AAC rate, 44100 or 48000; default 48000
	AudioBitrate     int           // AAC bits per second; default 128000
	// Metadata holds user keys for the stream's onMetaData, as JSON
	// gives them; see ValidateData. Later SendData("onMetaData", ...)
	// calls merge into it.
	Metadata map[string]any
	// MaxMetadataBytes bounds one encoded data message and the merged
	// user metadata; default DefaultMaxMetadataBytes.
	MaxMetadataBytes int
	Video            VideoOptions // mode and transcoding targets
	Logger           *slog.Logger
	// OnChange, if set, is called after an output changes state. It runs
	// on the stream's goroutines, so it must return quickly; read the new
	// state with Stats.
	OnChange func()
}

// Stats is a snapshot of a stream.
type Stats struct {
	VideoCodec, AudioCodec string // what goes out: "h264", "aac"
	Passthrough            bool   // video leaves as it came in
	VideoCodecIn           string // what the publisher sends: "h264", "vp8", ...
	Transcoding            bool   // video is decoded and encoded (or a slate is sent)
	VideoReason            string // why passthrough or transcoding
	DroppedFrames          uint64 // frames the transcoder dropped to hold the framerate
	VideoWidthIn           int    // the size the publisher sends now; 0 until known
	VideoHeightIn          int
	VideoFrames            uint64
	AudioFrames            uint64
	Keyframes              uint64
	Bytes                  uint64 // FLV bytes out of the muxer
	LastKeyframe           time.Time
	// Measured over the last rateWindow (2 s) of the muxer's output.
	VideoBitrate int     // bits per second
	AudioBitrate int     // bits per second
	FrameRate    float64 // video frames per second
	// Width and Height come from the muxer's onMetaData; 0 until known.
	Width, Height int
	Outputs       []OutputStats
}

// Stream muxes one set of tracks into FLV and sends it to its outputs.
// Run owns everything it starts; a Stream runs once.
type Stream struct {
	opts         Options
	video, audio Track
	videoCodec   videoCodec // the video track's elements
	log          *slog.Logger
	tlsConfig    *tls.Config // nil: the system roots; tests set their own
	backoff      backoff

	timeline     streamClock   // the readers' shared clock, for gap filling
	lastRequest  time.Time     // last keyframe request; owned by Run
	keyframeSoon chan struct{} // outputs' keyframe requests to Run
	ops          chan outputOp // AddOutput and RemoveOutput to Run
	loopDone     chan struct{} // closed when Run stops taking ops

	// Owned by the tag pump.
	muxMeta  amfECMAArray   // the muxer's own onMetaData fields
	userMeta map[string]any // the user keys the pump last merged

	mu      sync.Mutex
	running bool
	outputs []*output // replaced, never changed in place
	stats   Stats
	video2s rateWindow
	audio2s rateWindow
	headers []Tag // merged onMetaData, AVC and AAC sequence headers

	dataMu   sync.Mutex
	pending  []pendingData  // SendData messages for the pump
	lastTS   uint32         // newest media timestamp the pump has seen
	dataMeta map[string]any // user metadata merged so far
	ended    bool
	rate     *gst.Element // the transcoder's videorate, if any; set by Run
}

// New checks the tracks and options; nothing connects until Run.
func New(opts Options, tracks ...Track) (*Stream, error) {
	if opts.KeyframeInterval == 0 {
		opts.KeyframeInterval = 2 * time.Second
	}
	if opts.AudioSampleRate == 0 {
		opts.AudioSampleRate = 48000
	}
	if opts.AudioBitrate == 0 {
		opts.AudioBitrate = 128000
	}
	if opts.MaxMetadataBytes <= 0 {
		opts.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OnChange == nil {
		opts.OnChange = func() {}
	}
	opts.Video = opts.Video.withDefaults()
	if len(opts.Outputs) == 0 {
		return nil, errors.New("egress: no outputs")
	}
	if err := opts.Video.validate(); err != nil {
		return nil, err
	}
	if opts.MaxMetadataBytes > maxTagBytes/2 {
		return nil, fmt.Errorf("egress: MaxMetadataBytes %d exceeds the limit of %d (FLV tags hold 16 MiB)", opts.MaxMetadataBytes, maxTagBytes/2)
	}
	if len(opts.Outputs) > MaxOutputs {
		return nil, fmt.Errorf("egress: %d outputs exceed the limit of %d", len(opts.Outputs), MaxOutputs)
	}
	seen := map[string]bool{}
	for _, o := range opts.Outputs {
		if err := checkOutput(o); err != nil {
			return nil, err
		}
		if seen[o.ID] {
			return nil, fmt.Errorf("egress: output id %q is used twice", o.ID)
		}
		seen[o.ID] = true
	}
	s := &Stream{
		opts:         opts,
		log:          opts.Logger,
		backoff:      defaultBackoff,
		keyframeSoon: make(chan struct{}, 1),
		ops:          make(chan outputOp),
		loopDone:     make(chan struct{}),
	}
	if opts.Metadata != nil {
		_, meta, err := prepareData(HandlerMetaData, opts.Metadata, 0, opts.MaxMetadataBytes)
		if err != nil {
			return nil, err
		}
		s.dataMeta = meta
	}
	if err := s.plan(tracks); err != nil {
		return nil, err
	}
	return s, nil
}

// Run sends the stream until ctx is done (returns nil), every track ends
// (ErrTracksEnded), the pipeline fails, or every output has failed (an
// error wrapping each *OutputError). It releases every element and
// goroutine it started before it returns.
func (s *Stream) Run(ctx context.Context) error {
	defer s.closeTracks()
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("egress: Run called twice")
	}
	s.running = true
	s.mu.Unlock()
	defer close(s.loopDone)
	defer func() {
		s.dataMu.Lock()
		s.ended = true
		s.dataMu.Unlock()
	}()
	s.dataMu.Lock()
	s.userMeta = s.dataMeta // SendData may have merged keys before Run
	s.dataMu.Unlock()

	main, err := newPipeline(s.description())
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	defer releasePipeline(main)

	sink, err := main.GetElementByName(tagSinkName)
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	if err := dropTagEvents(main); err != nil {
		return fmt.Errorf("egress: %w", err)
	}

	// Every goroutine below ends before Run returns: the bus watcher when
	// done closes, the readers when their track is closed, the pump at EOS
	// or when the main pipeline goes to NULL, the outputs when stopped or
	// when outCtx ends.
	done := make(chan struct{})
	events := make(chan busEvent)
	outEnded := make(chan *output)
	outCtx, cancelOutputs := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		close(done)
		s.closeTracks()
		_ = main.SetState(gst.StateNull) // unblocks the pump if EOS never came
		cancelOutputs()
		wg.Wait()
	}()
	startOutput := func(o *output) {
		ctx, cancel := context.WithCancel(outCtx)
		o.cancel = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.run(ctx)
			cancel()
			select {
			case outEnded <- o:
			case <-done:
			}
		}()
	}
	for _, oo := range s.opts.Outputs {
		o, err := newOutput(oo, s)
		if err != nil {
			return fmt.Errorf("egress: %w", err)
		}
		s.mu.Lock() // Stats reads the list from other goroutines
		s.outputs = append(s.outputs, o)
		s.mu.Unlock()
		startOutput(o)
	}
	wg.Add(1)
	go func() { defer wg.Done(); watchBus(main, "main", events, done) }()
	if err := main.SetState(gst.StatePlaying); err != nil {
		return fmt.Errorf("egress: start pipeline: %w", err)
	}

	pumpDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(pumpDone)
		s.pump(app.SinkFromElement(sink))
	}()
	if err := s.startReaders(main, &wg); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	s.watchVideo(main)

	var keyframeCheck <-chan time.Time
	if s.video != nil {
		tick := time.NewTicker(keyframeCheckPeriod)
		defer tick.Stop()
		keyframeCheck = tick.C
		s.requestKeyframeIfDue()
	}

	for {
		select {
		case <-ctx.Done():
			s.closeTracks() // the readers end their appsrcs: the muxer drains
			return s.finish(pumpDone, nil)
		case <-pumpDone:
			return s.finish(pumpDone, ErrTracksEnded)
		case <-keyframeCheck:
			s.requestKeyframeIfDue()
		case <-s.keyframeSoon:
			if s.video != nil && time.Since(s.lastRequest) >= keyframeRetry {
				s.lastRequest = time.Now()
				s.video.RequestKeyframe()
			}
		case op := <-s.ops:
			op.reply <- s.apply(op, startOutput)
		case o := <-outEnded:
			if err := s.outputEnded(o); err != nil {
				return err
			}
		case ev := <-events:
			if ev.err != nil {
				return fmt.Errorf("egress: %w", ev.err)
			}
			// EOS: the pump is about to finish
		}
	}
}

// Keyframe requests. WebRTC encoders send keyframes only when asked, so
// passthrough asks whenever the last keyframe out of the muxer is about to
// be KeyframeInterval old. Following the keyframes actually seen, not a
// fixed ticker, keeps the gaps right when the SFU or a new subscriber
// also asks. A transcode's x264 makes its own keyframes, but its decoder
// needs one to start: until the first video leaves the muxer, both ask
// every keyframeRetry, since a first request can go unanswered (the
// encoder coalesced it with an earlier one) or its keyframe be dropped
// (the synchronizer's start gate, a lost packet).
const (
	keyframeCheckPeriod = 100 * time.Millisecond
	// keyframeLead is how early to ask: a PLI's trip through the SFU to
	// the encoder and the keyframe's trip back take ~100 ms on a LAN.
	keyframeLead = 250 * time.Millisecond
	// keyframeRetry spaces repeated requests while none is answered, below
	// which SFUs throttle PLIs anyway.
	keyframeRetry = 500 * time.Millisecond
)

// requestKeyframeIfDue runs on Run's goroutine, which owns lastRequest.
func (s *Stream) requestKeyframeIfDue() {
	s.mu.Lock()
	last, transcoding := s.stats.LastKeyframe, s.stats.Transcoding
	s.mu.Unlock()
	now := time.Now()
	due := last.IsZero() || (!transcoding && now.Sub(last) >= s.opts.KeyframeInterval-keyframeLead)
	if !due || now.Sub(s.lastRequest) < keyframeRetry {
		return
	}
	s.lastRequest = now
	s.video.RequestKeyframe()
}

// requestKeyframeSoon asks Run for a keyframe now, for an output whose
// new session waits for one. It never blocks.
func (s *Stream) requestKeyframeSoon() {
	select {
	case s.keyframeSoon <- struct{}{}:
	default: // one request pending is enough
	}
}

// drainTimeout bounds a stop when a branch cannot reach EOS, e.g. the
// muxer still waits for a first frame that will never come, or when a
// destination does not take the last tags.
const drainTimeout = 5 * time.Second

// finish waits for the muxer to drain (the pump has sent every tag), then
// has each output send what it holds and end its session cleanly
// (FCUnpublish, deleteStream), and returns result.
func (s *Stream) finish(pumpDone <-chan struct{}, result error) error {
	deadline := time.NewTimer(drainTimeout)
	defer deadline.Stop()
	select {
	case <-pumpDone:
	case <-deadline.C:
		s.log.Warn("muxer did not drain in time; stopping anyway", "timeout", drainTimeout)
	}
	outputs := s.outputList()
	for _, o := range outputs {
		o.stop()
	}
	for _, o := range outputs {
		select {
		case <-o.done:
		case <-deadline.C:
			for _, o := range outputs {
				o.cancel()
			}
			return result
		}
	}
	return result
}

func (s *Stream) closeTracks() {
	for _, t := range []Track{s.video, s.audio} {
		if t != nil {
			_ = t.Close()
		}
	}
}

func (s *Stream) count(t Tag) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Bytes += uint64(tagHeaderLen + len(t.Data) + prevTagSizeLen)
	switch {
	case !t.IsMedia():
	case t.Type == TagAudio:
		s.stats.AudioFrames++
		s.audio2s.add(now, len(t.Data))
	default:
		if t.IsKeyframe() {
			s.stats.LastKeyframe = now
			s.stats.Keyframes++
		}
		s.stats.VideoFrames++
		s.video2s.add(now, len(t.Data))
	}
}

// Stats returns a snapshot of the stream and its outputs.
func (s *Stream) Stats() Stats {
	now := time.Now()
	s.mu.Lock()
	st := s.stats
	outputs := s.outputs
	var frames int
	st.VideoBitrate, frames = s.video2s.rate(now)
	st.AudioBitrate, _ = s.audio2s.rate(now)
	if span := s.video2s.span(now); span > 0 {
		st.FrameRate = float64(frames) / span.Seconds()
	}
	rate := s.rate
	s.mu.Unlock()
	if rate != nil {
		if v, err := rate.GetProperty("drop"); err == nil {
			st.DroppedFrames, _ = v.(uint64)
		}
	}
	st.Outputs = make([]OutputStats, 0, len(outputs))
	for _, o := range outputs {
		st.Outputs = append(st.Outputs, o.snapshot())
	}
	return st
}
