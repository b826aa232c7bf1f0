package egress

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// The RTMP publishing client. GStreamer 1.22's rtmp2sink cannot add fields
// to the connect command, and gortmplib's own client cannot either, so
// roomcast speaks the publish sequence itself on gortmplib's handshake and
// chunk layers, the way OBS and ffmpeg do.

// RTMP message types (RTMP specification 5.4, 7.1).
const (
	rtmpSetChunkSize  = 1
	rtmpAbort         = 2
	rtmpAck           = 3
	rtmpUserControl   = 4
	rtmpWindowAckSize = 5
	rtmpAudio         = 8
	rtmpVideo         = 9
	rtmpDataAMF0      = 18
	rtmpCommandAMF0   = 20
)

// Chunk streams, as ffmpeg uses them: 2 is reserved for control messages;
// keeping each kind on its own chunk stream lets headers compress.
const (
	csControl = 2
	csCommand = 3
	csAudio   = 4
	csData    = 5
	csVideo   = 6
)

const (
	// rtmpChunkSize is what OBS and ffmpeg announce: a 4 KiB chunk holds
	// most audio frames whole and costs 1 header byte per 4 KiB of video.
	rtmpChunkSize = 4096
	// rtmpConnectTimeout bounds dial, handshake and the publish
	// handshake together. Ingests answer in well under a second; 10 s
	// leaves room for a slow TLS handshake across an ocean.
	rtmpConnectTimeout = 10 * time.Second
	// rtmpWriteTimeout: a destination that accepts nothing for this long
	// is gone even if TCP has not said so. Longer than any queue the
	// output keeps (maxQueuedBytes is ~10 s at 6 Mb/s) would be pointless.
	rtmpWriteTimeout = 10 * time.Second
	// flashVer is what ingests expect from an encoder (FMLE/OBS style).
	flashVer = "FMLE/3.0 (compatible; roomcast)"
)

// rtmpPublisher is one publishing session. The output goroutine that made
// it owns the writes; one reader goroutine answers the server until the
// connection closes.
type rtmpPublisher struct {
	conn     net.Conn
	bc       *bytecounter.ReadWriter
	r        *rawmessage.Reader
	streamID uint32
	name     string
	txn      float64
	meta     []byte // "@setDataFrame" encoded, prepended to onMetaData

	wmu sync.Mutex // the reader answers pings and acks too
	w   *rawmessage.Writer

	readDone chan struct{} // closed when the reader has stopped
	readErr  error         // why, readable after readDone
}

// dialRTMP connects to u and publishes its stream key, sending extra in
// the connect command. It returns once the server said
// NetStream.Publish.Start.
func dialRTMP(ctx context.Context, u URL, extra amfObject, tlsConfig *tls.Config) (*rtmpPublisher, error) {
	addr, secure, app, tcURL, name, err := u.endpoint()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, rtmpConnectTimeout)
	defer cancel()
	var conn net.Conn
	if secure {
		cfg := &tls.Config{}
		if tlsConfig != nil {
			cfg = tlsConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		conn, err = (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	// The deadline covers the handshake and the publish sequence; a
	// context cancelled meanwhile closes the connection.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	p := &rtmpPublisher{conn: conn, bc: bytecounter.NewReadWriter(conn), name: name, readDone: make(chan struct{})}
	if err := p.publish(app, tcURL, extra); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rtmp: %w (%v)", ctx.Err(), err)
		}
		return nil, err
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("rtmp: %w", ctx.Err())
	}
	_ = conn.SetDeadline(time.Time{})
	go p.read()
	return p, nil
}

// publish runs the handshake and the sequence OBS and ffmpeg send:
// connect → releaseStream → FCPublish → createStream → publish.
func (p *rtmpPublisher) publish(app, tcURL string, extra amfObject) error {
	if _, _, err := handshake.DoClient(p.bc, false, false); err != nil {
		return fmt.Errorf("rtmp handshake: %w", err)
	}
	p.w = rawmessage.NewWriter(p.bc, p.bc.Writer, false)
	p.r = rawmessage.NewReader(p.bc, p.bc.Reader, func(count uint32) error {
		return p.writeControl(rtmpAck, binary.BigEndian.AppendUint32(nil, count))
	})
	if err := p.writeControl(rtmpSetChunkSize, binary.BigEndian.AppendUint32(nil, rtmpChunkSize)); err != nil {
		return fmt.Errorf("rtmp: %w", err)
	}
	p.w.SetChunkSize(rtmpChunkSize)

	obj := amfObject{{"app", app}, {"type", "nonprivate"}, {"flashVer", flashVer}, {"tcUrl", tcURL}}
	obj = append(obj, extra...)
	txn, err := p.command(0, "connect", obj)
	if err != nil {
		return err
	}
	if _, err := p.await(txn, "connect"); err != nil {
		return err
	}
	// Twitch, YouTube and nginx-rtmp accept releaseStream and FCPublish
	// or ignore them; nothing waits for their answers.
	if _, err := p.command(0, "releaseStream", nil, p.name); err != nil {
		return err
	}
	if _, err := p.command(0, "FCPublish", nil, p.name); err != nil {
		return err
	}
	if txn, err = p.command(0, "createStream", nil); err != nil {
		return err
	}
	res, err := p.await(txn, "createStream")
	if err != nil {
		return err
	}
	id, ok := arg(res, 1).(float64)
	if !ok || id < 1 || id > 1<<24 {
		return fmt.Errorf("rtmp createStream: server returned stream id %v", arg(res, 1))
	}
	p.streamID = uint32(id)
	if _, err := p.command(p.streamID, "publish", nil, p.name, "live"); err != nil {
		return err
	}
	if _, err := p.await(0, "publish"); err != nil {
		return err
	}
	p.meta, _ = appendAMF0(nil, "@setDataFrame")
	return nil
}

// await reads until the answer to transaction txn (or, for publish, the
// onStatus) arrives, handling control messages on the way.
func (p *rtmpPublisher) await(txn float64, what string) ([]any, error) {
	for {
		msg, err := p.r.Read()
		if err != nil {
			return nil, fmt.Errorf("rtmp %s: %w", what, err)
		}
		if err := p.control(msg); err != nil {
			return nil, err
		}
		if msg.Type != rtmpCommandAMF0 {
			continue
		}
		vals, err := decodeAMF0(msg.Body)
		if err != nil || len(vals) < 2 {
			continue // not ours to judge; the answer we wait for decides
		}
		name, _ := vals[0].(string)
		id, _ := vals[1].(float64)
		args := vals[2:]
		switch {
		case name == "onStatus" && what == "publish":
			code, desc, level := status(args)
			if code == "NetStream.Publish.Start" {
				return args, nil
			}
			if level == "error" {
				return nil, fmt.Errorf("rtmp publish refused: %s: %s", code, desc)
			}
			// Other statuses (e.g. NetStream.Publish.Reset) come before Start.
		case id != txn || txn == 0:
		case name == "_result":
			return args, nil
		case name == "_error":
			code, desc, _ := status(args)
			return nil, fmt.Errorf("rtmp %s refused: %s: %s", what, code, desc)
		}
	}
}

// status reads code, description and level from a status info object,
// the last object among args.
func status(args []any) (code, desc, level string) {
	for i := len(args) - 1; i >= 0; i-- {
		if obj, ok := args[i].(amfObject); ok {
			c, _ := obj.get("code")
			d, _ := obj.get("description")
			l, _ := obj.get("level")
			code, _ = c.(string)
			desc, _ = d.(string)
			level, _ = l.(string)
			return code, desc, level
		}
	}
	return "", "", ""
}

func arg(vals []any, i int) any {
	if i < len(vals) {
		return vals[i]
	}
	return nil
}

// control applies the protocol control messages a publisher must honour.
func (p *rtmpPublisher) control(msg *rawmessage.Message) error {
	switch msg.Type {
	case rtmpSetChunkSize:
		if len(msg.Body) < 4 {
			return errors.New("rtmp: short set chunk size")
		}
		return p.r.SetChunkSize(binary.BigEndian.Uint32(msg.Body) & 0x7fffffff)
	case rtmpAbort:
		if len(msg.Body) >= 4 {
			p.r.AbortChunkStream(binary.BigEndian.Uint32(msg.Body))
		}
	case rtmpWindowAckSize:
		if len(msg.Body) >= 4 {
			p.r.SetWindowAckSize(binary.BigEndian.Uint32(msg.Body))
		}
	case rtmpUserControl:
		// Ping request (event 6): answer with a ping response (7).
		if len(msg.Body) >= 6 && binary.BigEndian.Uint16(msg.Body) == 6 {
			return p.writeControl(rtmpUserControl, append([]byte{0, 7}, msg.Body[2:6]...))
		}
	}
	return nil
}

// read answers the server until the connection ends. A server that
// refuses the stream after publish (an onStatus error) ends the session.
func (p *rtmpPublisher) read() {
	defer close(p.readDone)
	for {
		msg, err := p.r.Read()
		if err == nil {
			err = p.control(msg)
		}
		if err == nil && msg.Type == rtmpCommandAMF0 {
			vals, _ := decodeAMF0(msg.Body)
			if name, _ := arg(vals, 0).(string); name == "onStatus" && len(vals) > 2 {
				if code, desc, level := status(vals[2:]); level == "error" {
					err = fmt.Errorf("rtmp: server ended the stream: %s: %s", code, desc)
				}
			}
		}
		if err != nil {
			p.readErr = err
			p.conn.Close()
			return
		}
	}
}

func (p *rtmpPublisher) command(streamID uint32, name string, values ...any) (float64, error) {
	p.txn++
	body, err := appendAMF0(nil, append([]any{name, p.txn}, values...)...)
	if err != nil {
		return 0, fmt.Errorf("rtmp %s: %w", name, err)
	}
	if err := p.write(csCommand, rtmpCommandAMF0, streamID, 0, body); err != nil {
		return 0, fmt.Errorf("rtmp %s: %w", name, err)
	}
	return p.txn, nil
}

func (p *rtmpPublisher) writeControl(typ uint8, body []byte) error {
	return p.write(csControl, typ, 0, 0, body)
}

// gortmplib's chunk layer writes the message stream id big-endian; the
// RTMP specification has it little-endian (rtmptest notes the same quirk
// from the reading side). Swapping here puts the real id on the wire.
func streamIDToWire(v uint32) uint32 { return bits.ReverseBytes32(v) }

func (p *rtmpPublisher) write(cs byte, typ uint8, streamID uint32, ts time.Duration, body []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(rtmpWriteTimeout))
	return p.w.Write(&rawmessage.Message{
		ChunkStreamID:   cs,
		Timestamp:       ts,
		Type:            typ,
		MessageStreamID: streamIDToWire(streamID),
		Body:            body,
	})
}

// writeTag sends one FLV tag as an RTMP message on the published stream.
// onMetaData goes as @setDataFrame, which tells the server to keep it for
// players that join later; other script data goes as it is.
func (p *rtmpPublisher) writeTag(t Tag) error {
	ts := time.Duration(t.Timestamp) * time.Millisecond
	switch t.Type {
	case TagAudio:
		return p.write(csAudio, rtmpAudio, p.streamID, ts, t.Data)
	case TagVideo:
		return p.write(csVideo, rtmpVideo, p.streamID, ts, t.Data)
	}
	body := t.Data
	if isMetaData(t.Data) {
		body = append(append(make([]byte, 0, len(p.meta)+len(t.Data)), p.meta...), t.Data...)
	}
	return p.write(csData, rtmpDataAMF0, p.streamID, ts, body)
}

// metaDataName is "onMetaData" as an AMF0 string, the start of the
// script tag flvmux and the stream write.
var metaDataName, _ = appendAMF0(nil, HandlerMetaData)

func isMetaData(body []byte) bool {
	return len(body) >= len(metaDataName) && string(body[:len(metaDataName)]) == string(metaDataName)
}

// close ends the session. Clean sends FCUnpublish and deleteStream first,
// which ingests take as the end of the broadcast rather than a failure.
func (p *rtmpPublisher) close(clean bool) {
	if clean {
		_, _ = p.command(0, "FCUnpublish", nil, p.name)
		_, _ = p.command(0, "deleteStream", nil, float64(p.streamID))
	}
	p.conn.Close()
	<-p.readDone
}

// done is closed when the server closed the connection or refused the
// stream; err says why.
func (p *rtmpPublisher) done() <-chan struct{} { return p.readDone }

func (p *rtmpPublisher) err() error {
	select {
	case <-p.readDone:
		return p.readErr
	default:
		return nil
	}
}

// bytesWritten counts everything sent on the connection.
func (p *rtmpPublisher) bytesWritten() uint64 { return p.bc.Writer.Count() }
