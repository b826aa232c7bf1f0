package egress

import "testing"

// TestBlackKeyframe: the stand-in for each codec is one whole keyframe in
// its RTP payload format, with the track's payload type.
func TestBlackKeyframe(t *testing.T) {
	for _, codec := range []string{"h264", "vp8", "vp9"} {
		pkts, err := blackKeyframe(codec, 101, 640, 360)
		if err != nil {
			t.Errorf("%s: %v", codec, err)
			continue
		}
		if !isKeyframeStart(codec, pkts[0]) {
			t.Errorf("%s: the first packet (%x) does not start a keyframe", codec, pkts[0].Payload[:min(8, len(pkts[0].Payload))])
		}
		for i, p := range pkts {
			if p.PayloadType != 101 || p.Marker != (i == len(pkts)-1) {
				t.Errorf("%s: packet %d of %d: payload type %d, marker %v", codec, i, len(pkts), p.PayloadType, p.Marker)
			}
		}
	}
	if _, err := blackKeyframe("theora", 96, 640, 360); err == nil {
		t.Error("a codec without an encoder made a keyframe")
	}
}
