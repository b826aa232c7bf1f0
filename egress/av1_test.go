package egress

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

// av1OBU is one OBU in the low-overhead format: header with
// obu_has_size_field, LEB128 size, payload.
func av1OBU(typ byte, payload []byte) []byte {
	b := []byte{typ<<3 | 0x02}
	for n := len(payload); ; n >>= 7 {
		if n < 0x80 {
			b = append(b, byte(n))
			break
		}
		b = append(b, byte(n)|0x80)
	}
	return append(b, payload...)
}

func filled(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

// av1Packets packetizes a temporal unit as server-sdk-go does (pion's
// AV1Payloader, 1200-byte MTU), marker on the last packet.
func av1Packets(tu []byte, ts uint32) []*rtp.Packet {
	var p codecs.AV1Payloader
	var out []*rtp.Packet
	for _, payload := range p.Payload(1200, tu) {
		out = append(out, &rtp.Packet{Header: rtp.Header{Timestamp: ts}, Payload: payload})
	}
	out[len(out)-1].Marker = true
	return out
}

var (
	av1Key   = bytes.Join([][]byte{temporalDelimiter, av1OBU(1, filled(12, 0x11)), av1OBU(6, filled(3000, 0x66))}, nil)
	av1Inter = bytes.Join([][]byte{temporalDelimiter, av1OBU(6, filled(2500, 0x77))}, nil)
	// A frame sent as a frame header and two tile groups.
	av1Tiles1 = bytes.Join([][]byte{temporalDelimiter, av1OBU(3, filled(20, 0x33)), av1OBU(4, filled(1500, 0x44))}, nil)
	av1Tiles2 = av1OBU(4, filled(1500, 0x45))
	av1Tiles  = append(bytes.Clone(av1Tiles1), av1Tiles2...)
)

// av1TilePackets packetizes av1Tiles with the second tile group starting
// a packet (Z=0), which a sender may do; it returns where that packet is.
func av1TilePackets(ts uint32) ([]*rtp.Packet, int) {
	first := av1Packets(av1Tiles1, ts)
	first[len(first)-1].Marker = false
	return append(first, av1Packets(av1Tiles2, ts)...), len(first)
}

// feed gives the assembler whole packet lists and returns what it
// released and whether it asked for a keyframe.
func feed(a *av1Assembler, pkts []*rtp.Packet, pts time.Duration) (tus [][]byte, wanted bool) {
	for _, p := range pkts {
		tu, at, want := a.add(p, pts)
		wanted = wanted || want
		if tu != nil {
			if at != pts {
				panic("temporal unit released with another packet's time")
			}
			tus = append(tus, bytes.Clone(tu))
		}
	}
	return tus, wanted
}

// TestAV1Assembler: whole temporal units come out in the low-overhead
// format byte for byte as the encoder made them (delimiter and size fields
// restored); nothing passes before the first keyframe, and a unit that
// lost its first or last packets is dropped, with every unit after it up
// to the next keyframe, and a keyframe asked for.
func TestAV1Assembler(t *testing.T) {
	a := newAV1Assembler()
	ts := uint32(0)
	next := func(tu []byte) []*rtp.Packet { ts += 3000; return av1Packets(tu, ts) }
	step := func(name string, pkts []*rtp.Packet, want []byte, wantRequest bool) {
		t.Helper()
		got, requested := feed(a, pkts, time.Duration(ts)*time.Second/90000)
		switch {
		case want == nil && len(got) != 0:
			t.Errorf("%s: released %d units, want none", name, len(got))
		case want != nil && (len(got) != 1 || !bytes.Equal(got[0], want)):
			t.Errorf("%s: released %d units, want the unit as encoded", name, len(got))
		}
		if requested != wantRequest {
			t.Errorf("%s: keyframe request %v, want %v", name, requested, wantRequest)
		}
	}

	key := next(av1Key)
	if len(key) < 3 || !isAV1KeyframeStart(key[0].Payload) || isAV1KeyframeStart(key[1].Payload) {
		t.Fatalf("keyframe packetized into %d packets; want ≥ 3, N on the first only", len(key))
	}
	step("inter frame before any keyframe", next(av1Inter), nil, true)
	step("keyframe", key, av1Key, false)
	step("inter frame", next(av1Inter), av1Inter, false)
	ts += 3000
	tiles, _ := av1TilePackets(ts)
	step("tiled frame", tiles, av1Tiles, false)

	step("frame without its first packet", next(av1Inter)[1:], nil, true)
	step("inter frame after the damage", next(av1Inter), nil, true)
	step("keyframe after the damage", next(av1Key), av1Key, false)

	ts += 3000
	tiles, second := av1TilePackets(ts)
	if tiles[second].Payload[0]&av1Z != 0 {
		t.Fatalf("the second tile group's packet does not start an OBU; the case below would test nothing")
	}
	// The room side's jitter buffer releases this after losing the rest.
	step("tiled frame from its second tile group", tiles[second:], nil, true)
	step("keyframe", next(av1Key), av1Key, false)

	// A unit that lost its marker packet is noticed when the next begins.
	cut := next(av1Key)
	step("keyframe without its last packet", cut[:len(cut)-1], nil, false)
	step("inter frame after it", next(av1Inter), nil, true)
	step("keyframe", next(av1Key), av1Key, false)
}

func TestStartsTemporalUnit(t *testing.T) {
	for typ, want := range map[byte]bool{1: true, 3: true, 4: false, 5: true, 6: true, 7: false, 8: false, 15: true} {
		if got := startsTemporalUnit(av1OBU(typ, []byte{1})); got != want {
			t.Errorf("OBU type %d: %v, want %v", typ, got, want)
		}
	}
	if startsTemporalUnit(nil) {
		t.Error("an empty unit starts a temporal unit")
	}
}

// lossyTrack loses one packet in every `every` that continues an OBU
// (Z=1): a hole in the middle of a frame, which av1dec cannot decode.
type lossyTrack struct {
	Track
	every, n int
	lost     int
}

func (l *lossyTrack) ReadRTP() (*rtp.Packet, time.Duration, error) {
	for {
		pkt, pts, err := l.Track.ReadRTP()
		if err != nil || len(pkt.Payload) == 0 || pkt.Payload[0]&av1Z == 0 {
			return pkt, pts, err
		}
		if l.n++; l.n%l.every != 0 {
			return pkt, pts, err
		}
		l.lost++
	}
}

// TestAV1PacketLoss: AV1 frames with holes never reach the decoder, which
// would fail the stream: it goes on, every damaged frame answered by a
// keyframe request, and video keeps arriving.
func TestAV1PacketLoss(t *testing.T) {
	start := time.Now()
	v, err := av1TrackMTU(start, 320, 240, 30, 200)
	if err != nil {
		t.Fatal(err)
	}
	a, err := opusTrack(start)
	if err != nil {
		t.Fatal(err)
	}
	video := &lossyTrack{Track: v, every: 20}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, sess, stop := runStream(t, ctx, Options{Video: VideoOptions{Width: 320, Height: 240}}, video, a)
	if _, err := sess.Wait(ctx, spanAtLeast(rtmptest.KindVideo, 6000)); err != nil {
		t.Fatal(err)
	}
	snap := stop()
	t.Logf("lost %d packets, %d keyframe requests", video.lost, v.keyframeRequests())
	if video.lost < 3 {
		t.Fatalf("lost %d packets; the test needs frames of several packets", video.lost)
	}
	if n := v.keyframeRequests(); n < video.lost {
		t.Errorf("%d keyframe requests for %d damaged frames", n, video.lost)
	}
	if st := s.Stats(); st.VideoFrames < 170 {
		t.Errorf("%d video frames in 6 s, want ≥ 170", st.VideoFrames)
	}
	if gap, at := maxGap(frames(snap.Messages, rtmptest.KindVideo)); gap > 100 {
		t.Errorf("video gap %d ms at %d ms", gap, at)
	}
}
