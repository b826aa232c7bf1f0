package egress

import (
	"context"
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
	Video            VideoOptions  // mode and transcoding targets
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
	Outputs                []OutputStats
}

// Stream muxes one set of tracks into FLV and sends it to its outputs.
// Run owns everything it starts; a Stream runs once.
type Stream struct {
	opts         Options
	video, audio Track
	videoCodec   videoCodec // the video track's elements
	log          *slog.Logger
	outputs      []*output // appended by Run under mu, then fixed

	lastRequest time.Time // last keyframe request; owned by Run

	mu    sync.Mutex
	stats Stats
	rate  *gst.Element // the transcoder's videorate, if any; set by Run
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
	s := &Stream{opts: opts, log: opts.Logger}
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

	main, err := newPipeline(s.description())
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	defer releasePipeline(main)

	for _, o := range s.opts.Outputs {
		out, err := newOutput(o, s.video != nil, s.opts.OnChange)
		if err != nil {
			return fmt.Errorf("egress: %w", err)
		}
		defer releasePipeline(out.pipe)
		s.mu.Lock() // Stats reads the list from other goroutines
		s.outputs = append(s.outputs, out)
		s.mu.Unlock()
	}

	sink, err := main.GetElementByName(tagSinkName)
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	if err := dropTagEvents(main); err != nil {
		return fmt.Errorf("egress: %w", err)
	}

	// Every goroutine below ends before Run returns: the bus watchers when
	// done closes, the readers when their track is closed, the pump at EOS
	// or when the main pipeline goes to NULL.
	done := make(chan struct{})
	events := make(chan busEvent)
	var wg sync.WaitGroup
	defer func() {
		close(done)
		s.closeTracks()
		_ = main.SetState(gst.StateNull) // unblocks the pump if EOS never came
		wg.Wait()
	}()
	goWatch := func(p *gst.Pipeline, name string) {
		wg.Add(1)
		go func() { defer wg.Done(); watchBus(p, name, events, done) }()
	}
	goWatch(main, "main")
	for _, o := range s.outputs {
		goWatch(o.pipe, o.ID)
		if err := o.pipe.SetState(gst.StatePlaying); err != nil {
			return fmt.Errorf("egress: %w", o.failure(err))
		}
	}
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
	if s.video != nil && s.stats.Transcoding {
		// x264 makes its own keyframes; the decoder needs one to start.
		s.video.RequestKeyframe()
	}
	if s.video != nil && !s.stats.Transcoding {
		tick := time.NewTicker(keyframeCheckPeriod)
		defer tick.Stop()
		keyframeCheck = tick.C
		s.requestKeyframeIfDue()
	}

	for {
		select {
		case <-ctx.Done():
			s.closeTracks() // the readers end their appsrcs: the muxer drains
			return s.finish(pumpDone, events, nil)
		case <-pumpDone:
			return s.finish(pumpDone, events, ErrTracksEnded)
		case <-keyframeCheck:
			s.requestKeyframeIfDue()
		case ev := <-events:
			if ev.source == "main" {
				if ev.err != nil {
					return fmt.Errorf("egress: %w", ev.err)
				}
				continue // EOS: the pump is about to finish
			}
			if ev.err == nil {
				continue // an output's EOS only matters in finish
			}
			if err := s.outputFailed(ev); err != nil {
				return err
			}
		}
	}
}

// Keyframe requests. WebRTC encoders send keyframes only when asked, so
// passthrough asks whenever the last keyframe out of the muxer is about to
// be KeyframeInterval old. Following the keyframes actually seen, not a
// fixed ticker, keeps the gaps right when the SFU or a new subscriber
// also asks.
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
	last := s.stats.LastKeyframe
	s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.lastRequest) < keyframeRetry || (!last.IsZero() && now.Sub(last) < s.opts.KeyframeInterval-keyframeLead) {
		return
	}
	s.lastRequest = now
	s.video.RequestKeyframe()
}

// finish waits for the muxer to drain (the pump has sent every tag), then
// ends each output's RTMP session cleanly (EOS makes rtmp2sink send
// FCUnpublish and deleteStream) and returns result.
func (s *Stream) finish(pumpDone <-chan struct{}, events <-chan busEvent, result error) error {
	// drainTimeout bounds a stop when a branch cannot reach EOS, e.g. the
	// muxer still waits for a first frame that will never come.
	const drainTimeout = 5 * time.Second
	deadline := time.NewTimer(drainTimeout)
	defer deadline.Stop()

	select {
	case <-pumpDone:
	case <-deadline.C:
		s.log.Warn("muxer did not drain in time; stopping anyway", "timeout", drainTimeout)
	}

	waiting := map[string]*output{}
	for _, o := range s.outputs {
		if o.state() != OutputFailed {
			o.src.EndStream()
			waiting[o.ID] = o
		}
	}
	for len(waiting) > 0 {
		select {
		case ev := <-events:
			o, ok := waiting[ev.source]
			if !ok {
				continue
			}
			if ev.err != nil {
				o.end(o.failure(ev.err))
			} else {
				o.end(nil)
			}
			delete(waiting, ev.source)
		case <-deadline.C:
			for _, o := range waiting {
				o.end(nil)
			}
			return result
		}
	}
	return result
}

// outputFailed records a failed output and returns an error once no output
// is left: a stream that reaches no destination has failed.
func (s *Stream) outputFailed(ev busEvent) error {
	for _, o := range s.outputs {
		if o.ID == ev.source {
			oe := o.failure(ev.err)
			o.end(oe)
			s.log.Warn("destination failed", "output", o.ID, "url", o.URL.String(), "err", oe.Err)
		}
	}
	var errs []error
	for _, o := range s.outputs {
		oe := o.failed()
		if oe == nil {
			return nil
		}
		errs = append(errs, oe)
	}
	return fmt.Errorf("egress: every destination failed: %w", errors.Join(errs...))
}

func (s *Stream) closeTracks() {
	for _, t := range []Track{s.video, s.audio} {
		if t != nil {
			_ = t.Close()
		}
	}
}

// pump reads the muxer's FLV, keeps the header tags every new output
// session needs, and hands each tag to every output. It returns at EOS or
// when the pipeline stops.
func (s *Stream) pump(sink *app.Sink) {
	var split tagSplitter
	var meta, videoHeader, audioHeader Tag
	var headers []Tag
	for {
		sample := sink.PullSample()
		if sample == nil {
			return
		}
		buf := sample.GetBuffer()
		data := buf.Bytes() // a copy
		release(buf)
		release(sample)

		err := split.write(data, func(t Tag) {
			if t.Type == TagScript || t.IsSequenceHeader() {
				t.Data = append([]byte(nil), t.Data...) // outlives this call
				switch {
				case t.Type == TagScript:
					meta = t
				case t.Type == TagVideo:
					videoHeader = t
				default:
					audioHeader = t
				}
				headers = headers[:0]
				for _, h := range []Tag{meta, videoHeader, audioHeader} {
					if h.Data != nil {
						headers = append(headers, h)
					}
				}
			}
			for _, o := range s.outputs {
				o.write(t, headers)
			}
			s.count(t)
		})
		if err != nil {
			s.log.Error("muxer output is not FLV", "err", err)
			return
		}
	}
}

func (s *Stream) count(t Tag) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Bytes += uint64(tagHeaderLen + len(t.Data) + prevTagSizeLen)
	switch {
	case !t.IsMedia():
	case t.Type == TagAudio:
		s.stats.AudioFrames++
	case t.IsKeyframe():
		s.stats.LastKeyframe = time.Now()
		s.stats.Keyframes++
		s.stats.VideoFrames++
	default:
		s.stats.VideoFrames++
	}
}

// Stats returns a snapshot of the stream and its outputs.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	outputs := s.outputs
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

// dropTagEvents stops TAG events at the muxer's inputs: flvmux 1.22 with
// streamable=true re-sends onMetaData for each one (about 20 in the first
// 5 s), and roomcast owns the stream's metadata.
func dropTagEvents(p *gst.Pipeline) error {
	mux, err := p.GetElementByName(muxName)
	if err != nil {
		return err
	}
	pads, err := mux.GetSinkPads()
	if err != nil {
		return err
	}
	for _, pad := range pads {
		pad.AddProbe(gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
			if ev := info.GetEvent(); ev != nil && ev.Type() == gst.EventTypeTag {
				return gst.PadProbeDrop
			}
			return gst.PadProbeOK
		})
	}
	return nil
}
