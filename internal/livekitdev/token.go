package livekitdev

import (
	"fmt"
	"time"

	"github.com/livekit/protocol/auth"
)

// Token returns a join token for identity in room, valid for a day, allowed
// to publish, subscribe and send data. Each adjust func may change the grant,
// for example Hidden.
func (s *Server) Token(room, identity string, adjust ...func(*auth.VideoGrant)) (string, error) {
	return Token(APIKey, APISecret, room, identity, adjust...)
}

// Token returns a join token signed with key and secret; see Server.Token.
func Token(key, secret, room, identity string, adjust ...func(*auth.VideoGrant)) (string, error) {
	yes := true
	grant := &auth.VideoGrant{
		RoomJoin:       true,
		Room:           room,
		CanPublish:     &yes,
		CanSubscribe:   &yes,
		CanPublishData: &yes,
	}
	for _, f := range adjust {
		f(grant)
	}
	tok, err := auth.NewAccessToken(key, secret).
		SetIdentity(identity).
		SetValidFor(24 * time.Hour).
		SetVideoGrant(grant).
		ToJWT()
	if err != nil {
		return "", fmt.Errorf("livekitdev: token for %q in room %q: %w", identity, room, err)
	}
	return tok, nil
}

// Hidden makes the participant invisible to the others in the room, as the
// bridge joins.
func Hidden(g *auth.VideoGrant) { g.Hidden = true }

// SubscribeOnly removes the right to publish media.
func SubscribeOnly(g *auth.VideoGrant) {
	no := false
	g.CanPublish = &no
}
