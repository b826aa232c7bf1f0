// Package egress is roomcast's media side: it takes timestamped RTP packets
// per track, muxes them with GStreamer into FLV, and sends the FLV tag
// stream to RTMP destinations. It knows nothing about the SFU the tracks
// come from; the room side implements Track.
//
// The data flows sources → depayload/decode → parse/encode → flvmux (the
// GStreamer pipeline, pipeline.go) → the tag stream (tags.go: merged
// onMetaData, onCuePoint and onTextData from SendData, cached headers) →
// one output per destination (output.go), each an RTMP session of roomcast's
// own client (rtmp.go) that reconnects with backoff.
package egress

import (
	"time"

	"github.com/pion/rtp"
)

// Kind is a track's media kind.
type Kind int

const (
	Video Kind = iota + 1
	Audio
)

func (k Kind) String() string {
	switch k {
	case Video:
		return "video"
	case Audio:
		return "audio"
	}
	return "unknown"
}

// Codec describes a track's RTP stream.
type Codec struct {
	Kind        Kind
	MimeType    string // "video/H264", "audio/opus", as WebRTC names them
	ClockRate   uint32
	PayloadType uint8
	// Width and Height are the video size the publisher announced, 0 if
	// unknown: the size of the black frames sent while the track has sent
	// no keyframe (a camera muted before the broadcast), so that in
	// passthrough the camera's first picture does not change the size.
	Width, Height int
}

// Track is a source of timestamped RTP packets for one media track: the seam
// between a room (LiveKit, a future Galène adapter, a test) and the media
// side.
type Track interface {
	Codec() Codec
	// ReadRTP returns the next packet in sequence order and its presentation
	// time. All tracks of one stream share one clock, so the times of audio
	// and video packets that were captured together are equal. ReadRTP
	// returns io.EOF when the track has ended.
	ReadRTP() (*rtp.Packet, time.Duration, error)
	// RequestKeyframe asks the publisher for a keyframe (an RTCP PLI). It
	// must not block.
	RequestKeyframe()
	// Close ends the track: a blocked ReadRTP returns.
	Close() error
}
