package egress

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// FLV tag types (FLV spec v10.1, E.4.1).
const (
	TagAudio  = 8
	TagVideo  = 9
	TagScript = 18
)

const (
	flvHeaderLen   = 9
	tagHeaderLen   = 11
	prevTagSizeLen = 4
)

// Tag is one FLV tag: the unit flvmux produces and an output sends as one
// RTMP message.
type Tag struct {
	Type      uint8
	Timestamp uint32 // milliseconds
	Data      []byte // the tag body, without header or trailer
}

// IsKeyframe reports whether t is a video tag holding an AVC keyframe.
func (t Tag) IsKeyframe() bool {
	return t.Type == TagVideo && len(t.Data) >= 2 && t.Data[0]>>4 == 1 && t.Data[1] == 1
}

// IsSequenceHeader reports whether t carries codec configuration: the AVC
// decoder configuration record or the AAC AudioSpecificConfig. Players need
// them before the first frame, so every new output session gets them first.
func (t Tag) IsSequenceHeader() bool {
	switch t.Type {
	case TagVideo:
		return len(t.Data) >= 2 && t.Data[0]&0x0f == 7 && t.Data[1] == 0
	case TagAudio:
		return len(t.Data) >= 2 && t.Data[0]>>4 == 10 && t.Data[1] == 0
	}
	return false
}

// IsMedia reports whether t is a frame of audio or video, not configuration.
func (t Tag) IsMedia() bool {
	return (t.Type == TagAudio || t.Type == TagVideo) && !t.IsSequenceHeader()
}

// AppendTo appends the encoded tag with its PreviousTagSize trailer, the
// form tags take in an FLV file.
func (t Tag) AppendTo(b []byte) []byte {
	n := len(t.Data)
	b = append(b, t.Type,
		byte(n>>16), byte(n>>8), byte(n),
		byte(t.Timestamp>>16), byte(t.Timestamp>>8), byte(t.Timestamp), byte(t.Timestamp>>24),
		0, 0, 0) // stream id, always 0
	b = append(b, t.Data...)
	return binary.BigEndian.AppendUint32(b, uint32(tagHeaderLen+n))
}

// tagSplitter cuts an FLV byte stream into tags, whatever the buffer
// boundaries: flvmux pushes one tag per buffer today, but nothing promises it.
type tagSplitter struct {
	buf        []byte
	headerSeen bool
}

var errNotFLV = errors.New("not an FLV stream")

// write appends p and calls emit for each complete tag. The Data of an
// emitted tag is only valid during the call.
func (s *tagSplitter) write(p []byte, emit func(Tag)) error {
	s.buf = append(s.buf, p...)
	off := 0
	if !s.headerSeen {
		if len(s.buf) < flvHeaderLen+prevTagSizeLen {
			return nil
		}
		if string(s.buf[:3]) != "FLV" {
			return errNotFLV
		}
		off = int(binary.BigEndian.Uint32(s.buf[5:9])) + prevTagSizeLen
		if len(s.buf) < off {
			return nil
		}
		s.headerSeen = true
	}
	for len(s.buf)-off >= tagHeaderLen {
		b := s.buf[off:]
		size := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		total := tagHeaderLen + size + prevTagSizeLen
		if len(b) < total {
			break
		}
		typ := b[0] & 0x1f
		if typ != TagAudio && typ != TagVideo && typ != TagScript {
			return fmt.Errorf("flv: unknown tag type %d", typ)
		}
		ts := uint32(b[7])<<24 | uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		emit(Tag{Type: typ, Timestamp: ts, Data: b[tagHeaderLen : tagHeaderLen+size]})
		off += total
	}
	s.buf = s.buf[:copy(s.buf, s.buf[off:])]
	return nil
}
