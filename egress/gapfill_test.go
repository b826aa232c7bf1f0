package egress

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// TestGapFillerAudio: a quiet audio track is filled with 20 ms silence
// frames paced by the wall clock, renumbered and retimed, and a resuming
// packet that the filler already covered is dropped.
func TestGapFillerAudio(t *testing.T) {
	f := newGapFiller(Codec{Kind: Audio, ClockRate: 48000, PayloadType: 111}, "")
	t0 := time.Unix(1000, 0)
	pkt := func(seq uint16) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: 999}, Payload: []byte{1, 2, 3}}
	}
	out, _ := f.real(pkt(500), time.Second, t0)
	if len(out) != 1 || out[0].pkt.SequenceNumber != 1 || out[0].pkt.Timestamp != 48000 {
		t.Fatalf("first packet = %+v, want seq 1, ts 48000", out)
	}
	if got := f.fill(t0.Add(50 * time.Millisecond)); len(got) != 0 {
		t.Errorf("filled %d packets within the holdoff", len(got))
	}
	got := f.fill(t0.Add(200 * time.Millisecond))
	// Up to 200 ms - 40 ms lag after the last real packet: 8 frames.
	if len(got) != 8 {
		t.Fatalf("filled %d packets, want 8", len(got))
	}
	for i, p := range got {
		want := time.Second + time.Duration(i+1)*opusFrame
		if p.pts != want || p.pkt.SequenceNumber != uint16(i+2) || string(p.pkt.Payload) != string(opusSilence) {
			t.Errorf("filler %d = pts %v seq %d, want pts %v seq %d", i, p.pts, p.pkt.SequenceNumber, want, i+2)
		}
		if p.pkt.Timestamp != uint32(want*48000/time.Second) {
			t.Errorf("filler %d has RTP ts %d", i, p.pkt.Timestamp)
		}
	}
	if out, _ := f.real(pkt(501), time.Second+100*time.Millisecond, t0.Add(210*time.Millisecond)); len(out) != 0 {
		t.Errorf("a packet inside the filled span was pushed: %+v", out)
	}
	if out, _ := f.real(pkt(502), time.Second+220*time.Millisecond, t0.Add(220*time.Millisecond)); len(out) != 1 || out[0].pkt.SequenceNumber != 10 {
		t.Errorf("resumed packet = %+v, want it pushed as seq 10", out)
	}
}

// TestGapFillerVideo: a quiet H.264 track repeats its last keyframe at
// videoStep; when it resumes mid-GOP the filler drops frames and asks for
// a keyframe, and passes the stream again from that keyframe.
func TestGapFillerVideo(t *testing.T) {
	f := newGapFiller(Codec{Kind: Video, ClockRate: 90000, PayloadType: 102}, "h264")
	t0 := time.Unix(1000, 0)
	sps := &rtp.Packet{Header: rtp.Header{}, Payload: []byte{0x67, 1, 2}}
	idr := &rtp.Packet{Header: rtp.Header{Marker: true}, Payload: []byte{0x65, 1, 2}}
	p := func() *rtp.Packet { return &rtp.Packet{Header: rtp.Header{Marker: true}, Payload: []byte{0x41, 9}} }

	f.real(sps, 0, t0)
	f.real(idr, 0, t0)
	f.real(p(), 33*time.Millisecond, t0.Add(33*time.Millisecond))
	if got := f.fill(t0.Add(500 * time.Millisecond)); len(got) != 0 {
		t.Errorf("filled %d packets within the holdoff", len(got))
	}
	got := f.fill(t0.Add(33*time.Millisecond + 1100*time.Millisecond))
	// 1.1 s quiet at 500 ms steps: two repeats of the 2-packet keyframe.
	if len(got) != 4 {
		t.Fatalf("filled %d packets, want 4", len(got))
	}
	for i, want := range []time.Duration{533, 533, 1033, 1033} {
		if got[i].pts != want*time.Millisecond || got[i].pkt.Payload[0] != []byte{0x67, 0x65}[i%2] {
			t.Errorf("filler %d: pts %v payload %x", i, got[i].pts, got[i].pkt.Payload[0])
		}
	}
	if got[0].pkt.Timestamp == got[2].pkt.Timestamp {
		t.Error("two repeats share an RTP timestamp; the depayloader would merge them")
	}
	at := t0.Add(1200 * time.Millisecond)
	out, request := f.real(p(), 1200*time.Millisecond, at)
	if len(out) != 0 || !request {
		t.Errorf("a P-frame after the repeats: pushed %d packets, keyframe request %v; want none pushed and a request", len(out), request)
	}
	if _, request := f.real(p(), 1233*time.Millisecond, at.Add(33*time.Millisecond)); request {
		t.Error("asked for a keyframe again within keyframeWait")
	}
	if out, _ := f.real(&rtp.Packet{Payload: []byte{0x67, 1}}, 1266*time.Millisecond, at.Add(66*time.Millisecond)); len(out) != 1 {
		t.Errorf("the keyframe after the repeats was not pushed")
	}
}

func TestIsKeyframeStart(t *testing.T) {
	for _, tc := range []struct {
		codec   string
		payload []byte
		want    bool
	}{
		{"h264", []byte{0x65, 0x88}, true},                            // IDR
		{"h264", []byte{0x67, 0x42}, true},                            // SPS
		{"h264", []byte{0x41, 0x9a}, false},                           // P slice
		{"h264", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 1}, true}, // STAP-A with SPS
		{"h264", []byte{0x78, 0, 2, 0x06, 0x05}, false},               // STAP-A with SEI only
		{"h264", []byte{0x7c, 0x85, 0}, true},                         // FU-A start of IDR
		{"h264", []byte{0x7c, 0x05, 0}, false},                        // FU-A middle
		{"vp8", []byte{0x10, 0x00, 0, 0}, true},                       // S=1 PID=0, P=0
		{"vp8", []byte{0x10, 0x01, 0, 0}, false},                      // inter frame
		{"vp8", []byte{0x00, 0x00, 0, 0}, false},                      // not a partition start
		{"vp9", []byte{0x08, 0}, true},                                // B=1, P=0
		{"vp9", []byte{0x48, 0}, false},                               // P=1
		{"av1", []byte{0x18, 0x0a, 0x0b}, true},                       // N=1, sequence header first
		{"av1", []byte{0x10, 0x32, 0x10}, false},                      // N=0: not a new sequence
		{"av1", []byte{0x88, 0x00}, false},                            // Z=1: continues an OBU
	} {
		if got := isKeyframeStart(tc.codec, &rtp.Packet{Payload: tc.payload}); got != tc.want {
			t.Errorf("%s %x: %v, want %v", tc.codec, tc.payload, got, tc.want)
		}
	}
}

// TestGapFillerBeforeFirstPacket: a track that has sent nothing (muted
// before the broadcast) is filled once holdoff has passed since the
// stream began, on the timeline of the tracks that did send, from where
// they began; video needs a stand-in keyframe for that, and nothing is
// filled before any track has a packet.
func TestGapFillerBeforeFirstPacket(t *testing.T) {
	black := []*rtp.Packet{{Payload: []byte{0x67, 0}}, {Header: rtp.Header{Marker: true}, Payload: []byte{0x65, 0}}}
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name     string
		codec    Codec
		standIn  []*rtp.Packet
		observed bool // another track has sent packets
		at       time.Duration
		want     []int64 // presentation times filled, ms
	}{
		{"audio before holdoff", Codec{Kind: Audio, ClockRate: 48000}, nil, true, 90 * time.Millisecond, nil},
		{"audio from where the video began", Codec{Kind: Audio, ClockRate: 48000}, nil, true, 200 * time.Millisecond,
			[]int64{500, 520, 540, 560, 580, 600, 620, 640, 660}}, // up to 700 ms - 40 ms lag
		{"audio alone", Codec{Kind: Audio, ClockRate: 48000}, nil, false, time.Second, nil},
		{"video before holdoff", Codec{Kind: Video, ClockRate: 90000}, black, true, 900 * time.Millisecond, nil},
		{"video black from where the audio began", Codec{Kind: Video, ClockRate: 90000}, black, true, 1200 * time.Millisecond,
			[]int64{500, 500, 1000, 1000, 1500, 1500}}, // up to 1.7 s - 100 ms lag
		{"video without a stand-in", Codec{Kind: Video, ClockRate: 90000}, nil, true, 2 * time.Second, nil},
		{"video alone", Codec{Kind: Video, ClockRate: 90000}, black, false, 2 * time.Second, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newGapFiller(tc.codec, "h264")
			f.timeline = &streamClock{}
			calls := 0
			if tc.standIn != nil {
				f.standIn = func() []*rtp.Packet { calls++; return tc.standIn }
			}
			f.fill(t0) // the stream begins: the track waits from here
			if tc.observed {
				// The other track began at 500 ms of the shared clock,
				// and its latest packet says 700 ms is t0 + 200 ms.
				f.timeline.observe(t0, 500*time.Millisecond)
				f.timeline.observe(t0.Add(200*time.Millisecond), 700*time.Millisecond)
			}
			var got []int64
			for _, p := range f.fill(t0.Add(tc.at)) {
				got = append(got, p.pts.Milliseconds())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("filled at %v ms, want %v", got, tc.want)
			}
			f.fill(t0.Add(tc.at + time.Second))
			if calls > 1 {
				t.Errorf("stand-in made %d times", calls)
			}
		})
	}
}

// TestGapFillerStandInThenCamera: after black stand-ins, the camera's
// first packets are dropped until its keyframe (asked for at once), and
// a keyframe that lands before the last stand-in is dropped too, with
// the frames after it.
func TestGapFillerStandInThenCamera(t *testing.T) {
	f := newGapFiller(Codec{Kind: Video, ClockRate: 90000}, "h264")
	f.timeline = &streamClock{}
	f.standIn = func() []*rtp.Packet {
		return []*rtp.Packet{{Header: rtp.Header{Marker: true}, Payload: []byte{0x65, 0}}}
	}
	t0 := time.Unix(1000, 0)
	f.fill(t0)
	f.timeline.observe(t0, 0)
	if got := f.fill(t0.Add(3 * time.Second)); len(got) != 6 || got[5].pts != 2500*time.Millisecond {
		t.Fatalf("stand-ins = %d, want 6 up to 2.5 s", len(got))
	}
	idr := func() *rtp.Packet { return &rtp.Packet{Header: rtp.Header{Marker: true}, Payload: []byte{0x65, 1}} }
	p := func() *rtp.Packet { return &rtp.Packet{Header: rtp.Header{Marker: true}, Payload: []byte{0x41, 1}} }
	now := t0.Add(3 * time.Second)
	if out, request := f.real(p(), 2900*time.Millisecond, now); len(out) != 0 || !request {
		t.Errorf("a P-frame first: pushed %d, request %v; want none and a request", len(out), request)
	}
	if out, request := f.real(idr(), 2400*time.Millisecond, now.Add(600*time.Millisecond)); len(out) != 0 || !request {
		t.Errorf("a keyframe behind the stand-ins: pushed %d, request %v; want none and a request", len(out), request)
	}
	if out, _ := f.real(p(), 2433*time.Millisecond, now.Add(633*time.Millisecond)); len(out) != 0 {
		t.Error("a P-frame after a dropped keyframe was pushed")
	}
	if out, _ := f.real(idr(), 3600*time.Millisecond, now.Add(700*time.Millisecond)); len(out) != 1 {
		t.Error("the next keyframe was not pushed")
	}
	if out, _ := f.real(p(), 3633*time.Millisecond, now.Add(733*time.Millisecond)); len(out) != 1 {
		t.Error("the P-frame after it was not pushed")
	}
}
