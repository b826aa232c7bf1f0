package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/egress"
)

// StartRequest asks for a participant's camera and microphone to go out to
// one or more RTMP destinations.
type StartRequest struct {
	Room     string          `json:"room,omitempty"`
	Identity string          `json:"identity,omitempty"`
	Outputs  []OutputRequest `json:"outputs,omitempty"`
	// Media choices, in media.go: source "camera" (default) or "screen",
	// video mode and targets, audio targets.
	Source string        `json:"source,omitempty"`
	Video  *VideoRequest `json:"video,omitempty"`
	Audio  *AudioRequest `json:"audio,omitempty"`
	// Metadata holds custom onMetaData keys, merged with the stream's own
	// fields into the stream's one onMetaData.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// OutputRequest is one destination: the name of a destination the operator
// configured, or an rtmp:// or rtmps:// URL whose last path element is the
// stream key.
type OutputRequest struct {
	Destination string `json:"destination,omitempty"`
	URL         string `json:"url,omitempty"`
	// ConnectInfo adds flat key/values to the RTMP connect command, which
	// some ingest servers read for authentication or routing.
	ConnectInfo map[string]any `json:"connectInfo,omitempty"`
}

// keepEnded is how many ended broadcasts stay visible to get and list.
const keepEnded = 100

// Manager owns every broadcast of this process. The HTTP API, the CLI
// (through the API) and the room protocol are doors onto its methods.
type Manager struct {
	cfg          config.Broadcast
	destinations map[string]config.Destination
	hook         []byte // hooks.start, applied over every start request
	rooms        Rooms
	log          *slog.Logger
	started      time.Time

	mu         sync.Mutex
	broadcasts map[string]*broadcast
	order      []string // ids, oldest first
	closed     bool
	onStart    []func(Info) // see observe
	wg         sync.WaitGroup
}

// NewManager returns a Manager that reaches rooms through rooms.
func NewManager(cfg config.Config, rooms Rooms, log *slog.Logger) (*Manager, error) {
	m := &Manager{
		cfg:          cfg.Broadcast,
		destinations: map[string]config.Destination{},
		rooms:        rooms,
		log:          log,
		started:      time.Now(),
		broadcasts:   map[string]*broadcast{},
	}
	for name, d := range cfg.Destinations {
		m.destinations[strings.ToLower(name)] = d
	}
	if cfg.Hooks.Start != "" {
		m.hook = []byte(cfg.Hooks.Start)
		var probe StartRequest
		if err := DecodeJSON(bytes.NewReader(m.hook), 1<<20, &probe); err != nil {
			return nil, fmt.Errorf("config: hooks.start: %w", err)
		}
	}
	return m, nil
}

// observe registers fn to be called with every broadcast that starts,
// before Start returns. fn must not block.
func (m *Manager) observe(fn func(Info)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onStart = append(m.onStart, fn)
}

// Start validates req and starts the broadcast; it returns at once in state
// signalling. Use Wait to follow it.
func (m *Manager) Start(req StartRequest) (Info, error) {
	if m.hook != nil {
		var err error
		if req, err = applyHook(req, m.hook); err != nil {
			return Info{}, newError(CodeInternal, "hooks.start: %v", err)
		}
	}
	outputs, err := m.validate(req)
	if err != nil {
		return Info{}, err
	}
	media, err := validateMedia(req, m.cfg)
	if err != nil {
		return Info{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &broadcast{
		id:            newID("bc_"),
		room:          req.Room,
		identity:      req.Identity,
		outputs:       outputs,
		media:         media,
		metadata:      req.Metadata,
		created:       time.Now(),
		metadataLimit: rate.NewLimiter(rate.Limit(m.cfg.MetadataRate), m.cfg.MetadataBurst),
		outputCount:   len(outputs),
		cancel:        cancel,
		done:          make(chan struct{}),
		state:         StateSignalling,
		history:       []State{StateSignalling},
		changed:       make(chan struct{}),
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

	observers := m.onStart
	m.mu.Unlock()

	m.log.Info("broadcast starting", "broadcast", b.id, "room", b.room, "identity", b.identity, "outputs", len(outputs))
	go func() {
		defer m.wg.Done()
		b.run(ctx, m.rooms, m.cfg, m.log)
	}()
	in, _ := b.info()
	for _, fn := range observers {
		fn(in)
	}
	return in, nil
}

func (m *Manager) validate(req StartRequest) ([]egress.Output, error) {
	switch {
	case req.Room == "":
		return nil, newError(CodeInvalidRequest, `field "room" is required`)
	case req.Identity == "":
		return nil, newError(CodeInvalidRequest, `field "identity" is required`)
	case len(req.Outputs) == 0:
		return nil, newError(CodeInvalidRequest, `field "outputs" needs at least one destination`)
	case len(req.Outputs) > egress.MaxOutputs:
		return nil, newError(CodeInvalidRequest, `field "outputs" has %d destinations; at most %d are allowed`, len(req.Outputs), egress.MaxOutputs)
	}
	if req.Metadata != nil {
		if err := egress.ValidateData(egress.HandlerMetaData, req.Metadata, m.cfg.MaxMetadataBytes); err != nil {
			return nil, newError(CodeInvalidMetadata, "field \"metadata\": %v", err)
		}
	}
	outputs := make([]egress.Output, len(req.Outputs))
	for i, o := range req.Outputs {
		out, err := m.output(fmt.Sprintf("outputs[%d]", i), o)
		if err != nil {
			return nil, err
		}
		out.ID = fmt.Sprintf("out_%d", i+1)
		outputs[i] = out
	}
	return outputs, nil
}

// output resolves one requested destination; field names it in errors.
func (m *Manager) output(field string, o OutputRequest) (egress.Output, error) {
	if err := egress.ValidateConnectInfo(o.ConnectInfo); err != nil {
		return egress.Output{}, newError(CodeInvalidMetadata, "field \"%s.connectInfo\": %v", field, err)
	}
	out, err := m.location(field, o)
	out.ConnectInfo = o.ConnectInfo
	return out, err
}

// location resolves a destination name or URL.
func (m *Manager) location(field string, o OutputRequest) (egress.Output, error) {
	switch {
	case (o.URL == "") == (o.Destination == ""):
		return egress.Output{}, newError(CodeInvalidRequest, "field %q needs exactly one of \"destination\" (a configured name) or \"url\"", field)
	case o.Destination != "":
		d, ok := m.destinations[strings.ToLower(o.Destination)]
		if !ok {
			return egress.Output{}, newError(CodeUnknownDest, "field \"%s.destination\": no destination %q is configured; configured: %s", field, o.Destination, m.destinationNames())
		}
		loc, err := d.Location()
		if err != nil {
			return egress.Output{}, newError(CodeInternal, "destination %q: %v", o.Destination, err)
		}
		u, err := egress.ParseURL(loc)
		if err != nil {
			return egress.Output{}, newError(CodeInternal, "destination %q is misconfigured: %v", o.Destination, err)
		}
		return egress.Output{URL: u}, nil
	}
	u, err := egress.ParseURL(o.URL)
	if err != nil {
		return egress.Output{}, newError(CodeInvalidURL, "field \"%s.url\": %v", field, err)
	}
	return egress.Output{URL: u}, nil
}

func (m *Manager) destinationNames() string {
	if len(m.destinations) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m.destinations))
	for n := range m.destinations {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
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

// Follow calls fn with the broadcast's info once for every state it
// enters, in order (Info.State is that state, the rest is current), when an
// output changes state or a warning comes or goes, and every interval
// while it broadcasts. It returns
// after fn has seen the final state, or when ctx ends.
func (m *Manager) Follow(ctx context.Context, id string, interval time.Duration, fn func(Info)) error {
	b, err := m.get(id)
	if err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	seen := 0
	var outputs string
	for {
		in, history, changed := b.snapshot()
		sent := false
		for ; seen < len(history); seen++ {
			step := in
			step.State = history[seen]
			fn(step)
			sent = true
		}
		if in.State.Final() {
			return nil
		}
		if o := outputStates(in) + warningOf(in); o != outputs {
			if !sent && outputs != "" {
				fn(in)
			}
			outputs = o
		}
		select {
		case <-changed:
		case <-tick.C:
			if in.State == StateBroadcasting {
				in, _ := b.info()
				fn(in)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func warningOf(in Info) string {
	if in.Warning == nil {
		return ""
	}
	return "warning=" + in.Warning.Message
}

func outputStates(in Info) string {
	var sb strings.Builder
	for _, o := range in.Outputs {
		sb.WriteString(o.ID + "=" + o.State + " ")
	}
	return sb.String()
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

// Cancel asks a broadcast to stop and returns at once; its status moves
// through stopping to stopped.
func (m *Manager) Cancel(id string) (Info, error) {
	b, err := m.get(id)
	if err != nil {
		return Info{}, err
	}
	b.stop()
	in, _ := b.info()
	return in, nil
}

// Find returns identity's broadcast in room that has not ended.
func (m *Manager) Find(room, identity string) (Info, error) {
	m.mu.Lock()
	var found *broadcast
	for _, b := range m.broadcasts {
		if b.room == room && b.identity == identity && !b.currentState().Final() {
			found = b
			break
		}
	}
	m.mu.Unlock()
	if found == nil {
		return Info{}, newError(CodeBroadcastNotFound, "participant %q has no active broadcast in room %q", identity, room)
	}
	in, _ := found.info()
	return in, nil
}

// activeIn counts room's broadcasts that have not ended.
func (m *Manager) activeIn(room string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range m.broadcasts {
		if b.room == room && !b.currentState().Final() {
			n++
		}
	}
	return n
}

// applyHook merges patch over req as a JSON merge patch (RFC 7386):
// objects merge key by key, null removes, anything else replaces.
func applyHook(req StartRequest, patch []byte) (StartRequest, error) {
	var doc, p map[string]any
	b, err := json.Marshal(req)
	if err != nil {
		return req, err
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return req, err
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return req, err
	}
	mergePatch(doc, p)
	if b, err = json.Marshal(doc); err != nil {
		return req, err
	}
	var out StartRequest
	return out, DecodeJSON(bytes.NewReader(b), int64(len(b)), &out)
}

func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		sub, isObj := v.(map[string]any)
		cur, curObj := dst[k].(map[string]any)
		switch {
		case v == nil:
			delete(dst, k)
		case isObj && curObj:
			mergePatch(cur, sub)
		default:
			dst[k] = v
		}
	}
}
