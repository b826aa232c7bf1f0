package rtmptest

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
)

func TestWriteFLV(t *testing.T) {
	meta := append(append([]byte(nil), setDataFrame...), 0x02, 0, 1, 'm')
	snap := &Snapshot{Messages: []Message{
		{Kind: KindCommand, Name: "publish"},
		{Kind: KindData, Timestamp: 0, Payload: meta},
		{Kind: KindVideo, Timestamp: 0x01020304, Payload: []byte{0x17, 1}},
		{Kind: KindAudio, Timestamp: 5, Payload: []byte{0xaf}},
	}}
	var b bytes.Buffer
	if err := snap.WriteFLV(&b); err != nil {
		t.Fatal(err)
	}
	want := []byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0,
		18, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 1, 'm', 0, 0, 0, 15, // @setDataFrame stripped
		9, 0, 0, 2, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 0x17, 1, 0, 0, 0, 13, // extended timestamp byte last
		8, 0, 0, 1, 0, 0, 5, 0, 0, 0, 0, 0xaf, 0, 0, 0, 12}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("FLV\n% x\nwant\n% x", b.Bytes(), want)
	}
}

func TestRejectNext(t *testing.T) {
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.RejectNext(1)
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("rejected connection read %v, want EOF", err)
	}
	c.Close()
	if n := r.Rejected(); n != 1 {
		t.Errorf("Rejected = %d, want 1", n)
	}
	// The next one is served again.
	c, err = net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := handshake.DoClient(bytecounter.NewReadWriter(c), false, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if s, err := r.WaitSession(ctx); err != nil || s.ID != 1 {
		t.Errorf("WaitSession = %v, %v; want session 1", s, err)
	}
}
