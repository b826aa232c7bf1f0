// Package rtmptest provides an in-process RTMP ingest server for tests. It
// accepts publishers the way a normal ingest does and records everything they
// send (commands, AMF0 data messages, audio and video) so a test can assert
// exactly what reached the wire, which nginx-rtmp cannot tell because it
// rebuilds onMetaData and drops other data messages. It also wraps ffprobe
// for checking media files.
package rtmptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by waits on a Receiver that has been closed.
var ErrClosed = errors.New("rtmptest: receiver closed")

// Receiver is an RTMP ingest listening on a free 127.0.0.1 port. Every TCP
// connection that completes the RTMP handshake becomes a Session.
type Receiver struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	sessions []*Session
	handed   int           // sessions already returned by WaitSession
	changed  chan struct{} // closed and replaced when sessions grows
	closed   bool
	conns    map[net.Conn]struct{} // connections still handshaking or serving
	closedCh chan struct{}
	reject   int // connections still to refuse (RejectNext)
	rejected int
}

// NewReceiver starts a Receiver on 127.0.0.1 at a free port.
func NewReceiver() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("rtmptest: listen: %w", err)
	}
	r := &Receiver{
		ln:       ln,
		changed:  make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
		closedCh: make(chan struct{}),
	}
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

// Addr returns the listening address, "127.0.0.1:PORT".
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// URL returns the URL a publisher uses: rtmp://127.0.0.1:PORT/app/streamKey.
func (r *Receiver) URL(app, streamKey string) string {
	return fmt.Sprintf("rtmp://%s/%s/%s", r.Addr(), app, streamKey)
}

// WaitSession returns the next session not yet returned by WaitSession, in
// the order they were accepted, waiting for one if needed.
func (r *Receiver) WaitSession(ctx context.Context) (*Session, error) {
	for {
		r.mu.Lock()
		if r.handed < len(r.sessions) {
			s := r.sessions[r.handed]
			r.handed++
			r.mu.Unlock()
			return s, nil
		}
		changed, closed := r.changed, r.closed
		r.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("rtmptest: waiting for a session: %w", context.Cause(ctx))
		}
	}
}

// RejectNext makes the receiver close the next n connections as soon as
// it accepts them, before the RTMP handshake, as an ingest that is down
// behind a load balancer would. Rejected connections are not sessions.
func (r *Receiver) RejectNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reject = n
}

// Rejected returns how many connections RejectNext has refused so far.
func (r *Receiver) Rejected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejected
}

// Sessions returns every session accepted so far, oldest first.
func (r *Receiver) Sessions() []*Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Session(nil), r.sessions...)
}

// Close stops the listener, closes every connection and waits until all of
// the receiver's goroutines have returned. Recorded sessions stay readable.
func (r *Receiver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.closedCh)
	close(r.changed)
	r.changed = make(chan struct{})
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()

	err := r.ln.Close()
	r.wg.Wait()
	if err != nil {
		return fmt.Errorf("rtmptest: close listener: %w", err)
	}
	return nil
}

func (r *Receiver) acceptLoop() {
	defer r.wg.Done()
	for {
		conn, err := r.ln.Accept()
		if err != nil {
			// The only expected error is the listener closing; anything
			// else on loopback would repeat forever, so stop either way.
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			conn.Close()
			return
		}
		if r.reject > 0 {
			r.reject--
			r.rejected++
			r.mu.Unlock()
			conn.Close()
			continue
		}
		r.conns[conn] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.serve(conn, time.Now())
	}
}

func (r *Receiver) serve(conn net.Conn, accepted time.Time) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, conn)
		r.mu.Unlock()
		conn.Close()
	}()

	rw, err := doHandshake(conn)
	if err != nil {
		// Not an RTMP client (a port probe, say): no session to report.
		return
	}
	s := newSession(conn, accepted)

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	s.ID = len(r.sessions) + 1
	r.sessions = append(r.sessions, s)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()

	s.run(rw, r.closedCh)
}
