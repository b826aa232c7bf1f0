package egress

import (
	"errors"
	"fmt"
	"sync"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
)

// Output is one destination of a stream.
type Output struct {
	ID  string // stable id the room and API refer to
	URL URL
}

// OutputState is where an output is in its life.
type OutputState string

const (
	OutputConnecting OutputState = "connecting" // sending, no keyframe out yet
	OutputLive       OutputState = "live"
	OutputFailed     OutputState = "failed"
	OutputEnded      OutputState = "ended"
)

// OutputStats is a snapshot of one output.
type OutputStats struct {
	ID        string
	URL       string // stream key redacted
	State     OutputState
	Bytes     uint64 // FLV bytes handed to the RTMP client
	Frames    uint64 // audio and video frames sent
	Keyframes uint64
	Dropped   uint64 // frames dropped because the destination fell behind
	Error     string // why it failed, stream key redacted
}

// maxQueuedBytes bounds what an output buffers for a slow destination:
// about 10 s of a 6 Mb/s stream. Past it the output drops frames up to the
// next keyframe instead of growing without bound.
const maxQueuedBytes = 8 << 20

// outputDescription is the per-destination pipeline. Each destination has
// its own so that one that fails can end (or, later, restart) alone, and so
// that nothing upstream ever re-sends caps to rtmp2sink (which would make it
// repeat onMetaData and sequence headers at timestamp 0).
//
// sync=false: timing was settled upstream; waiting on the clock here only
// adds latency. async-connect: the state change does not block on the
// network; a refused connection arrives as a bus error.
const outputDescription = "appsrc name=src format=time is-live=true caps=video/x-flv" +
	" ! rtmp2sink name=sink sync=false async-connect=true"

// output feeds one destination. Its send side is owned by the stream's tag
// pump goroutine; stats are read from anywhere under mu.
type output struct {
	Output
	pipe *gst.Pipeline
	src  *app.Source

	hasVideo bool // media waits for a keyframe
	onChange func()

	// Owned by the tag pump.
	started      bool
	waitKeyframe bool
	wire         []byte

	mu    sync.Mutex
	stats OutputStats
	err   *OutputError // why it failed, if it did
}

func newOutput(o Output, hasVideo bool, onChange func()) (*output, error) {
	pipe, err := newPipeline(outputDescription)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", o.ID, err)
	}
	src, err := pipe.GetElementByName("src")
	if err == nil {
		var sink *gst.Element
		sink, err = pipe.GetElementByName("sink")
		if err == nil {
			// Set as a property, never in the description: the key must
			// not end up in any string GStreamer might log.
			err = sink.SetProperty("location", o.URL.Secret())
		}
	}
	if err != nil {
		releasePipeline(pipe)
		return nil, fmt.Errorf("output %s: %w", o.ID, err)
	}
	return &output{
		Output:   o,
		hasVideo: hasVideo,
		onChange: onChange,
		pipe:     pipe,
		src:      app.SrcFromElement(src),
		stats:    OutputStats{ID: o.ID, URL: o.URL.String(), State: OutputConnecting},
	}, nil
}

// write sends t, first replaying the cached headers if this output has not
// started yet, and holding back media until a keyframe when there is video.
func (o *output) write(t Tag, headers []Tag) {
	if o.state() == OutputFailed {
		return
	}
	if !o.started {
		o.started = true
		o.waitKeyframe = o.hasVideo
		for _, h := range headers {
			o.send(h)
		}
		if !t.IsMedia() {
			return // it was among the headers
		}
	}
	if !t.IsMedia() {
		o.send(t)
		return
	}
	if o.waitKeyframe {
		if !t.IsKeyframe() {
			return
		}
		o.waitKeyframe = false
	}
	if o.src.GetCurrentLevelBytes() > maxQueuedBytes {
		o.waitKeyframe = o.hasVideo
		o.mu.Lock()
		o.stats.Dropped++
		o.mu.Unlock()
		return
	}
	o.send(t)
}

func (o *output) send(t Tag) {
	o.wire = t.AppendTo(o.wire[:0])
	buf := gst.NewBufferFromBytes(o.wire)
	ret := o.src.PushBuffer(buf)
	release(buf)
	if ret != gst.FlowOK {
		return // flushing or failed: the bus reports why
	}
	o.mu.Lock()
	o.stats.Bytes += uint64(len(o.wire))
	if t.IsMedia() {
		o.stats.Frames++
	}
	live := false
	if t.IsKeyframe() {
		o.stats.Keyframes++
		if o.stats.State == OutputConnecting {
			o.stats.State, live = OutputLive, true
		}
	}
	o.mu.Unlock()
	if live {
		o.onChange()
	}
}

func (o *output) state() OutputState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats.State
}

// end records a final state: OutputFailed with err, or OutputEnded.
func (o *output) end(err *OutputError) {
	o.mu.Lock()
	if o.stats.State == OutputFailed {
		o.mu.Unlock()
		return
	}
	o.stats.State = OutputEnded
	if err != nil {
		o.stats.State, o.stats.Error, o.err = OutputFailed, err.Err.Error(), err
	}
	o.mu.Unlock()
	o.onChange()
}

func (o *output) failed() *OutputError {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *output) snapshot() OutputStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// OutputError says which destination failed and why, stream key redacted.
type OutputError struct {
	ID  string
	URL string // redacted
	Err error
}

func (e *OutputError) Error() string {
	return fmt.Sprintf("destination %s (%s): %v", e.ID, e.URL, e.Err)
}

func (e *OutputError) Unwrap() error { return e.Err }

// failure turns a pipeline error into an OutputError with the key removed
// from GStreamer's text, which can quote the location.
func (o *output) failure(err error) *OutputError {
	return &OutputError{ID: o.ID, URL: o.URL.String(), Err: errors.New(o.URL.Redact(err.Error()))}
}
