package rtmptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrSessionEnded is returned by Session.Wait when the session has ended and
// the condition still does not hold, so waiting longer cannot help.
var ErrSessionEnded = errors.New("rtmptest: session ended")

// Kind is the kind of a recorded RTMP message.
type Kind int

// Recorded message kinds.
const (
	KindCommand Kind = iota + 1 // AMF0 (or AMF3-wrapped AMF0) command message
	KindData                    // AMF0 data message, e.g. onMetaData
	KindAudio                   // audio message: an FLV audio tag body
	KindVideo                   // video message: an FLV video tag body
)

func (k Kind) String() string {
	switch k {
	case KindCommand:
		return "command"
	case KindData:
		return "data"
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// End says how a session ended.
type End int

// Session end states.
const (
	Open    End = iota // still connected
	Clean              // FCUnpublish or deleteStream arrived before the connection closed
	Abrupt             // the publisher closed or reset without unpublishing
	Dropped            // the receiver closed it: Session.Drop or Receiver.Close
)

func (e End) String() string {
	switch e {
	case Open:
		return "open"
	case Clean:
		return "clean"
	case Abrupt:
		return "abrupt"
	case Dropped:
		return "dropped"
	}
	return fmt.Sprintf("End(%d)", int(e))
}

// Message is one recorded RTMP message. Recorded values are shared between
// snapshots: treat them as read-only.
type Message struct {
	Kind      Kind
	Time      time.Time // arrival time
	Timestamp uint32    // RTMP message timestamp in milliseconds
	StreamID  uint32    // RTMP message stream id

	// Name is the command name for commands. For data messages it is the
	// handler: the first string value, or the second after "@setDataFrame",
	// so onMetaData is found whether or not the publisher wrapped it.
	Name string
	// TransactionID is the command's transaction id (commands only).
	TransactionID float64
	// Values holds the decoded AMF0 values (see DecodeAMF0): for commands
	// the arguments after the transaction id, starting with the command
	// object; for data messages all values, e.g.
	// ["@setDataFrame", "onMetaData", map[string]any{...}].
	Values []any
	// DecodeErr is set when the AMF0 body did not decode; Values then holds
	// what decoded before the error.
	DecodeErr error

	// Payload is the raw message body: for audio and video exactly the
	// FLV tag body (tag header and PreviousTagSize excluded).
	Payload []byte
}

// Snapshot is a point-in-time copy of what a session recorded.
type Snapshot struct {
	Connect    map[string]any // the connect command object; nil before connect
	App        string         // connect's "app"
	StreamName string         // the publish name (the stream key); "" before publish
	Messages   []Message      // every command, data, audio and video message in arrival order
	End        End
	EndTime    time.Time // when the connection closed; zero while Open
	Err        error     // the read error that ended an Abrupt session, if any
}

// Commands returns the command messages.
func (s *Snapshot) Commands() []Message { return s.filter(KindCommand) }

// Data returns the data messages.
func (s *Snapshot) Data() []Message { return s.filter(KindData) }

// Audio returns the audio messages.
func (s *Snapshot) Audio() []Message { return s.filter(KindAudio) }

// Video returns the video messages.
func (s *Snapshot) Video() []Message { return s.filter(KindVideo) }

// Command returns the first command named name.
func (s *Snapshot) Command(name string) (Message, bool) {
	for _, m := range s.Messages {
		if m.Kind == KindCommand && m.Name == name {
			return m, true
		}
	}
	return Message{}, false
}

// DataNamed returns the data messages whose handler is name, e.g. "onMetaData".
func (s *Snapshot) DataNamed(name string) []Message {
	var out []Message
	for _, m := range s.Messages {
		if m.Kind == KindData && m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

func (s *Snapshot) filter(k Kind) []Message {
	var out []Message
	for _, m := range s.Messages {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// Session is one publisher connection. The receiver's goroutine for the
// connection is the only writer; everything else reads through Snapshot.
type Session struct {
	ID         int       // 1 for the first session of a Receiver, then 2, ...
	Accepted   time.Time // when the TCP connection was accepted
	RemoteAddr net.Addr

	conn    net.Conn
	dropped atomic.Bool

	mu      sync.Mutex
	snap    Snapshot
	changed chan struct{} // closed and replaced on every change
}

func newSession(conn net.Conn, accepted time.Time) *Session {
	return &Session{
		Accepted:   accepted,
		RemoteAddr: conn.RemoteAddr(),
		conn:       conn,
		changed:    make(chan struct{}),
	}
}

// Snapshot returns a copy of what the session has recorded so far.
func (s *Session) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *Session) snapshotLocked() *Snapshot {
	c := s.snap
	// Capping the capacity keeps later appends by the recorder out of
	// the copy's backing array.
	c.Messages = c.Messages[:len(c.Messages):len(c.Messages)]
	return &c
}

// Wait blocks until cond holds for the session's recording and returns the
// snapshot it held for. It returns ErrSessionEnded if the session ends with
// cond false, or the context's error; the last snapshot is returned with
// either error for diagnostics. cond must not block or keep the snapshot's
// messages past its return unless it copies them.
func (s *Session) Wait(ctx context.Context, cond func(*Snapshot) bool) (*Snapshot, error) {
	for {
		s.mu.Lock()
		snap, changed := s.snapshotLocked(), s.changed
		s.mu.Unlock()
		if cond(snap) {
			return snap, nil
		}
		if snap.End != Open {
			return snap, fmt.Errorf("session %d (%s): %w", s.ID, snap.End, ErrSessionEnded)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return snap, fmt.Errorf("session %d: %d messages, stream %q: %w",
				s.ID, len(snap.Messages), snap.StreamName, context.Cause(ctx))
		}
	}
}

// WaitEnd waits until the connection has closed.
func (s *Session) WaitEnd(ctx context.Context) (*Snapshot, error) {
	return s.Wait(ctx, func(sn *Snapshot) bool { return sn.End != Open })
}

// Drop closes the TCP connection from the server side without any RTMP
// goodbye, as a failing ingest would.
func (s *Session) Drop() {
	s.dropped.Store(true)
	s.conn.Close()
}

// update applies f to the recording and wakes every waiter.
func (s *Session) update(f func(*Snapshot)) {
	s.mu.Lock()
	f(&s.snap)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Session) record(m Message) {
	s.update(func(sn *Snapshot) { sn.Messages = append(sn.Messages, m) })
}
