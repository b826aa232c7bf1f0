package rtmptest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// FLV tag types (FLV specification v10.1, E.4.1).
const (
	flvAudio  = 8
	flvVideo  = 9
	flvScript = 18
)

// setDataFrame is "@setDataFrame" as an AMF0 string: publishers wrap
// onMetaData in it on the wire, and FLV files never contain it.
var setDataFrame = append([]byte{0x02, 0, 13}, "@setDataFrame"...)

// WriteFLV writes the session's audio, video and data messages as an FLV
// file, in arrival order and with their RTMP timestamps, the way an ingest
// that records would: ffprobe can then show what a viewer's demuxer makes
// of everything that arrived, data messages included, which nginx-rtmp's
// recordings drop.
func (s *Snapshot) WriteFLV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	// Signature, version 1, audio and video present, header length 9,
	// then PreviousTagSize0.
	bw.Write([]byte{'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0})
	var hdr [11]byte
	for _, m := range s.Messages {
		var typ byte
		body := m.Payload
		switch m.Kind {
		case KindAudio:
			typ = flvAudio
		case KindVideo:
			typ = flvVideo
		case KindData:
			typ = flvScript
			if len(body) >= len(setDataFrame) && string(body[:len(setDataFrame)]) == string(setDataFrame) {
				body = body[len(setDataFrame):]
			}
		default:
			continue
		}
		if len(body) >= 1<<24 {
			return fmt.Errorf("rtmptest: message of %d bytes does not fit an FLV tag", len(body))
		}
		n, ts := len(body), m.Timestamp
		hdr = [11]byte{typ, byte(n >> 16), byte(n >> 8), byte(n), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24)}
		bw.Write(hdr[:])
		bw.Write(body)
		bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(hdr)+n)))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("rtmptest: write FLV: %w", err)
	}
	return nil
}
