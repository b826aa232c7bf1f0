package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/config"
)

// scope is what a request's token lets it touch.
type scope struct {
	all  bool   // auth is off, or the token names no room
	room string // the one room a room-scoped token allows
}

func (sc scope) allows(room string) bool { return sc.all || sc.room == room }

func (sc scope) forbidden(room string) error {
	return bridge.NewError(bridge.CodeForbidden, "the token is for room %q, not %q", sc.room, room)
}

// token checks the request's LiveKit access token: signed with the
// configured API key and secret, not expired, with the roomRecord grant
// (LiveKit's grant for egress). A token with a room is scoped to it.
func (s *server) token(r *http.Request) (scope, error) {
	if !s.cfg.HTTP.Auth {
		return scope{all: true}, nil
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return scope{}, bridge.NewError(bridge.CodeUnauthorized, "missing token: send Authorization: Bearer <LiveKit access token with the roomRecord grant>")
	}
	v, err := auth.ParseAPIToken(raw)
	if err != nil {
		return scope{}, bridge.NewError(bridge.CodeUnauthorized, "the token is not a valid JWT: %v", err)
	}
	if v.APIKey() != s.cfg.LiveKit.APIKey {
		return scope{}, bridge.NewError(bridge.CodeUnauthorized, "the token was issued by API key %q; this server takes tokens of its own LiveKit API key", v.APIKey())
	}
	_, grants, err := v.Verify(s.cfg.LiveKit.APISecret)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return scope{}, bridge.NewError(bridge.CodeUnauthorized, "the token has expired")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return scope{}, bridge.NewError(bridge.CodeUnauthorized, "the token's signature does not match the API secret")
	case err != nil:
		return scope{}, bridge.NewError(bridge.CodeUnauthorized, "the token is not valid: %v", err)
	case grants.Video == nil || !grants.Video.RoomRecord:
		return scope{}, bridge.NewError(bridge.CodeForbidden, "the token lacks the roomRecord grant that roomcast's API requires")
	}
	return scope{all: grants.Video.Room == "", room: grants.Video.Room}, nil
}

// keyProvider verifies webhooks with the configured key pair.
type keyProvider struct{ cfg config.LiveKit }

func (k keyProvider) GetSecret(key string) string {
	if key == k.cfg.APIKey {
		return k.cfg.APISecret
	}
	return ""
}

func (k keyProvider) NumKeys() int { return 1 }

// Token mints an API token for the CLI and tests: roomRecord on room, or
// on every room when room is empty.
func Token(cfg config.LiveKit, room string, validFor time.Duration) (string, error) {
	at := auth.NewAccessToken(cfg.APIKey, cfg.APISecret)
	at.SetIdentity("roomcast-cli").SetValidFor(validFor).SetVideoGrant(&auth.VideoGrant{RoomRecord: true, Room: room})
	return at.ToJWT()
}
