package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/egress"
)

// StartRequest asks for a participant's camera and microphone to go out to
// one or more RTMP destinations.
type StartRequest struct {
	Room     string          `json:"room"`
	Identity string          `json:"identity"`
	Outputs  []OutputRequest `json:"outputs"`
	// Media choices, in media.go: source "camera" (default) or "screen",
	// video mode and targets, audio targets.
	Source string        `json:"source,omitempty"`
	Video  *VideoRequest `json:"video,omitempty"`
	Audio  *AudioRequest `json:"audio,omitempty"`
}

// OutputRequest is one destination: an rtmp:// or rtmps:// URL whose last
// path element is the stream key.
type OutputRequest struct {
	URL string `json:"url"`
}

// maxOutputs bounds fan-out per broadcast: each output is an RTMP session
// with its own socket and buffer.
const maxOutputs = 8

// keepEnded is how many ended broadcasts stay visible to get and list.
const keepEnded = 100

// Manager owns every broadcast of this process. The HTTP API, the CLI
// (through the API) and the room protocol are doors onto its methods.
type Manager struct {
	cfg   config.Broadcast
	rooms Rooms
	log   *slog.Logger

	mu         sync.Mutex
	broadcasts map[string]*broadcast
	order      []string // ids, oldest first
	closed     bool
	wg         sync.WaitGroup
}

// NewManager returns a Manager that reaches rooms through rooms.
func NewManager(cfg config.Broadcast, rooms Rooms, log *slog.Logger) *Manager {
	return &Manager{cfg: cfg, rooms: rooms, log: log, broadcasts: map[string]*broadcast{}}
}

// Start validates req and starts the broadcast; it returns at once in state
// signalling. Use Wait to follow it.
func (m *Manager) Start(req StartRequest) (Info, error) {
	outputs, err := validate(req)
	if err != nil {
		return Info{}, err
	}
	media, err := validateMedia(req, m.cfg)
	if err != nil {
		return Info{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &broadcast{
		id:       newID("bc_"),
		room:     req.Room,
		identity: req.Identity,
		outputs:  outputs,
		media:    media,
		created:  time.Now(),
		cancel:   cancel,
		done:     make(chan struct{}),
		state:    StateSignalling,
		changed:  make(chan struct{}),
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		cancel()
		return Info{}, newError(CodeShuttingDown, "roomcast is shutting down and takes no new broadcasts")
	}
	active := 0
	for _, o := range m.broadcasts {
		if o.currentState().Final() {
			continue
		}
		active++
		if o.room == req.Room && o.identity == req.Identity {
			m.mu.Unlock()
			cancel()
			return Info{}, newError(CodeBroadcastExists, "participant %q in room %q is already broadcasting as %s: add outputs to it or stop it first", req.Identity, req.Room, o.id)
		}
	}
	if m.cfg.MaxActive > 0 && active >= m.cfg.MaxActive {
		m.mu.Unlock()
		cancel()
		return Info{}, newError(CodeCapacity, "%d broadcasts are active, the configured maximum (broadcast.max_active)", active)
	}
	m.broadcasts[b.id] = b
	m.order = append(m.order, b.id)
	m.pruneLocked()
	m.wg.Add(1)
	m.mu.Unlock()

	m.log.Info("broadcast starting", "broadcast", b.id, "room", b.room, "identity", b.identity, "outputs", len(outputs))
	go func() {
		defer m.wg.Done()
		b.run(ctx, m.rooms, m.cfg, m.log)
	}()
	in, _ := b.info()
	return in, nil
}

func validate(req StartRequest) ([]egress.Output, error) {
	switch {
	case req.Room == "":
		return nil, newError(CodeInvalidRequest, `field "room" is required`)
	case req.Identity == "":
		return nil, newError(CodeInvalidRequest, `field "identity" is required`)
	case len(req.Outputs) == 0:
		return nil, newError(CodeInvalidRequest, `field "outputs" needs at least one destination`)
	case len(req.Outputs) > maxOutputs:
		return nil, newError(CodeInvalidRequest, `field "outputs" has %d destinations; at most %d are allowed`, len(req.Outputs), maxOutputs)
	}
	outputs := make([]egress.Output, len(req.Outputs))
	for i, o := range req.Outputs {
		u, err := egress.ParseURL(o.URL)
		if err != nil {
			return nil, newError(CodeInvalidURL, "field \"outputs[%d].url\": %v", i, err)
		}
		outputs[i] = egress.Output{ID: fmt.Sprintf("out_%d", i+1), URL: u}
	}
	return outputs, nil
}

// pruneLocked forgets the oldest ended broadcasts beyond keepEnded.
func (m *Manager) pruneLocked() {
	ended := 0
	for i := len(m.order) - 1; i >= 0; i-- {
		b := m.broadcasts[m.order[i]]
		if !b.currentState().Final() {
			continue
		}
		if ended++; ended > keepEnded {
			delete(m.broadcasts, b.id)
			m.order = append(m.order[:i], m.order[i+1:]...)
		}
	}
}

func (m *Manager) get(id string) (*broadcast, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.broadcasts[id]
	if !ok {
		return nil, newError(CodeBroadcastNotFound, "no broadcast %q", id)
	}
	return b, nil
}

// Get returns one broadcast.
func (m *Manager) Get(id string) (Info, error) {
	b, err := m.get(id)
	if err != nil {
		return Info{}, err
	}
	in, _ := b.info()
	return in, nil
}

// List returns every broadcast this process knows, oldest first.
func (m *Manager) List() []Info {
	m.mu.Lock()
	bs := make([]*broadcast, 0, len(m.order))
	for _, id := range m.order {
		bs = append(bs, m.broadcasts[id])
	}
	m.mu.Unlock()
	list := make([]Info, 0, len(bs))
	for _, b := range bs {
		in, _ := b.info()
		list = append(list, in)
	}
	return list
}

// Wait blocks until until(info) holds, the broadcast reaches a final state,
// or ctx ends, and returns the latest info.
func (m *Manager) Wait(ctx context.Context, id string, until func(Info) bool) (Info, error) {
	b, err := m.get(id)
	if err != nil {
		return Info{}, err
	}
	for {
		in, changed := b.info()
		if until(in) || in.State.Final() {
			return in, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return in, ctx.Err()
		}
	}
}

// Stop ends a broadcast and waits until it has ended (its RTMP sessions
// closed cleanly) or ctx is done.
func (m *Manager) Stop(ctx context.Context, id string) (Info, error) {
	b, err := m.get(id)
	if err != nil {
		return Info{}, err
	}
	b.stop()
	select {
	case <-b.done:
	case <-ctx.Done():
	}
	in, _ := b.info()
	return in, nil
}

// Active returns how many broadcasts have not ended.
func (m *Manager) Active() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range m.broadcasts {
		if !b.currentState().Final() {
			n++
		}
	}
	return n
}

// Close stops every broadcast, refuses new ones, and waits for all to end.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	bs := make([]*broadcast, 0, len(m.broadcasts))
	for _, b := range m.broadcasts {
		bs = append(bs, b)
	}
	m.mu.Unlock()
	for _, b := range bs {
		b.stop()
	}
	m.wg.Wait()
}

func newID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
