package egress

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/av1/obu"
)

// av1Caps is what the reader pushes for an AV1 track: whole temporal
// units in the low-overhead bitstream format (AV1 spec 5.2: every OBU with
// its size field), which av1parse takes as they are. GStreamer 1.22 has no
// AV1 RTP depayloader (rtpav1depay is in gst-plugins-rs only), so the
// reader depacketizes in Go.
const av1Caps = "video/x-av1,stream-format=obu-stream,alignment=tu"

// temporalDelimiter starts every temporal unit of a low-overhead bitstream
// (AV1 spec 7.5). The RTP payload format drops it (AV1 RTP spec 5), so it
// is put back: av1parse splits and checks temporal units by it.
var temporalDelimiter = []byte{0x12, 0x00}

// av1Assembler turns a track's AV1 RTP packets, in order, into temporal
// units: all the packets of one RTP timestamp, the marker bit on the last.
// pion's AV1Depacketizer turns each payload into OBUs with their size
// fields and carries an OBU fragmented across packets over to the next.
//
// av1parse and av1dec (libaom) do not conceal damage the way vp8dec does:
// a truncated frame fails the pipeline ("Failed to decode frame") and an
// unparsable one ends the branch (measured). So only whole temporal units
// go in, the first one and every one after a damaged one a keyframe (the
// N bit of the first packet's aggregation header: it starts a coded video
// sequence, sequence header first). Damage the room side's jitter buffer
// lets through: it releases a frame from any packet with Z=0 (one that
// starts an OBU) to the next marker, so after a lost first packet the rest
// of a frame can arrive from an OBU boundary on, e.g. at a tile group. A
// Track without such a buffer may also leave holes inside a frame, which
// only the track's own sequence numbers show (see arrived).
// One av1Assembler belongs to one reader goroutine.
type av1Assembler struct {
	depack codecs.AV1Depacketizer

	// The last packet as the track gave it.
	seen    bool
	lastSeq uint16
	lastTS  uint32

	tu      []byte        // the temporal unit being assembled, delimiter first
	ts      uint32        // its RTP timestamp
	pts     time.Duration // its presentation time
	open    bool          // a temporal unit is being assembled
	damaged bool          // it lacks a part: dropped at its end
	waitKey bool          // drop temporal units until a keyframe
}

func newAV1Assembler() *av1Assembler {
	return &av1Assembler{waitKey: true}
}

// arrived sees each packet as the track gave it, before the gap filler
// renumbers it: a sequence gap between two packets of one RTP timestamp is
// a hole in that frame, which add will then drop.
func (a *av1Assembler) arrived(pkt *rtp.Packet) {
	if a.seen && pkt.Timestamp == a.lastTS && pkt.SequenceNumber != a.lastSeq+1 {
		a.damaged = true
	}
	a.seen, a.lastSeq, a.lastTS = true, pkt.SequenceNumber, pkt.Timestamp
}

// add takes the track's next packet. When pkt completes a temporal unit it
// returns it and its presentation time; tu is valid until the next call.
// keyframeWanted reports a temporal unit dropped while waiting for a
// keyframe.
func (a *av1Assembler) add(pkt *rtp.Packet, pts time.Duration) (tu []byte, tuPTS time.Duration, keyframeWanted bool) {
	if a.open && pkt.Timestamp != a.ts {
		// The last one never got its marker: its end was lost.
		a.open, a.waitKey = false, true
	}
	if !a.open {
		a.start(pkt, pts)
	}
	obus, err := a.depack.Unmarshal(pkt.Payload)
	if err != nil {
		a.damaged = true
	}
	a.tu = append(a.tu, obus...)
	if !pkt.Marker {
		return nil, 0, false
	}
	a.open = false
	// Y on the last packet: an OBU continues past the end of the unit.
	if a.damaged || a.depack.Y || !startsTemporalUnit(a.tu[len(temporalDelimiter):]) {
		a.waitKey = true
		return nil, 0, true
	}
	return a.tu, a.pts, false
}

// start opens a temporal unit at its first packet.
func (a *av1Assembler) start(pkt *rtp.Packet, pts time.Duration) {
	a.open, a.ts, a.pts, a.damaged = true, pkt.Timestamp, pts, false
	a.tu = append(a.tu[:0], temporalDelimiter...)
	key := isAV1KeyframeStart(pkt.Payload)
	switch {
	case len(pkt.Payload) == 0 || pkt.Payload[0]&av1Z != 0:
		a.damaged = true // it continues an OBU whose start was lost
	case key:
		a.waitKey = false
	case a.waitKey:
		a.damaged = true
	}
}

// Aggregation header bits (AV1 RTP spec 4.4): Z, the first OBU element
// continues an OBU from the previous packet; N, the packet is the first of
// a coded video sequence.
const (
	av1Z = 0x80
	av1N = 0x08
)

// isAV1KeyframeStart reports whether payload is the first packet of a
// keyframe: Z clear and N set. LiveKit's SFU decides the same way.
func isAV1KeyframeStart(payload []byte) bool {
	return len(payload) > 0 && payload[0]&(av1Z|av1N) == av1N
}

// startsTemporalUnit reports whether obus (after the delimiter) begin with
// an OBU that may begin a temporal unit: a sequence header, metadata,
// padding, or a frame or its header. A unit whose first packets were lost
// begins instead with a tile group or a redundant frame header, or is
// empty.
func startsTemporalUnit(obus []byte) bool {
	if len(obus) == 0 {
		return false
	}
	switch obu.Type(obus[0] >> 3 & 0x0f) {
	case obu.OBUSequenceHeader, obu.OBUMetadata, obu.OBUPadding, obu.OBUFrame, obu.OBUFrameHeader:
		return true
	}
	return false
}
