package e2e

import (
	"bufio"
	"encoding/binary"
	"os"

	"github.com/roomcast/roomcast/internal/rtmptest"
)

// writeFLV writes the audio and video messages of a recorded session as
// an FLV file, for ffmpeg to decode.
func writeFLV(path string, snap *rtmptest.Snapshot) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.Write([]byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0})
	for _, m := range snap.Messages {
		var typ byte
		switch m.Kind {
		case rtmptest.KindAudio:
			typ = 8
		case rtmptest.KindVideo:
			typ = 9
		default:
			continue
		}
		n, ts := len(m.Payload), m.Timestamp
		w.Write([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0})
		w.Write(m.Payload)
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(11+n)))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
