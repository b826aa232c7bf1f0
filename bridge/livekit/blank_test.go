package livekit

import "testing"

func TestIsBlankFrame(t *testing.T) {
	stapA := append(append([]byte{}, blankH264...), 0x00, 0x06, 0x68, 0x87, 0xcb, 0x83, 0xcb, 0x20)
	for _, tc := range []struct {
		name, mime string
		payload    []byte
		want       bool
	}{
		{"livekit h264 blank", "video/H264", stapA, true},
		{"real STAP-A", "video/H264", []byte{0x18, 0x00, 0x02, 0x67, 0x64, 0x00, 0x02, 0x68, 0xee}, false},
		{"real IDR", "video/H264", []byte{0x65, 0x88, 0x84, 0x0a}, false},
		{"livekit vp8 blank", "video/VP8", append([]byte{0x90, 0x80, 0x12}, blankVP8...), true},
		{"real vp8", "video/VP8", []byte{0x90, 0x80, 0x12, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02}, false},
		{"audio", "audio/opus", stapA, false},
	} {
		if got := isBlankFrame(tc.mime, tc.payload); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
