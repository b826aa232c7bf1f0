package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Output is one destination of a stream.
type Output struct {
	ID  string // stable id the room and API refer to
	URL URL
	// ConnectInfo holds extra fields for the RTMP connect command
	// (nanoStream's rtmpconnectinfo): a flat object of strings, numbers
	// and booleans. See ValidateConnectInfo.
	ConnectInfo map[string]any
}

// OutputState is where an output is in its life.
type OutputState string

const (
	OutputConnecting   OutputState = "connecting" // first session, no keyframe out yet
	OutputLive         OutputState = "live"
	OutputReconnecting OutputState = "reconnecting" // the destination dropped; trying again
	OutputFailed       OutputState = "failed"
	OutputEnded        OutputState = "ended"
)

// OutputStats is a snapshot of one output.
type OutputStats struct {
	ID        string
	URL       string // stream key redacted
	State     OutputState
	Bytes     uint64 // bytes written to the destination, every session
	Frames    uint64 // audio and video frames sent
	Keyframes uint64
	// Dropped counts frames that did not reach the destination because
	// it fell behind or while it was reconnecting.
	Dropped uint64
	// DataDropped counts onCuePoint and onTextData messages not delivered
	// because no session was up (see output's doc comment).
	DataDropped uint64
	Reconnects  uint64 // sessions started after a drop
	Error       string // why it failed, stream key redacted
}

// MaxOutputs bounds a stream's destinations: each is a full copy of the
// stream on the uplink, and eight 6 Mb/s copies already exceed what most
// hosts running roomcast have.
const MaxOutputs = 8

// maxQueuedBytes bounds what an output buffers for a slow destination:
// about 10 s of a 6 Mb/s stream. Past it the output drops frames up to the
// next keyframe instead of growing without bound.
const maxQueuedBytes = 8 << 20

// backoff is the reconnect policy. Its fields are the package defaults
// below; tests shorten them.
type backoff struct {
	min, max time.Duration
	attempts int           // consecutive failures before giving up
	stable   time.Duration // a session this long resets the failure count
}

var defaultBackoff = backoff{
	// 1 s first: a server restarting or a load balancer moving the
	// connection is not hammered, and viewers see a stall, not an end.
	min: time.Second,
	// Doubling to 10 s: YouTube and Twitch keep a silent broadcast open
	// for roughly 30–60 s; waits longer than 10 s would waste that.
	max: 10 * time.Second,
	// 6 failures take 1+1+2+4+8+10 = 26 s of waiting, inside that window;
	// an ingest still refusing after it is not coming back soon.
	attempts: 6,
	// A session shorter than 10 s counts as a failure, so a destination
	// that accepts and drops at once cannot keep the output looping.
	stable: 10 * time.Second,
}

// output feeds one destination. The stream's tag pump hands it tags with
// enqueue; its own goroutine (run) owns the RTMP session, reconnects, and
// writes the queue. Stats are read from anywhere under mu.
//
// Data sent while no session is up: onCuePoint and onTextData messages
// are dropped and counted in DataDropped, never queued for the next
// session. A cue point marks a moment of the stream ("ad break now"); the
// new session resumes at a later keyframe, so a replayed marker would fire
// late at the wrong moment, which is worse than a missed one, and the
// sender can see the count and resend. onMetaData updates are not lost:
// every session starts with the current merged onMetaData.
type output struct {
	Output
	connectInfo amfObject
	hasVideo    bool
	headers     func() []Tag // the stream's cached header tags
	keyframe    func()       // asks the stream for a keyframe soon
	onChange    func()
	tlsConfig   *tls.Config
	policy      backoff
	log         *slog.Logger

	cancel context.CancelFunc // ends run without a clean unpublish
	wake   chan struct{}      // tags queued or stop requested
	done   chan struct{}      // closed when run has returned

	mu           sync.Mutex
	connected    bool // a session is up: enqueue keeps tags
	waitKeyframe bool // media waits for a keyframe
	queue        []Tag
	queued       int  // bytes in queue
	stopping     bool // send what is queued, unpublish, end
	stats        OutputStats
	err          *OutputError
}

func newOutput(o Output, s *Stream) (*output, error) {
	info, err := connectFields(o.ConnectInfo)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", o.ID, err)
	}
	return &output{
		Output:      o,
		connectInfo: info,
		hasVideo:    s.video != nil,
		headers:     s.headerTags,
		keyframe:    s.requestKeyframeSoon,
		onChange:    s.opts.OnChange,
		tlsConfig:   s.tlsConfig,
		policy:      s.backoff,
		log:         s.log.With("output", o.ID, "url", o.URL.String()),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		stats:       OutputStats{ID: o.ID, URL: o.URL.String(), State: OutputConnecting},
	}, nil
}

// enqueue hands t to the output's goroutine. It runs on the tag pump and
// never blocks: a destination that falls behind loses frames up to the
// next keyframe instead.
func (o *output) enqueue(t Tag) {
	o.mu.Lock()
	media := t.IsMedia()
	switch {
	case o.stopping:
	case !o.connected:
		// Headers are replayed when a session starts; other data is lost.
		if media && o.stats.State == OutputReconnecting {
			o.stats.Dropped++
		}
		if isUserData(t) {
			o.stats.DataDropped++
		}
	case media && o.waitKeyframe && !t.IsKeyframe():
	case media && o.queued > maxQueuedBytes:
		o.waitKeyframe = o.hasVideo
		o.stats.Dropped++
	default:
		if t.IsKeyframe() {
			o.waitKeyframe = false
		}
		o.queue = append(o.queue, t)
		o.queued += len(t.Data)
		o.mu.Unlock()
		o.signal()
		return
	}
	o.mu.Unlock()
}

// isUserData reports whether t is an onCuePoint or onTextData message
// (the only script tags besides onMetaData).
func isUserData(t Tag) bool { return t.Type == TagScript && !isMetaData(t.Data) }

func (o *output) signal() {
	select {
	case o.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// stop asks run to send what is queued, end the session cleanly and
// return.
func (o *output) stop() {
	o.mu.Lock()
	o.stopping = true
	o.mu.Unlock()
	o.signal()
}

func (o *output) isStopping() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stopping
}

// run connects, streams, and reconnects after drops until stopped, ctx
// ends, or the destination cannot be reached. A first connection that
// fails ends the output at once: a wrong URL or key should say so now,
// not after a minute of retries.
func (o *output) run(ctx context.Context) {
	defer close(o.done)
	failures := 0
	for sessions := 0; ; {
		if sessions > 0 && !o.sleep(ctx, o.policy.delay(failures)) {
			o.end(nil)
			return
		}
		p, err := dialRTMP(ctx, o.URL, o.connectInfo, o.tlsConfig)
		if err != nil {
			if ctx.Err() != nil || o.isStopping() {
				o.end(nil)
				return
			}
			failures++
			if sessions == 0 {
				o.end(o.failure(err))
				return
			}
			if failures >= o.policy.attempts {
				o.end(o.failure(fmt.Errorf("gave up after %d failed reconnects: %w", failures, err)))
				return
			}
			o.log.Warn("reconnect failed", "consecutive_failures", failures, "err", o.URL.Redact(err.Error()))
			continue
		}
		sessions++
		started := time.Now()
		err = o.session(ctx, p, sessions > 1)
		if err == nil || ctx.Err() != nil {
			o.end(nil)
			return
		}
		if time.Since(started) >= o.policy.stable {
			failures = 0
		} else {
			failures++
		}
		if failures >= o.policy.attempts {
			o.end(o.failure(fmt.Errorf("dropped %d times in a row: %w", failures, err)))
			return
		}
		o.log.Warn("destination dropped; reconnecting", "err", o.URL.Redact(err.Error()))
		o.setState(OutputReconnecting)
	}
}

// delay is the wait before the next attempt after failures consecutive
// failures: min, min, 2×min, 4×min ... up to max.
func (b backoff) delay(failures int) time.Duration {
	return min(b.min<<max(failures-1, 0), b.max)
}

// sleep waits d; it returns false if the output should end instead.
func (o *output) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-o.wake:
			if o.isStopping() {
				return false
			}
		case <-t.C:
			return true
		}
	}
}

// session streams on p until it drops (the error says why), ctx ends, or
// stop is asked (nil, after a clean unpublish).
func (o *output) session(ctx context.Context, p *rtmpPublisher, reconnect bool) error {
	o.mu.Lock()
	o.connected, o.waitKeyframe = true, o.hasVideo
	o.queue, o.queued = nil, 0
	if reconnect {
		o.stats.Reconnects++
	}
	base := o.stats.Bytes
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.connected = false
		for _, t := range o.queue {
			if isUserData(t) {
				o.stats.DataDropped++
			}
		}
		o.queue, o.queued = nil, 0
		o.mu.Unlock()
	}()

	// Headers are read after connected is set: a header that changes
	// from now on is also queued, so none is missed.
	for _, h := range o.headers() {
		if err := p.writeTag(h); err != nil {
			p.close(false)
			return err
		}
	}
	// WebRTC encoders send keyframes only when asked: without this the
	// session would wait up to the keyframe interval for its first frame.
	o.keyframe()

	for {
		select {
		case <-ctx.Done():
			p.close(false)
			return ctx.Err()
		case <-p.done():
			p.close(false)
			return fmt.Errorf("connection lost: %w", p.err())
		case <-o.wake:
		}
		o.mu.Lock()
		batch, stopping := o.queue, o.stopping
		o.queue, o.queued = nil, 0
		o.mu.Unlock()
		for i, t := range batch {
			if err := p.writeTag(t); err != nil {
				if rerr := p.err(); rerr != nil {
					err = fmt.Errorf("connection lost: %w", rerr) // says more than a write on a closed socket
				}
				o.mu.Lock()
				for _, u := range batch[i:] {
					if isUserData(u) {
						o.stats.DataDropped++
					}
				}
				o.mu.Unlock()
				p.close(false)
				return err
			}
			o.sent(t, base+p.bytesWritten())
		}
		if stopping {
			p.close(true)
			o.mu.Lock()
			o.stats.Bytes = base + p.bytesWritten()
			o.mu.Unlock()
			return nil
		}
	}
}

// sent updates the stats after t went out.
func (o *output) sent(t Tag, bytes uint64) {
	o.mu.Lock()
	o.stats.Bytes = bytes
	live := false
	if t.IsMedia() {
		o.stats.Frames++
		if t.IsKeyframe() {
			o.stats.Keyframes++
		}
		if (t.IsKeyframe() || !o.hasVideo) && o.stats.State != OutputLive {
			o.stats.State, live = OutputLive, true
		}
	}
	o.mu.Unlock()
	if live {
		o.onChange()
	}
}

func (o *output) setState(st OutputState) {
	o.mu.Lock()
	o.stats.State = st
	o.mu.Unlock()
	o.onChange()
}

func (o *output) state() OutputState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats.State
}

// end records a final state: OutputFailed with err, or OutputEnded.
func (o *output) end(err *OutputError) {
	o.mu.Lock()
	if o.stats.State == OutputFailed || o.stats.State == OutputEnded {
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

// failure turns a session error into an OutputError with the key removed
// from its text: servers can quote the stream name they refused.
func (o *output) failure(err error) *OutputError {
	return &OutputError{ID: o.ID, URL: o.URL.String(), Err: errors.New(o.URL.Redact(err.Error()))}
}
