package bridge

import (
	"fmt"
	"testing"

	"github.com/roomcast/roomcast/egress"
)

// TestToError: errors from the room and media sides get their codes,
// wrapped however deep, and keep their message.
func TestToError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		name string
		msg  string // "": the error's own text
	}{
		{fmt.Errorf("%w: no room", ErrRoomNotFound), CodeRoomNotFound, "room_not_found", ""},
		{fmt.Errorf("%w: alice has none", ErrTracksNotFound), CodeTracksNotFound, "tracks_not_found", ""},
		{fmt.Errorf("%w: VP8 after H.264", ErrTrackChanged), CodeTrackChanged, "track_changed", ""},
		{fmt.Errorf("subscribe: %w", fmt.Errorf("%w: late camera", ErrTrackChanged)), CodeTrackChanged, "track_changed", ""},
		{fmt.Errorf("%w: AV1", egress.ErrUnsupportedCodec), CodeUnsupportedCodec, "unsupported_codec", ""},
		{fmt.Errorf("pipeline broke"), CodeMediaFailed, "media_failed", ""},
		{fmt.Errorf("start: %w", newError(CodeCapacity, "full")), CodeCapacity, "capacity_exceeded", "full"},
	} {
		got := toError(tc.err)
		if tc.msg == "" {
			tc.msg = tc.err.Error()
		}
		if got.Code != tc.code || got.Name != tc.name || got.Message != tc.msg {
			t.Errorf("toError(%q) = %+v, want %d %s with the message kept", tc.err, got, tc.code, tc.name)
		}
	}
}
