package testpattern

import (
	"context"
	"fmt"
	"sync"

	lksdk "github.com/livekit/server-sdk-go/v2"
)

// DataMessage is one data packet a participant received.
type DataMessage struct {
	Sender  string
	Topic   string
	Payload []byte
}

// Inbox records the data packets a participant receives, in order, so a
// test can wait for the one it expects.
type Inbox struct {
	mu      sync.Mutex
	msgs    []DataMessage
	changed chan struct{}
}

// NewInbox returns an empty Inbox.
func NewInbox() *Inbox { return &Inbox{changed: make(chan struct{})} }

// Callback returns room callbacks that fill the inbox.
func (in *Inbox) Callback() *lksdk.RoomCallback {
	cb := lksdk.NewRoomCallback()
	cb.OnDataPacket = func(pkt lksdk.DataPacket, params lksdk.DataReceiveParams) {
		user, ok := pkt.(*lksdk.UserDataPacket)
		if !ok {
			return
		}
		in.mu.Lock()
		in.msgs = append(in.msgs, DataMessage{Sender: params.SenderIdentity, Topic: user.Topic, Payload: user.Payload})
		in.notifyLocked()
		in.mu.Unlock()
	}
	// WaitFor conditions often read other participants and their
	// attributes: wake waiters when those change too.
	cb.OnParticipantConnected = func(*lksdk.RemoteParticipant) { in.notify() }
	cb.OnParticipantDisconnected = func(*lksdk.RemoteParticipant) { in.notify() }
	cb.OnAttributesChanged = func(map[string]string, lksdk.Participant) { in.notify() }
	return cb
}

func (in *Inbox) notify() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.notifyLocked()
}

func (in *Inbox) notifyLocked() {
	close(in.changed)
	in.changed = make(chan struct{})
}

// WaitFor waits until cond holds, checking it whenever a message arrives
// or a participant or its attributes change, until ctx ends.
func (in *Inbox) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		in.mu.Lock()
		changed := in.changed
		in.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Wait returns the first message at or after index from that satisfies
// match, and its index, waiting for it until ctx ends.
func (in *Inbox) Wait(ctx context.Context, from int, match func(DataMessage) bool) (DataMessage, int, error) {
	for {
		in.mu.Lock()
		msgs, changed := in.msgs, in.changed
		in.mu.Unlock()
		for i := from; i < len(msgs); i++ {
			if match(msgs[i]) {
				return msgs[i], i, nil
			}
		}
		from = max(from, len(msgs))
		select {
		case <-changed:
		case <-ctx.Done():
			return DataMessage{}, 0, ctx.Err()
		}
	}
}

// Messages returns every message received so far.
func (in *Inbox) Messages() []DataMessage {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.msgs[:len(in.msgs):len(in.msgs)]
}

// Member is a participant's view of its room: the data it received,
// and the other participants and their attributes.
type Member struct {
	room  *lksdk.Room
	inbox *Inbox
}

// Join connects a participant that publishes nothing: a producer's page or
// a viewer that only sends and receives data.
func Join(ctx context.Context, url, token string) (*Member, error) {
	inbox := NewInbox()
	room, err := lksdk.ConnectToRoomWithToken(url, token, inbox.Callback(), lksdk.WithAutoSubscribe(false))
	if err != nil {
		return nil, fmt.Errorf("testpattern: join %s: %w", url, err)
	}
	return &Member{room: room, inbox: inbox}, nil
}

// Inbox returns the data messages this participant received.
func (m *Member) Inbox() *Inbox { return m.inbox }

// SendData publishes payload reliably on topic to the whole room.
func (m *Member) SendData(topic string, payload []byte) error {
	return m.room.LocalParticipant.PublishDataPacket(lksdk.UserData(payload),
		lksdk.WithDataPublishTopic(topic), lksdk.WithDataPublishReliable(true))
}

// Attributes returns another participant's attributes, or nil when that
// participant is not in the room.
func (m *Member) Attributes(identity string) map[string]string {
	rp := m.room.GetParticipantByIdentity(identity)
	if rp == nil {
		return nil
	}
	return rp.Attributes()
}

// Present reports whether identity is in the room.
func (m *Member) Present(identity string) bool {
	return m.room.GetParticipantByIdentity(identity) != nil
}

// Close leaves the room.
func (m *Member) Close() { m.room.Disconnect() }

// Member returns the publisher's view of its room.
func (p *Publisher) Member() *Member { return &Member{room: p.room, inbox: p.inbox} }
