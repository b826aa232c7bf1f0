package egress

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"
)

var initOnce sync.Once

// initGStreamer initializes GStreamer once per process; go-gst requires it
// before any element is made.
func initGStreamer() { initOnce.Do(func() { gst.Init(nil) }) }

// livePipelines counts GStreamer pipelines made and not yet released, so
// tests and metrics can see that a finished broadcast left none behind.
var livePipelines atomic.Int64

// LivePipelines returns how many GStreamer pipelines exist right now.
func LivePipelines() int { return int(livePipelines.Load()) }

// newPipeline parses a gst-launch description. Every pipeline made here
// must end in releasePipeline.
func newPipeline(desc string) (*gst.Pipeline, error) {
	initGStreamer()
	p, err := gst.NewPipelineFromString(desc)
	if err != nil {
		return nil, fmt.Errorf("build pipeline: %w", err)
	}
	livePipelines.Add(1)
	return p, nil
}

// releasePipeline stops p; setting NULL frees its elements' resources
// (sockets, threads), and the Go wrapper's finalizer drops the last ref.
func releasePipeline(p *gst.Pipeline) {
	_ = p.SetState(gst.StateNull)
	livePipelines.Add(-1)
}

// release frees a buffer or sample now instead of at the next GC: go-gst
// puts a finalizer on every wrapper, and at packet rate waiting for the GC
// lets RSS climb (DESIGN.md measured 104 MB → 65 MB over 60 s).
func release[T interface{ Unref() }](obj T) {
	runtime.SetFinalizer(obj, nil)
	obj.Unref()
}

// busEvent is what a bus watcher reports: an error or the end of stream.
type busEvent struct {
	source string // which pipeline: "main" or an output id
	eos    bool
	err    error
}

// errPipeline marks an error GStreamer reported on a bus.
var errPipeline = errors.New("pipeline error")

// watchBus forwards p's errors and EOS to events until done is closed.
// Polling with a timeout needs no GLib main loop and ends promptly.
func watchBus(p *gst.Pipeline, source string, events chan<- busEvent, done <-chan struct{}) {
	bus := p.GetPipelineBus()
	for {
		select {
		case <-done:
			return
		default:
		}
		// Popped messages carry finalizers: never Unref them here.
		msg := bus.TimedPopFiltered(gst.ClockTime(100*time.Millisecond), gst.MessageError|gst.MessageEOS)
		if msg == nil {
			continue
		}
		ev := busEvent{source: source}
		switch msg.Type() {
		case gst.MessageEOS:
			ev.eos = true
		case gst.MessageError:
			gerr := msg.ParseError()
			ev.err = fmt.Errorf("%w: %s: %s", errPipeline, msg.Source(), gerr.Error())
		}
		select {
		case events <- ev:
		case <-done:
			return
		}
	}
}
