package livekit

import (
	"bytes"
	"strings"

	"github.com/pion/webrtc/v4"
)

// LiveKit's SFU writes tiny black keyframes into a subscribed video track
// when the track closes or its publisher mutes, to flush a browser's
// decoder (livekit-server pkg/sfu/downtrack.go: H264KeyFrame2x2 sent as
// one STAP-A, VP8KeyFrame8x8). On RTMP they are harmful: in passthrough a
// 2x2 SPS becomes a new sequence header, and the destination sees the
// stream change size twice. The adapter drops them; the media side fills
// the gap as for any quiet track.
var (
	// blankH264 is the STAP-A's start: the aggregate NAL header, the SPS
	// length and the 2x2 SPS itself.
	blankH264 = append([]byte{0x18, 0x00, 0x18},
		0x67, 0x42, 0xc0, 0x1f, 0x0f, 0xd9, 0x1f, 0x88,
		0x88, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
		0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc9, 0x20)
	// blankVP8 is the 8x8 keyframe that follows the payload descriptor.
	blankVP8 = []byte{
		0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x08, 0x00,
		0x08, 0x00, 0x00, 0x47, 0x08, 0x85, 0x85, 0x88,
		0x85, 0x84, 0x88, 0x02, 0x02, 0x00, 0x0c, 0x0d,
		0x60, 0x00, 0xfe, 0xff, 0xab, 0x50, 0x80,
	}
)

// isBlankFrame reports whether payload is one of the SFU's flush frames.
func isBlankFrame(mime string, payload []byte) bool {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeH264):
		return bytes.HasPrefix(payload, blankH264)
	case strings.ToLower(webrtc.MimeTypeVP8):
		// The descriptor before it is at most 6 bytes; a trailer may follow.
		return len(payload) < 64 && bytes.Contains(payload, blankVP8)
	}
	return false
}
