// Package forcekey makes a video encoder in a running GStreamer pipeline
// send a keyframe on its next frame, as a WebRTC encoder answers a PLI.
// Test publishers need that to behave like browsers, which send keyframes
// only when asked.
//
// Most encoders (x264enc, vp8enc, vp9enc) take the standard upstream
// force-key-unit event. av1enc in GStreamer 1.22 does not: it accepts the
// event but never passes AOM_EFLAG_FORCE_KF to libaom, and libaom makes no
// keyframe when keyframe-max-dist changes mid-stream either (both tried).
// So an av1enc is replaced by a new one made the same way, whose first
// frame is a keyframe with a sequence header, as an encoder restarted by a
// browser would send.
package forcekey

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/go-gst/go-gst/gst"
)

// Encoder is one encoder element of a pipeline.
type Encoder struct {
	bin  *gst.Bin
	args []string // factory, then property=value
	// replace: the encoder ignores force-key-unit events (av1enc).
	replace bool

	mu        sync.Mutex
	el        *gst.Element
	swapping  bool // a replacement waits for the next frame
	swapError error
}

// New wraps el, a child of bin (the pipeline). desc is how el was made, in
// gst-launch syntax ("av1enc cpu-used=10 usage-profile=realtime"), so that
// a replacement can be made the same way; only its first word, the
// factory, and property=value words may appear.
func New(bin *gst.Bin, el *gst.Element, desc string) *Encoder {
	args := strings.Fields(desc)
	return &Encoder{bin: bin, el: el, args: args, replace: len(args) > 0 && args[0] == "av1enc"}
}

// Request asks for a keyframe on the next frame. It does not block: an
// av1enc is replaced on the streaming thread just before the next frame
// reaches it. Requests while a replacement is pending are one request.
func (e *Encoder) Request() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.swapError; err != nil {
		return err
	}
	if !e.replace {
		return forceKeyUnit(e.el)
	}
	if e.swapping {
		return nil
	}
	sink := e.el.GetStaticPad("sink")
	upstream := sink.GetPeer()
	if upstream == nil {
		return fmt.Errorf("forcekey: %s is not linked", e.el.GetName())
	}
	e.swapping = true
	upstream.AddProbe(gst.PadProbeTypeBlock|gst.PadProbeTypeBuffer, func(*gst.Pad, *gst.PadProbeInfo) gst.PadProbeReturn {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.swapping = false
		if err := e.swap(upstream); err != nil {
			e.swapError = err
		}
		// The pad pushes to its peer as it is after the probe: the new
		// encoder, which first gets the sticky caps and segment.
		return gst.PadProbeRemove
	})
	return nil
}

// swap replaces the encoder while upstream is blocked, on the streaming
// thread, so the old one is idle.
func (e *Encoder) swap(upstream *gst.Pad) error {
	old := e.el
	downstream := old.GetStaticPad("src").GetPeer()
	if downstream == nil {
		return fmt.Errorf("forcekey: %s has no downstream peer", old.GetName())
	}
	next, err := e.make(old.GetName())
	if err != nil {
		return err
	}
	upstreamEl, downstreamEl := upstream.GetParentElement(), downstream.GetParentElement()
	upstreamEl.Unlink(old)
	old.Unlink(downstreamEl)
	if err := e.bin.Remove(old); err != nil {
		return fmt.Errorf("forcekey: remove %s: %w", old.GetName(), err)
	}
	_ = old.SetState(gst.StateNull)
	if err := e.bin.Add(next); err != nil {
		return fmt.Errorf("forcekey: add encoder: %w", err)
	}
	if err := upstreamEl.Link(next); err != nil {
		return fmt.Errorf("forcekey: link encoder: %w", err)
	}
	if err := next.Link(downstreamEl); err != nil {
		return fmt.Errorf("forcekey: link encoder: %w", err)
	}
	if !next.SyncStateWithParent() {
		return fmt.Errorf("forcekey: start %s", e.args[0])
	}
	e.el = next
	return nil
}

// make builds a new encoder from the description, with the old one's
// name (the old one leaves the bin first).
func (e *Encoder) make(name string) (*gst.Element, error) {
	el, err := gst.NewElement(e.args[0])
	if err != nil {
		return nil, fmt.Errorf("forcekey: make %s: %w", e.args[0], err)
	}
	for _, a := range e.args[1:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("forcekey: %q in %q is not property=value", a, strings.Join(e.args, " "))
		}
		if k != "name" {
			el.SetArg(k, v)
		}
	}
	el.SetArg("name", name)
	return el, nil
}

// forceKeyUnit sends the upstream GstForceKeyUnit event that
// gst_video_event_new_upstream_force_key_unit builds: running-time NONE
// means "the next frame"; all-headers repeats the parameter sets with it.
func forceKeyUnit(enc *gst.Element) error {
	st := gst.NewStructureFromString("GstForceKeyUnit, running-time=(guint64)18446744073709551615, all-headers=(boolean)true, count=(uint)0")
	ev := gst.NewCustomEvent(gst.EventTypeCustomUpstream, st)
	ok := enc.SendEvent(ev)
	runtime.SetFinalizer(ev, nil)
	ev.Unref()
	if !ok {
		return fmt.Errorf("forcekey: %s refused the force-key-unit event", enc.GetName())
	}
	return nil
}
