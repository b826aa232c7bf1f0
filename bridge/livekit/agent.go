package livekit

import (
	"context"
	"fmt"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/roomcast/roomcast/bridge"
)

// Join takes part in room as roomcast's own participant: visible, so that
// late joiners can read its attributes and see who sends status, of kind
// EGRESS, so that LiveKit still closes the room when only roomcast is left.
// It subscribes to nothing; broadcasts subscribe with their own hidden
// participants.
func (c *Client) Join(ctx context.Context, room string, ev bridge.RoomEvents) (bridge.RoomConn, error) {
	if err := c.checkRoom(ctx, room); err != nil {
		return nil, err
	}
	at := auth.NewAccessToken(c.cfg.APIKey, c.cfg.APISecret)
	at.SetIdentity(c.identity).
		SetName("roomcast").
		SetKind(lkproto.ParticipantInfo_EGRESS).
		SetValidFor(24 * time.Hour).
		SetVideoGrant(&auth.VideoGrant{
			RoomJoin:             true,
			Room:                 room,
			CanSubscribe:         ptr(false),
			CanPublish:           ptr(false),
			CanPublishData:       ptr(true),
			CanUpdateOwnMetadata: ptr(true),
		})
	token, err := at.ToJWT()
	if err != nil {
		return nil, fmt.Errorf("%w %q: sign token: %v", bridge.ErrRoomConnect, room, err)
	}

	cb := lksdk.NewRoomCallback()
	cb.OnDataPacket = func(pkt lksdk.DataPacket, params lksdk.DataReceiveParams) {
		user, ok := pkt.(*lksdk.UserDataPacket)
		if !ok || ev.OnData == nil {
			return
		}
		msg := bridge.DataMessage{Sender: params.SenderIdentity, Topic: user.Topic, Payload: user.Payload}
		if params.Sender != nil {
			msg.Attributes = params.Sender.Attributes()
		} else {
			// A packet can come before the news that its sender joined;
			// authorization by attribute needs them, so ask the server.
			msg.Attributes = c.attributes(room, params.SenderIdentity)
		}
		ev.OnData(msg)
	}
	cb.OnDisconnected = func() {
		if ev.OnDisconnected != nil {
			ev.OnDisconnected()
		}
	}
	r, err := lksdk.ConnectToRoomWithToken(c.cfg.URL, token, cb, lksdk.WithAutoSubscribe(false))
	if err != nil {
		return nil, fmt.Errorf("%w %q on %s: %v", bridge.ErrRoomConnect, room, c.cfg.URL, err)
	}
	return &conn{room: r}, nil
}

// conn is roomcast's participant in one room.
type conn struct {
	room *lksdk.Room
}

func (c *conn) Send(topic string, payload []byte, to ...string) error {
	return c.room.LocalParticipant.PublishDataPacket(lksdk.UserData(payload),
		lksdk.WithDataPublishTopic(topic),
		lksdk.WithDataPublishReliable(true),
		lksdk.WithDataPublishDestination(to))
}

func (c *conn) SetAttributes(attrs map[string]string) {
	c.room.LocalParticipant.SetAttributes(attrs)
}

func (c *conn) Leave() { c.room.Disconnect() }

// attributes asks the server for a participant's attributes.
func (c *Client) attributes(room, identity string) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := c.rooms.GetParticipant(ctx, &lkproto.RoomParticipantIdentity{Room: room, Identity: identity})
	if err != nil {
		c.log.Debug("attributes of a data sender unknown", "room", room, "identity", identity, "err", err)
		return nil
	}
	return p.GetAttributes()
}
