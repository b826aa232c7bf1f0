package rtmptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// RTMP message types (RTMP specification, section 5.4 and 7.1).
const (
	msgSetChunkSize     = 1
	msgAbort            = 2
	msgAcknowledgement  = 3
	msgUserControl      = 4
	msgWindowAckSize    = 5
	msgSetPeerBandwidth = 6
	msgAudio            = 8
	msgVideo            = 9
	msgDataAMF3         = 15
	msgCommandAMF3      = 17
	msgDataAMF0         = 18
	msgCommandAMF0      = 20
)

// User control event types.
const (
	eventStreamBegin = 0
	eventPingRequest = 6
	eventPingReply   = 7
)

// Chunk streams the receiver writes on: control messages must use 2;
// 5 for stream status follows nginx-rtmp.
const (
	csControl = 2
	csStatus  = 5
)

// Values the receiver announces after connect. 2.5 MB window and peer
// bandwidth are what nginx-rtmp and MediaMTX send; a large outgoing chunk
// size keeps replies in one chunk.
const (
	windowAckSize = 2_500_000
	peerBandwidth = 2_500_000
	outChunkSize  = 65536
)

// rtmpConn is the chunk-level connection after the handshake. gortmplib's
// rawmessage package does chunk reassembly, extended timestamps and
// acknowledgements; message bodies stay raw so nothing is lost in decoding.
type rtmpConn struct {
	r *rawmessage.Reader
	w *rawmessage.Writer
}

func doHandshake(conn net.Conn) (*rtmpConn, error) {
	bc := bytecounter.NewReadWriter(conn)
	keyIn, _, err := handshake.DoServer(bc, false)
	if err != nil {
		return nil, fmt.Errorf("rtmp handshake: %w", err)
	}
	if keyIn != nil {
		return nil, errors.New("rtmp handshake: encrypted RTMP (RTMPE) is not supported")
	}
	c := &rtmpConn{w: rawmessage.NewWriter(bc, bc.Writer, false)}
	c.r = rawmessage.NewReader(bc, bc.Reader, func(count uint32) error {
		return c.writeControl(msgAcknowledgement, be32(count))
	})
	return c, nil
}

func (c *rtmpConn) writeControl(typ uint8, body []byte) error {
	return c.w.Write(&rawmessage.Message{ChunkStreamID: csControl, Type: typ, Body: body})
}

// gortmplib keeps the message stream id in the byte order it has on the
// wire, little-endian, but decodes it as big-endian (it writes its own
// stream 1 as 0x1000000). Swap at this boundary so recorded ids are the
// real ones.
func streamIDFromWire(v uint32) uint32 { return bits.ReverseBytes32(v) }
func streamIDToWire(v uint32) uint32   { return bits.ReverseBytes32(v) }

func (c *rtmpConn) writeCommand(cs byte, streamID uint32, values ...any) error {
	body, err := amf0.Data(values).Marshal()
	if err != nil {
		return fmt.Errorf("encode %v: %w", values[0], err)
	}
	return c.w.Write(&rawmessage.Message{
		ChunkStreamID:   cs,
		Type:            msgCommandAMF0,
		MessageStreamID: streamIDToWire(streamID),
		Body:            body,
	})
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// run serves the session until the connection closes, then records how it
// ended.
func (s *Session) run(c *rtmpConn, receiverClosed <-chan struct{}) {
	p := &publisher{s: s, c: c, nextStreamID: 1}
	err := p.serve()

	end := Abrupt
	switch {
	case p.clean:
		end = Clean
	case s.dropped.Load():
		end = Dropped
	default:
		select {
		case <-receiverClosed:
			end = Dropped
		default:
		}
	}
	if end != Abrupt || errors.Is(err, io.EOF) {
		err = nil
	}
	s.update(func(sn *Snapshot) {
		sn.End = end
		sn.EndTime = time.Now()
		sn.Err = err
	})
}

// publisher speaks the server side of an RTMP publish.
type publisher struct {
	s            *Session
	c            *rtmpConn
	nextStreamID uint32
	clean        bool // FCUnpublish or deleteStream seen
}

func (p *publisher) serve() error {
	for {
		raw, err := p.c.r.Read()
		if err != nil {
			return err
		}
		if err := p.handle(raw, time.Now()); err != nil {
			return err
		}
	}
}

func (p *publisher) handle(raw *rawmessage.Message, now time.Time) error {
	m := Message{
		Time:      now,
		Timestamp: uint32(raw.Timestamp / time.Millisecond),
		StreamID:  streamIDFromWire(raw.MessageStreamID),
		Payload:   raw.Body,
	}
	switch raw.Type {
	case msgSetChunkSize:
		if len(raw.Body) < 4 {
			return errors.New("short set chunk size message")
		}
		// The top bit is reserved and must be zero.
		return p.c.r.SetChunkSize(binary.BigEndian.Uint32(raw.Body) & 0x7fffffff)
	case msgAbort:
		if len(raw.Body) >= 4 {
			p.c.r.AbortChunkStream(binary.BigEndian.Uint32(raw.Body))
		}
	case msgWindowAckSize:
		if len(raw.Body) >= 4 {
			p.c.r.SetWindowAckSize(binary.BigEndian.Uint32(raw.Body))
		}
	case msgUserControl:
		if len(raw.Body) >= 6 && binary.BigEndian.Uint16(raw.Body) == eventPingRequest {
			reply := append([]byte{0, eventPingReply}, raw.Body[2:6]...)
			return p.c.writeControl(msgUserControl, reply)
		}
	case msgAudio:
		m.Kind = KindAudio
		p.s.record(m)
	case msgVideo:
		m.Kind = KindVideo
		p.s.record(m)
	case msgDataAMF0, msgDataAMF3:
		m.Kind = KindData
		m.Values, m.DecodeErr = DecodeAMF0(amf0Body(raw))
		m.Name = handlerName(m.Values)
		p.s.record(m)
	case msgCommandAMF0, msgCommandAMF3:
		return p.command(raw, m)
	}
	// Acknowledgement and peer bandwidth need no action from an ingest.
	return nil
}

// amf0Body strips the format byte that AMF3 message types put in front of
// what is, from every publisher we know, still AMF0.
func amf0Body(raw *rawmessage.Message) []byte {
	if (raw.Type == msgDataAMF3 || raw.Type == msgCommandAMF3) && len(raw.Body) > 0 {
		return raw.Body[1:]
	}
	return raw.Body
}

func handlerName(values []any) string {
	if len(values) == 0 {
		return ""
	}
	name, _ := values[0].(string)
	if name == "@setDataFrame" && len(values) > 1 {
		name, _ = values[1].(string)
	}
	return name
}

func (p *publisher) command(raw *rawmessage.Message, m Message) error {
	m.Kind = KindCommand
	values, err := DecodeAMF0(amf0Body(raw))
	m.DecodeErr = err
	if len(values) > 0 {
		m.Name, _ = values[0].(string)
	}
	if len(values) > 1 {
		m.TransactionID, _ = values[1].(float64)
	}
	if len(values) > 2 {
		m.Values = values[2:]
	}

	// Record first, so a test waiting for the command is released even if
	// the reply fails.
	switch m.Name {
	case "connect":
		obj, _ := arg(m.Values, 0).(map[string]any)
		app, _ := obj["app"].(string)
		p.s.update(func(sn *Snapshot) {
			sn.Connect, sn.App = obj, app
			sn.Messages = append(sn.Messages, m)
		})
	case "publish":
		name, _ := arg(m.Values, 1).(string)
		p.s.update(func(sn *Snapshot) {
			sn.StreamName = name
			sn.Messages = append(sn.Messages, m)
		})
	case "FCUnpublish", "deleteStream":
		p.clean = true
		p.s.record(m)
	default:
		p.s.record(m)
	}
	return p.reply(raw, m)
}

func arg(values []any, i int) any {
	if i < len(values) {
		return values[i]
	}
	return nil
}

// reply answers the way nginx-rtmp and MediaMTX do, which is what
// rtmp2sink, ffmpeg and OBS expect.
func (p *publisher) reply(raw *rawmessage.Message, m Message) error {
	cs, txn := raw.ChunkStreamID, m.TransactionID
	switch m.Name {
	case "connect":
		if err := p.c.writeControl(msgWindowAckSize, be32(windowAckSize)); err != nil {
			return err
		}
		// Limit type 2 (dynamic), as nginx-rtmp sends.
		if err := p.c.writeControl(msgSetPeerBandwidth, append(be32(peerBandwidth), 2)); err != nil {
			return err
		}
		if err := p.c.writeControl(msgSetChunkSize, be32(outChunkSize)); err != nil {
			return err
		}
		p.c.w.SetChunkSize(outChunkSize)
		return p.c.writeCommand(cs, 0, "_result", txn,
			amf0.Object{
				{Key: "fmsVer", Value: "FMS/3,0,1,123"},
				{Key: "capabilities", Value: float64(31)},
			},
			amf0.Object{
				{Key: "level", Value: "status"},
				{Key: "code", Value: "NetConnection.Connect.Success"},
				{Key: "description", Value: "Connection succeeded."},
				{Key: "objectEncoding", Value: float64(0)},
			})
	case "releaseStream", "FCPublish":
		if txn == 0 {
			return nil
		}
		return p.c.writeCommand(cs, 0, "_result", txn, nil, amf0.Undefined{})
	case "createStream":
		id := p.nextStreamID
		p.nextStreamID++
		return p.c.writeCommand(cs, 0, "_result", txn, nil, float64(id))
	case "publish":
		name, _ := arg(m.Values, 1).(string)
		body := append([]byte{0, eventStreamBegin}, be32(m.StreamID)...)
		if err := p.c.writeControl(msgUserControl, body); err != nil {
			return err
		}
		return p.c.writeCommand(csStatus, m.StreamID, "onStatus", float64(0), nil, status(
			"NetStream.Publish.Start", name+" is now published.", name))
	case "deleteStream":
		// Like nginx-rtmp, answer deleteStream only, and ignore a failed
		// write: publishers close right after it. FCUnpublish gets no
		// answer because publishers send deleteStream right behind it and
		// close; a reply that reaches a closed socket makes its kernel
		// send a reset, which can discard the unread deleteStream here.
		// rtmp2sink 1.22 passes the stream name instead of the id.
		id, ok := arg(m.Values, 1).(float64)
		if !ok {
			id = float64(p.nextStreamID - 1)
		}
		_ = p.c.writeCommand(csStatus, uint32(id), "onStatus", float64(0), nil, status(
			"NetStream.Unpublish.Success", "Stop publishing.", ""))
	}
	return nil
}

func status(code, description, details string) amf0.Object {
	obj := amf0.Object{
		{Key: "level", Value: "status"},
		{Key: "code", Value: code},
		{Key: "description", Value: description},
	}
	if details != "" {
		obj = append(obj, amf0.ObjectEntry{Key: "details", Value: details})
	}
	return obj
}
