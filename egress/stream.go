package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/pion/webrtc/v4"
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
	log          *slog.Logger
	tlsConfig    *tls.Config // nil: the system roots; tests set their own
	backoff      backoff

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
}

// pendingData is a SendData message waiting for the next media tag.
type pendingData struct {
	ts   uint32
	body []byte         // an encoded onCuePoint or onTextData
	meta map[string]any // or, for onMetaData, the merged user keys
}

// maxPendingData bounds SendData messages waiting for the pump. The pump
// takes them at every media tag (every ~20 ms); 64 waiting means the
// stream has stalled, and the sender should hear so.
const maxPendingData = 64

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
	if len(opts.Outputs) == 0 {
		return nil, errors.New("egress: no outputs")
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
	for _, t := range tracks {
		c := t.Codec()
		switch {
		case c.Kind == Video && s.video == nil && strings.EqualFold(c.MimeType, webrtc.MimeTypeH264):
			s.video = t
			s.stats.VideoCodec, s.stats.Passthrough = "h264", true
		case c.Kind == Audio && s.audio == nil && strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus):
			s.audio = t
			s.stats.AudioCodec = "aac"
		case c.Kind == Video || c.Kind == Audio:
			return nil, fmt.Errorf("egress: %s track %s: %w (this version takes one H.264 video and one Opus audio track)", c.Kind, c.MimeType, ErrUnsupportedCodec)
		default:
			return nil, fmt.Errorf("egress: track of unknown kind %d", c.Kind)
		}
	}
	if s.video == nil && s.audio == nil {
		return nil, errors.New("egress: no tracks")
	}
	return s, nil
}

// checkOutput validates what can be checked before connecting.
func checkOutput(o Output) error {
	if o.ID == "" {
		return errors.New("egress: output without an id")
	}
	if o.URL.raw == "" {
		return fmt.Errorf("egress: output %s: %w: no URL", o.ID, ErrInvalidURL)
	}
	if err := ValidateConnectInfo(o.ConnectInfo); err != nil {
		return fmt.Errorf("egress: output %s: %w", o.ID, err)
	}
	return nil
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
	for _, t := range []Track{s.video, s.audio} {
		if t == nil {
			continue
		}
		name := videoSrcName
		if t == s.audio {
			name = audioSrcName
		}
		el, err := main.GetElementByName(name)
		if err != nil {
			return fmt.Errorf("egress: %w", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.read(t, app.SrcFromElement(el)) }()
	}

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

// outputEnded logs a failed output and returns an error once no output is
// left sending: a stream that reaches no destination has failed.
func (s *Stream) outputEnded(o *output) error {
	oe := o.failed()
	if oe == nil {
		return nil
	}
	s.log.Warn("destination failed", "output", o.ID, "url", o.URL.String(), "err", oe.Err)
	var errs []error
	for _, o := range s.outputList() {
		oe := o.failed()
		if oe == nil {
			return nil
		}
		errs = append(errs, oe)
	}
	return fmt.Errorf("egress: every destination failed: %w", errors.Join(errs...))
}

func (s *Stream) outputList() []*output {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outputs
}

// outputOp is an AddOutput or RemoveOutput request for Run.
type outputOp struct {
	add    *Output // or remove:
	remove string
	reply  chan opReply
}

type opReply struct {
	removed *output
	err     error
}

// apply runs on Run's goroutine, the only one that changes the list.
func (s *Stream) apply(op outputOp, start func(*output)) opReply {
	outputs := s.outputList()
	if op.add != nil {
		if len(outputs) >= MaxOutputs {
			return opReply{err: fmt.Errorf("egress: add output %s: the stream has %d outputs, the limit", op.add.ID, MaxOutputs)}
		}
		for _, o := range outputs {
			if o.ID == op.add.ID {
				return opReply{err: fmt.Errorf("egress: add output %s: the stream already has an output with that id", op.add.ID)}
			}
		}
		o, err := newOutput(*op.add, s)
		if err != nil {
			return opReply{err: fmt.Errorf("egress: %w", err)}
		}
		s.mu.Lock()
		s.outputs = append(outputs[:len(outputs):len(outputs)], o)
		s.mu.Unlock()
		start(o)
		s.opts.OnChange()
		return opReply{}
	}
	var target *output
	others := 0
	rest := make([]*output, 0, len(outputs))
	for _, o := range outputs {
		switch {
		case o.ID == op.remove:
			target = o
			continue
		case o.failed() == nil:
			others++
		}
		rest = append(rest, o)
	}
	if target == nil {
		return opReply{err: fmt.Errorf("egress: remove output %s: no such output", op.remove)}
	}
	if others == 0 && target.failed() == nil {
		return opReply{err: fmt.Errorf("egress: remove output %s: it is the last one sending; stop the broadcast instead", op.remove)}
	}
	s.mu.Lock()
	s.outputs = rest
	s.mu.Unlock()
	target.stop()
	return opReply{removed: target}
}

// errNotRunning is returned by AddOutput and RemoveOutput outside Run.
var errNotRunning = errors.New("egress: the stream is not running")

func (s *Stream) do(op outputOp) (opReply, error) {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return opReply{}, errNotRunning
	}
	op.reply = make(chan opReply, 1)
	select {
	case s.ops <- op:
		return <-op.reply, nil
	case <-s.loopDone:
		return opReply{}, errNotRunning
	}
}

// AddOutput starts sending the running stream to one more destination. Its
// first session starts with the merged onMetaData and the sequence
// headers, then a keyframe (requested at once). Adding an id the stream
// already has, or more than MaxOutputs, is an error.
func (s *Stream) AddOutput(o Output) error {
	if err := checkOutput(o); err != nil {
		return err
	}
	r, err := s.do(outputOp{add: &o})
	if err != nil {
		return err
	}
	return r.err
}

// RemoveOutput ends one destination's session cleanly (FCUnpublish,
// deleteStream) while the stream goes on, and returns once it has ended.
// The output leaves Stats. Removing the last output still sending is
// refused: stop the broadcast instead.
func (s *Stream) RemoveOutput(id string) error {
	r, err := s.do(outputOp{remove: id})
	if err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-r.removed.done:
	case <-t.C:
		r.removed.cancel() // the destination took too long: just close
		<-r.removed.done
	}
	return nil
}

// SendData sends a script data message on every output: handler is
// "onMetaData" (the keys are merged into the user metadata and the merged
// onMetaData is sent again), "onCuePoint" or "onTextData". data comes from
// JSON (map[string]any, []any, float64, string, bool, nil); ValidateData
// says what is accepted.
//
// The message goes out before the next media frame, with the timestamp of
// the newest media frame the stream has produced, so it is never behind
// the media before it; SendData returns that timestamp, which a cue
// point's missing time is also taken from. Before the first frame the
// timestamp is 0. Messages sent while an output is reconnecting are
// dropped for that output (see OutputStats.DataDropped). SendData is safe
// to call from any goroutine, before or while Run runs.
func (s *Stream) SendData(handler string, data map[string]any) (time.Duration, error) {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	if s.ended {
		return 0, errors.New("egress: send data: the stream has ended")
	}
	if len(s.pending) >= maxPendingData {
		return 0, fmt.Errorf("egress: send data: %d messages already wait for the stream's next frame", len(s.pending))
	}
	ts := time.Duration(s.lastTS) * time.Millisecond
	body, meta, err := prepareData(handler, data, ts, s.opts.MaxMetadataBytes)
	if err != nil {
		return 0, err
	}
	p := pendingData{ts: s.lastTS, body: body}
	if meta != nil {
		merged := make(map[string]any, len(s.dataMeta)+len(meta))
		maps.Copy(merged, s.dataMeta)
		maps.Copy(merged, meta)
		b, err := appendAMF0(nil, HandlerMetaData, amfECMAArray(sortedProps(merged)))
		if err != nil {
			return 0, fmt.Errorf("egress: %w: %v", ErrInvalidMetadata, err)
		}
		if len(b) > s.opts.MaxMetadataBytes {
			return 0, invalid(handler, "data", "merged metadata of %d bytes exceeds the limit of %d", len(b), s.opts.MaxMetadataBytes)
		}
		s.dataMeta, p.meta = merged, merged
	}
	s.pending = append(s.pending, p)
	return ts, nil
}

// takePending returns the SendData messages to send before a media tag
// with timestamp ts, and makes ts the stamp of the ones that follow.
func (s *Stream) takePending(ts uint32) []pendingData {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	p := s.pending
	s.pending = nil
	s.lastTS = max(s.lastTS, ts)
	return p
}

func (s *Stream) closeTracks() {
	for _, t := range []Track{s.video, s.audio} {
		if t != nil {
			_ = t.Close()
		}
	}
}

// pump reads the muxer's FLV and routes each tag. It returns at EOS or
// when the pipeline stops.
func (s *Stream) pump(sink *app.Sink) {
	var split tagSplitter
	for {
		sample := sink.PullSample()
		if sample == nil {
			return
		}
		buf := sample.GetBuffer()
		data := buf.Bytes() // a copy
		release(buf)
		release(sample)
		if err := split.write(data, s.route); err != nil {
			s.log.Error("muxer output is not FLV", "err", err)
			return
		}
	}
}

// route is the FLV tag stream between the muxer and the outputs. It keeps
// the header tags every new session needs, replaces the muxer's
// onMetaData with the merged one, puts SendData messages before the next
// media tag, and hands each tag to every output.
func (s *Stream) route(t Tag) {
	t.Data = bytes.Clone(t.Data) // queued by the outputs; never written again
	switch {
	case t.Type == TagScript:
		// flvmux writes no script tag but onMetaData.
		vals, err := decodeAMF0(t.Data)
		if name, _ := arg(vals, 0).(string); err != nil || name != HandlerMetaData {
			s.log.Warn("muxer wrote a script tag that is not onMetaData; dropped", "err", err)
			return
		}
		switch v := arg(vals, 1).(type) {
		case amfECMAArray:
			s.muxMeta = v
		case amfObject:
			s.muxMeta = amfECMAArray(v)
		}
		s.sendMeta(t.Timestamp)
		return
	case t.IsSequenceHeader():
		s.setHeader(t)
	case t.IsMedia():
		for _, p := range s.takePending(t.Timestamp) {
			if p.meta != nil {
				s.userMeta = p.meta
				s.sendMeta(p.ts)
				continue
			}
			s.broadcast(Tag{Type: TagScript, Timestamp: p.ts, Data: p.body})
		}
	}
	s.broadcast(t)
	s.count(t)
}

func (s *Stream) broadcast(t Tag) {
	for _, o := range s.outputList() {
		o.enqueue(t)
	}
}

// sendMeta builds the merged onMetaData (the muxer's fields, the audio
// fields flvmux leaves out, then the user keys), caches it as the first
// header and sends it. Nothing is sent before the muxer's own.
func (s *Stream) sendMeta(ts uint32) {
	if s.muxMeta == nil {
		return
	}
	merged := slices.Clone(s.muxMeta)
	has := map[string]bool{}
	for _, p := range merged {
		has[p.Key] = true
	}
	add := func(k string, v any) {
		if !has[k] {
			merged = append(merged, amfProp{k, v})
			has[k] = true
		}
	}
	if s.audio != nil {
		// flvmux learns the AAC bitrate from TAG events, which are dropped
		// (see dropTagEvents): roomcast knows it anyway. kb/s, as FLV has it.
		for i, p := range merged {
			if p.Key == "audiodatarate" && p.Value == 0.0 {
				merged[i].Value = float64(s.opts.AudioBitrate) / 1000
			}
		}
		add("audiosamplerate", float64(s.opts.AudioSampleRate))
		add("audiosamplesize", 16.0)
		add("stereo", true)
	}
	for _, p := range sortedProps(s.userMeta) {
		add(p.Key, p.Value)
	}
	body, err := appendAMF0(nil, HandlerMetaData, merged)
	if err != nil {
		s.log.Error("cannot encode onMetaData", "err", err)
		return
	}
	meta := Tag{Type: TagScript, Timestamp: ts, Data: body}
	w, _ := s.muxMeta.get("width")
	h, _ := s.muxMeta.get("height")
	s.mu.Lock()
	if wf, ok := w.(float64); ok {
		s.stats.Width = int(wf)
	}
	if hf, ok := h.(float64); ok {
		s.stats.Height = int(hf)
	}
	s.mu.Unlock()
	s.setHeader(meta)
	s.broadcast(meta)
}

func (m amfECMAArray) get(key string) (any, bool) { return amfObject(m).get(key) }

// setHeader caches t as the onMetaData or the sequence header of its kind.
func (s *Stream) setHeader(t Tag) {
	s.mu.Lock()
	defer s.mu.Unlock()
	headers := make([]Tag, 0, 3)
	kept := false
	for _, h := range s.headers {
		if h.Type == t.Type {
			h, kept = t, true
		}
		headers = append(headers, h)
	}
	if !kept {
		headers = append(headers, t)
	}
	// onMetaData first, then video, then audio, as flvmux orders them.
	slices.SortStableFunc(headers, func(a, b Tag) int { return headerRank(a) - headerRank(b) })
	s.headers = headers
}

func headerRank(t Tag) int {
	switch t.Type {
	case TagScript:
		return 0
	case TagVideo:
		return 1
	}
	return 2
}

// headerTags returns the tags a new session starts with.
func (s *Stream) headerTags() []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers
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
	s.mu.Unlock()
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
