package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/egress"
)

// State is where a broadcast is in its life. Final states: stopped, failed.
type State string

const (
	StateSignalling   State = "signalling"   // joining the room, waiting for tracks
	StateConnected    State = "connected"    // subscribed; the first keyframe is not out yet
	StateBroadcasting State = "broadcasting" // at least one destination receives media
	StateReconnecting State = "reconnecting" // every destination dropped; roomcast is reconnecting
	StateStopping     State = "stopping"
	StateStopped      State = "stopped"
	StateFailed       State = "failed"
)

// Final reports whether s is an end state.
func (s State) Final() bool { return s == StateStopped || s == StateFailed }

// Info is a broadcast as the API, the CLI and the room see it.
type Info struct {
	ID        string       `json:"id"`
	Room      string       `json:"room"`
	Identity  string       `json:"identity"`
	State     State        `json:"state"`
	CreatedAt time.Time    `json:"createdAt"`
	LiveAt    *time.Time   `json:"liveAt,omitempty"`
	EndedAt   *time.Time   `json:"endedAt,omitempty"`
	EndReason string       `json:"endReason,omitempty"`
	Outputs   []OutputInfo `json:"outputs"`
	Stats     *Stats       `json:"stats,omitempty"`
	Error     *Error       `json:"error,omitempty"`
	// Warning is a problem the broadcast carries on through, e.g. the
	// participant republished its camera in another codec (6004
	// track_changed); absent once it is over.
	Warning *Error `json:"warning,omitempty"`
}

// OutputInfo is one destination; URL has its stream key redacted.
type OutputInfo struct {
	ID            string `json:"id"`
	URL           string `json:"url"`
	State         string `json:"state"`
	Bytes         uint64 `json:"bytesSent"`
	Frames        uint64 `json:"framesSent"`
	Keyframes     uint64 `json:"keyframesSent"`
	DroppedFrames uint64 `json:"droppedFrames"`
	// DataDropped counts cue points and text messages sent while this
	// destination had no session (reconnecting): they are dropped, since
	// a late ad-break marker is worse than none.
	DataDropped uint64 `json:"dataDropped"`
	Reconnects  uint64 `json:"reconnects"`
	Error       string `json:"error,omitempty"`
}

// Stats are the media counters of a running or ended broadcast. Rates
// are measured over the last two seconds.
type Stats struct {
	VideoCodec    string  `json:"videoCodec,omitempty"` // out
	AudioCodec    string  `json:"audioCodec,omitempty"`
	Passthrough   bool    `json:"passthrough"`
	Width         int     `json:"width,omitempty"` // out
	Height        int     `json:"height,omitempty"`
	FrameRate     float64 `json:"frameRate"`
	VideoBitrate  int64   `json:"videoBitrate"` // bits per second
	AudioBitrate  int64   `json:"audioBitrate"`
	VideoFrames   uint64  `json:"videoFrames"`
	AudioFrames   uint64  `json:"audioFrames"`
	Keyframes     uint64  `json:"keyframes"`
	DroppedFrames uint64  `json:"droppedFrames"` // in the pipeline and at every output
	Bytes         uint64  `json:"bytes"`         // FLV bytes out of the muxer
	UptimeSeconds float64 `json:"uptimeSeconds"` // since the broadcast went live
	// What roomcast did with the video, and why.
	VideoCodecIn   string `json:"videoCodecIn,omitempty"`
	Transcoding    bool   `json:"transcoding"`
	VideoReason    string `json:"videoReason,omitempty"`
	SimulcastLayer string `json:"simulcastLayer,omitempty"`
	WidthIn        int    `json:"widthIn,omitempty"` // what the publisher sends now
	HeightIn       int    `json:"heightIn,omitempty"`
}

// broadcast is one participant going out to its destinations. Its run
// goroutine owns the room subscription and the egress stream; everyone
// else reads a snapshot under mu or waits on changed.
type broadcast struct {
	id       string
	room     string
	identity string
	outputs  []egress.Output // as started; the stream owns them after
	media    Media
	metadata map[string]any // custom onMetaData keys from the start
	created  time.Time
	// metadataLimit bounds metadata messages from every door together.
	metadataLimit *rate.Limiter
	cancel        context.CancelFunc
	done          chan struct{} // closed when run returns

	mu          sync.Mutex
	state       State
	liveAt      time.Time
	endedAt     time.Time
	reason      string
	err         *Error
	warning     *Error
	stream      *egress.Stream
	layer       string        // the simulcast layer subscribed to
	outputCount int           // outputs ever added, for their ids
	history     []State       // every state entered, in order, for Follow
	changed     chan struct{} // closed and replaced on every change
}

// run is the broadcast's owner goroutine.
func (b *broadcast) run(ctx context.Context, rooms Rooms, cfg config.Broadcast, log *slog.Logger) {
	defer close(b.done)
	log = log.With("broadcast", b.id, "room", b.room, "identity", b.identity)

	req := b.media.subscribeRequest(b.room, b.identity, cfg)
	req.OnWarning = b.setWarning
	sub, err := rooms.Subscribe(ctx, req)
	if err != nil {
		b.end(ctx, err, log)
		return
	}
	tracks := sub.Tracks
	defer sub.Leave()
	b.mu.Lock()
	b.layer = sub.Layer
	b.mu.Unlock()
	b.setState(StateConnected)

	stream, err := egress.New(egress.Options{
		Outputs:          b.outputs,
		KeyframeInterval: cfg.KeyframeInterval,
		AudioSampleRate:  b.media.AudioSampleRate,
		AudioBitrate:     b.media.AudioBitrate,
		Video:            b.media.Video,
		Metadata:         b.metadata,
		MaxMetadataBytes: cfg.MaxMetadataBytes,
		Logger:           log,
		OnChange:         b.onStreamChange,
	}, tracks...)
	if err != nil {
		for _, t := range tracks {
			_ = t.Close()
		}
		b.end(ctx, err, log)
		return
	}
	b.mu.Lock()
	b.stream = stream
	b.mu.Unlock()

	log.Info("broadcast connected, starting media")
	b.end(ctx, stream.Run(ctx), log)
}

// end records how the broadcast ended: a stop request and the participant
// leaving are normal; anything else is a failure.
func (b *broadcast) end(ctx context.Context, err error, log *slog.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endedAt = time.Now()
	switch {
	case err == nil || ctx.Err() != nil:
		b.enterLocked(StateStopped)
		b.reason = "stopped on request"
	case errors.Is(err, egress.ErrTracksEnded):
		b.enterLocked(StateStopped)
		b.reason = "participant's tracks ended"
	default:
		b.enterLocked(StateFailed)
		b.err = toError(err)
		b.reason = b.err.Message
	}
	log.Info("broadcast ended", "state", b.state, "reason", b.reason)
	b.notifyLocked()
}

func (b *broadcast) setState(s State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Final() {
		return
	}
	b.enterLocked(s)
	b.notifyLocked()
}

// setWarning records a problem the broadcast carries on through, or with
// nil that it is over. It runs on the room adapter's goroutines.
func (b *broadcast) setWarning(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.warning = nil
	} else {
		b.warning = toError(err)
	}
	b.notifyLocked()
}

func (b *broadcast) enterLocked(s State) {
	b.state = s
	b.history = append(b.history, s)
}

// onStreamChange runs on egress goroutines when an output changes state.
// The broadcast is broadcasting while any destination is live, and
// reconnecting while none is but one is trying to get back.
func (b *broadcast) onStreamChange() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stream == nil {
		return
	}
	live, reconnecting := false, false
	for _, o := range b.stream.Stats().Outputs {
		live = live || o.State == egress.OutputLive
		reconnecting = reconnecting || o.State == egress.OutputReconnecting
	}
	switch {
	case live && (b.state == StateConnected || b.state == StateReconnecting):
		if b.liveAt.IsZero() {
			b.liveAt = time.Now()
		}
		b.enterLocked(StateBroadcasting)
	case !live && reconnecting && b.state == StateBroadcasting:
		b.enterLocked(StateReconnecting)
	}
	b.notifyLocked()
}

func (b *broadcast) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// stop asks the owner to end; it does not wait.
func (b *broadcast) stop() {
	b.mu.Lock()
	if !b.state.Final() && b.state != StateStopping {
		b.enterLocked(StateStopping)
		b.notifyLocked()
	}
	b.mu.Unlock()
	b.cancel()
}

// currentState is the state alone, without gathering stats.
func (b *broadcast) currentState() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// info returns a snapshot and the channel that closes on the next change.
func (b *broadcast) info() (Info, <-chan struct{}) {
	in, _, changed := b.snapshot()
	return in, changed
}

// snapshot is info plus every state entered so far.
func (b *broadcast) snapshot() (Info, []State, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	history := b.history[:len(b.history):len(b.history)]
	in := Info{
		ID:        b.id,
		Room:      b.room,
		Identity:  b.identity,
		State:     b.state,
		CreatedAt: b.created,
		EndReason: b.reason,
		Error:     b.err,
		Warning:   b.warning,
	}
	if !b.liveAt.IsZero() {
		in.LiveAt = &b.liveAt
	}
	if !b.endedAt.IsZero() {
		in.EndedAt = &b.endedAt
	}
	if b.stream == nil {
		for _, o := range b.outputs {
			in.Outputs = append(in.Outputs, OutputInfo{ID: o.ID, URL: o.URL.String(), State: string(egress.OutputConnecting)})
		}
		return in, history, b.changed
	}
	st := b.stream.Stats()
	in.Stats = &Stats{
		VideoCodec:     st.VideoCodec,
		AudioCodec:     st.AudioCodec,
		Passthrough:    st.Passthrough,
		Width:          st.Width,
		Height:         st.Height,
		FrameRate:      st.FrameRate,
		VideoBitrate:   int64(st.VideoBitrate),
		AudioBitrate:   int64(st.AudioBitrate),
		VideoFrames:    st.VideoFrames,
		AudioFrames:    st.AudioFrames,
		Keyframes:      st.Keyframes,
		Bytes:          st.Bytes,
		DroppedFrames:  st.DroppedFrames,
		VideoCodecIn:   st.VideoCodecIn,
		Transcoding:    st.Transcoding,
		VideoReason:    st.VideoReason,
		SimulcastLayer: b.layer,
		WidthIn:        st.VideoWidthIn,
		HeightIn:       st.VideoHeightIn,
	}
	if !b.liveAt.IsZero() {
		end := time.Now()
		if !b.endedAt.IsZero() {
			end = b.endedAt
		}
		in.Stats.UptimeSeconds = end.Sub(b.liveAt).Seconds()
	}
	for _, o := range st.Outputs {
		in.Stats.DroppedFrames += o.Dropped
		in.Outputs = append(in.Outputs, OutputInfo{ID: o.ID, URL: o.URL, State: string(o.State), Bytes: o.Bytes,
			Frames: o.Frames, Keyframes: o.Keyframes, DroppedFrames: o.Dropped, DataDropped: o.DataDropped,
			Reconnects: o.Reconnects, Error: o.Error})
	}
	return in, history, b.changed
}
