package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/roomcast/roomcast/config"
)

// statusInterval is how often a live broadcast's status goes out: often
// enough for a "live" badge with a bitrate, rare enough to cost nothing.
const statusInterval = time.Second

// AttributePrefix starts the key of the participant attribute in which
// roomcast keeps each participant's latest broadcast status, for
// participants who join after it was sent: roomcast.broadcast.<identity>.
const AttributePrefix = "roomcast.broadcast."

// Control speaks the room protocol in every room roomcast takes part in:
// it answers control messages with the Manager's operations and reports
// every broadcast's status into its room.
//
// A room has one agent (roomcast's participant there) while something
// holds it: a room_started webhook until room_finished, and each broadcast
// in the room until its final status is out.
type Control struct {
	cfg      config.Room
	m        *Manager
	rooms    Rooms
	log      *slog.Logger
	interval time.Duration

	ctx       context.Context // ends the agents
	cancel    context.CancelFunc
	followers sync.WaitGroup
	agentsWG  sync.WaitGroup

	mu     sync.Mutex
	agents map[string]*agent
	closed bool
}

// NewControl returns a Control that follows every broadcast m starts.
func NewControl(cfg config.Room, m *Manager, rooms Rooms, log *slog.Logger) *Control {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Control{
		cfg: cfg, m: m, rooms: rooms, log: log, interval: statusInterval,
		ctx: ctx, cancel: cancel, agents: map[string]*agent{},
	}
	m.observe(c.follow)
	return c
}

// Join takes part in room until the room closes or Leave; a room_started
// webhook calls it. It returns at once.
func (c *Control) Join(room string) { c.acquire(room, true) }

// Leave ends what Join started; broadcasts in the room keep their agent
// until their final status is out.
func (c *Control) Leave(room string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.agents[room]; a != nil {
		a.pinned = false
		c.maybeQuitLocked(a)
	}
}

// AutoJoins reports whether room matches room.auto_join.
func (c *Control) AutoJoins(room string) bool {
	ok, _ := path.Match(c.cfg.AutoJoin, room)
	return c.cfg.AutoJoin != "" && ok
}

// Joined lists the rooms roomcast is in (or joining), sorted.
func (c *Control) Joined() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := make([]string, 0, len(c.agents))
	for r := range c.agents {
		rooms = append(rooms, r)
	}
	slices.Sort(rooms)
	return rooms
}

// Close waits for every followed broadcast's final status (stop them with
// Manager.Close first), then leaves every room.
func (c *Control) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.followers.Wait()
	c.cancel()
	c.agentsWG.Wait()
}

// agent is roomcast's participant in one room. Its goroutine (runAgent)
// owns the room connection; everyone else posts to it.
type agent struct {
	room   string
	inbox  chan DataMessage
	outbox chan outgoing
	quit   chan struct{} // closed to leave
	done   chan struct{} // closed when runAgent returns

	// Guarded by Control.mu.
	pinned   bool // joined for the room itself (webhook), not for a broadcast
	holds    int  // broadcasts being followed
	quitting bool
}

// outgoing is a data message or an attribute update.
type outgoing struct {
	topic   string
	payload []byte
	to      []string
	attrs   map[string]string
}

// post queues o for the room; if the agent has gone (the room closed),
// o is dropped.
func (a *agent) post(o outgoing) {
	select {
	case a.outbox <- o:
	case <-a.done:
	}
}

func (c *Control) acquire(room string, pinned bool) *agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.agents[room]
	if a == nil {
		a = &agent{
			room:   room,
			inbox:  make(chan DataMessage, 64),
			outbox: make(chan outgoing, 64),
			quit:   make(chan struct{}),
			done:   make(chan struct{}),
		}
		c.agents[room] = a
		c.agentsWG.Add(1)
		go c.runAgent(a)
	}
	if pinned {
		a.pinned = true
	} else {
		a.holds++
	}
	return a
}

func (c *Control) release(a *agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a.holds--
	c.maybeQuitLocked(a)
}

func (c *Control) maybeQuitLocked(a *agent) {
	if a.holds > 0 || a.pinned || a.quitting {
		return
	}
	a.quitting = true
	close(a.quit)
	if c.agents[a.room] == a {
		delete(c.agents, a.room)
	}
}

// forget removes an agent whose room went away on its own.
func (c *Control) forget(a *agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.agents[a.room] == a {
		delete(c.agents, a.room)
	}
}

func (c *Control) runAgent(a *agent) {
	defer c.agentsWG.Done()
	defer close(a.done)
	defer c.forget(a)
	log := c.log.With("room", a.room)

	gone := make(chan struct{})
	var goneOnce sync.Once
	conn, err := c.rooms.Join(c.ctx, a.room, RoomEvents{
		OnData: func(d DataMessage) {
			if d.Topic != TopicControl {
				return
			}
			select {
			case a.inbox <- d:
			default:
				log.Warn("control message dropped: too many queued", "sender", d.Sender)
			}
		},
		OnDisconnected: func() { goneOnce.Do(func() { close(gone) }) },
	})
	if err != nil {
		log.Warn("cannot take part in room; its broadcasts' status will not reach it", "err", err)
		return
	}
	defer conn.Leave()
	log.Info("joined room")

	limiters := map[string]*rate.Limiter{}
	send := func(o outgoing) {
		if o.attrs != nil {
			conn.SetAttributes(o.attrs)
			return
		}
		if err := conn.Send(o.topic, o.payload, o.to...); err != nil {
			log.Debug("status not sent", "err", err)
		}
	}
	for {
		select {
		case d := <-a.inbox:
			l := limiters[d.Sender]
			if l == nil {
				l = rate.NewLimiter(rate.Limit(c.cfg.MessageRate), c.cfg.MessageBurst)
				limiters[d.Sender] = l
			}
			if !l.Allow() {
				send(reply(d.Sender, peekRequestID(d.Payload), newError(CodeRateLimited,
					"more than %g control messages per second (burst %d) from %q; slow down",
					c.cfg.MessageRate, c.cfg.MessageBurst, d.Sender), nil))
				continue
			}
			send(c.handle(a.room, d))
		case o := <-a.outbox:
			send(o)
		case <-a.quit:
			for {
				select {
				case o := <-a.outbox:
					send(o)
				default:
					log.Info("left room")
					return
				}
			}
		case <-gone:
			log.Info("room closed")
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// reply is the answer to one control message: an error, or an ack that
// ack (if set) fills in.
func reply(to, requestID string, err *Error, ack func(*Status)) outgoing {
	st := Status{V: ProtocolVersion, Type: TypeAck, RequestID: requestID}
	switch {
	case err != nil:
		st.Type, st.Error = TypeError, err
	case ack != nil:
		ack(&st)
	}
	payload, _ := json.Marshal(st)
	return outgoing{topic: TopicStatus, payload: payload, to: []string{to}}
}

// handle answers one control message from the room.
func (c *Control) handle(room string, d DataMessage) outgoing {
	msg, err := DecodeControl(d.Payload, c.cfg.MaxMessageBytes)
	if err != nil {
		c.log.Info("control message rejected", "room", room, "sender", d.Sender, "code", err.Code, "err", err.Message)
		return reply(d.Sender, msg.RequestID, err, nil)
	}
	var ack func(*Status)
	switch msg.Type {
	case TypeStart:
		req := msg.Start
		req.Room = room
		if req.Identity == "" {
			req.Identity = d.Sender
		}
		if err = c.authorize(d, req.Identity); err != nil {
			break
		}
		for i, o := range req.Outputs {
			if err = c.allowed(fmt.Sprintf("outputs[%d]", i), o); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
		if n := c.m.activeIn(room); c.cfg.MaxBroadcasts > 0 && n >= c.cfg.MaxBroadcasts {
			err = newError(CodeCapacity, "room %q has %d active broadcasts, the maximum (room.max_broadcasts)", room, n)
			break
		}
		var in Info
		if in, err = asError(c.m.Start(req)); err == nil {
			ack = func(s *Status) { s.BroadcastID = in.ID }
		}
	case TypeStop, TypeMetadata, TypeAddOutput, TypeRemoveOutput:
		var in Info
		if in, err = c.target(room, d, msg.BroadcastID); err != nil {
			break
		}
		ack = func(s *Status) { s.BroadcastID = in.ID }
		switch msg.Type {
		case TypeStop:
			_, err = asError(c.m.Cancel(in.ID))
		case TypeMetadata:
			var ts time.Duration
			if ts, err = asError(c.m.SendData(in.ID, msg.Handler, msg.Data)); err == nil {
				ms := ts.Milliseconds()
				ack = func(s *Status) { s.BroadcastID, s.Timestamp = in.ID, &ms }
			}
		case TypeAddOutput:
			if err = c.allowed("output", msg.Output); err != nil {
				break
			}
			var out OutputInfo
			if out, err = asError(c.m.AddOutput(in.ID, msg.Output)); err == nil {
				ack = func(s *Status) { s.BroadcastID, s.OutputID = in.ID, out.ID }
			}
		case TypeRemoveOutput:
			_, err = asError(c.m.RemoveOutput(in.ID, msg.OutputID))
		}
	}
	if err != nil {
		c.log.Info("control message refused", "room", room, "sender", d.Sender, "type", msg.Type, "code", err.Code, "err", err.Message)
		return reply(d.Sender, msg.RequestID, err, nil)
	}
	c.log.Info("control message done", "room", room, "sender", d.Sender, "type", msg.Type)
	return reply(d.Sender, msg.RequestID, nil, ack)
}

// asError narrows a Manager result's error to *Error.
func asError[T any](v T, err error) (T, *Error) {
	if err == nil {
		return v, nil
	}
	return v, toError(err)
}

// target finds the broadcast a message is about (the sender's own when id
// is empty) and checks that the sender may control it.
func (c *Control) target(room string, d DataMessage, id string) (Info, *Error) {
	var in Info
	var err *Error
	if id == "" {
		in, err = asError(c.m.Find(room, d.Sender))
	} else {
		in, err = asError(c.m.Get(id))
		if err == nil && in.Room != room {
			// Rooms see only their own broadcasts.
			err = newError(CodeBroadcastNotFound, "no broadcast %q in room %q", id, room)
		}
	}
	if err != nil {
		return in, err
	}
	return in, c.authorize(d, in.Identity)
}

// authorize lets a participant control identity's broadcast if it is
// that participant, or the operator authorized it by identity or by a
// participant attribute.
func (c *Control) authorize(d DataMessage, identity string) *Error {
	if d.Sender == identity || slices.Contains(c.cfg.AuthorizedIdentities, d.Sender) {
		return nil
	}
	if k, v, ok := strings.Cut(c.cfg.AuthorizedAttribute, "="); ok && d.Attributes[k] == v {
		return nil
	}
	return newError(CodeForbidden, "participant %q may not control the broadcast of %q: only that participant and those the operator authorizes may", d.Sender, identity)
}

// allowed checks a room-requested output: named destinations are always
// fine; raw URLs only when they match room.allowed_urls.
func (c *Control) allowed(field string, o OutputRequest) *Error {
	if o.URL == "" {
		return nil // a destination name, or an error Manager reports
	}
	if len(c.cfg.AllowedURLs) == 0 {
		return newError(CodeURLNotAllowed, "field \"%s.url\": URLs are not accepted from rooms on this server; name a configured destination instead (%s)", field, c.m.destinationNames())
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return newError(CodeInvalidURL, "field \"%s.url\" is not a URL", field)
	}
	base := u.Scheme + "://" + u.Host + path.Dir(u.Path) // without the stream key
	for _, p := range c.cfg.AllowedURLs {
		if ok, _ := path.Match(p, base); ok {
			return nil
		}
	}
	return newError(CodeURLNotAllowed, "field \"%s.url\": %s is not in room.allowed_urls", field, base)
}

// follow reports a broadcast's status into its room until its final
// state is out; Manager.Start calls it for every broadcast.
func (c *Control) follow(in Info) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.followers.Add(1)
	c.mu.Unlock()
	a := c.acquire(in.Room, false)
	key := AttributePrefix + in.Identity
	go func() {
		defer c.followers.Done()
		defer c.release(a)
		var last State
		_ = c.m.Follow(context.Background(), in.ID, c.interval, func(in Info) {
			payload, _ := json.Marshal(Status{V: ProtocolVersion, Type: TypeStatus, BroadcastID: in.ID, Broadcast: &in})
			a.post(outgoing{topic: TopicStatus, payload: payload})
			if in.State != last {
				last = in.State
				a.post(outgoing{attrs: map[string]string{key: attributeValue(in)}})
			}
		})
	}()
}

// attributeValue is the compact status kept in roomcast's attributes:
// enough to draw a badge, without the per-second statistics.
func attributeValue(in Info) string {
	type output struct {
		ID    string `json:"id"`
		URL   string `json:"url"`
		State string `json:"state"`
	}
	v := struct {
		V           int      `json:"v"`
		BroadcastID string   `json:"broadcastId"`
		State       State    `json:"state"`
		Outputs     []output `json:"outputs"`
		Error       *Error   `json:"error,omitempty"`
	}{V: ProtocolVersion, BroadcastID: in.ID, State: in.State, Error: in.Error}
	for _, o := range in.Outputs {
		v.Outputs = append(v.Outputs, output{o.ID, o.URL, o.State})
	}
	b, _ := json.Marshal(v)
	return string(b)
}
