package livekit

import (
	"slices"
	"testing"
	"time"

	"github.com/livekit/media-sdk/jitter"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestJitterAV1Frames pins down what the jitter buffer releases for AV1,
// with the depacketizer the track uses: a frame starts at any packet whose
// aggregation header has Z clear (it starts an OBU) and ends at the marker.
// Whole frames leave as one batch as soon as they are complete; a frame
// with a hole is dropped, and so is a tail that continues an OBU; but a
// frame whose first packet was lost leaves from its next OBU boundary on.
// egress's AV1 assembler drops that one (it begins with a tile group) and
// waits for a keyframe.
func TestJitterAV1Frames(t *testing.T) {
	var got [][]uint16
	// An hour's latency: nothing leaves on the timer, only when complete
	// or flushed.
	b := jitter.NewBuffer(depacketizerFor(webrtc.MimeTypeAV1), time.Hour, func(pkts []jitter.ExtPacket) {
		var seqs []uint16
		for _, p := range pkts {
			seqs = append(seqs, p.SequenceNumber)
		}
		got = append(got, seqs)
	})
	defer b.Close()
	const startsOBU, continuesOBU = 0x10, 0x90 // W=1; Z clear or set
	frames := []struct {
		ts    uint32
		first uint16
		heads []byte // first header byte of each packet
		lost  int    // index of a lost packet, or -1
	}{
		{3000, 1, []byte{startsOBU, continuesOBU, continuesOBU}, -1},  // whole
		{6000, 4, []byte{startsOBU, continuesOBU, continuesOBU}, 1},   // hole: dropped
		{9000, 7, []byte{startsOBU, continuesOBU, continuesOBU}, -1},  // whole
		{12000, 10, []byte{startsOBU, continuesOBU, continuesOBU}, 0}, // first lost, rest continue an OBU: dropped
		{15000, 13, []byte{startsOBU, startsOBU, continuesOBU}, 0},    // first lost, second starts an OBU: released
		{18000, 16, []byte{startsOBU, continuesOBU}, -1},              // whole
	}
	now := time.Now()
	for _, f := range frames {
		for i, h := range f.heads {
			if i == f.lost {
				continue
			}
			b.PushAt(&rtp.Packet{Header: rtp.Header{SequenceNumber: f.first + uint16(i), Timestamp: f.ts, Marker: i == len(f.heads)-1},
				Payload: []byte{h, 0x32, 0xff}}, now)
		}
	}
	if len(got) != 1 || !slices.Equal(got[0], []uint16{1, 2, 3}) {
		t.Fatalf("before the flush: released %v, want the first frame whole at once", got)
	}
	b.Flush()
	want := [][]uint16{{1, 2, 3}, {7, 8, 9}, {14, 15}, {16, 17}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("released %v, want %v", got, want)
	}
}
