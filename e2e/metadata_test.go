package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/rtmptest"
)

// TestRoomMetadata is the producer's story for metadata: alice goes live
// from the room with custom stream properties and ingest connect fields,
// drops 20 cue points and captions at random moments, updates the
// metadata, and survives the ingest dropping her.
func TestRoomMetadata(t *testing.T) {
	s := startRoomSetup(t, func(c *config.Config) {
		c.Room.MessageRate, c.Room.MessageBurst = 100, 100 // the broadcast's metadata limit is the one under test
		c.Broadcast.MetadataRate, c.Broadcast.MetadataBurst = 10, 25
		c.Broadcast.MaxMetadataBytes = 4096
	})
	send(t, s.alice, `{"type":"start","requestId":"go","metadata":{"title":"Morning show","episode":12},`+
		`"outputs":[{"destination":"rec","connectInfo":{"token":"t0k","priority":2,"hd":true}}]}`)
	id := answer(t, s.alice, "go").BroadcastID
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sess, err := s.recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s.alice, id, "broadcasting", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateBroadcasting })

	// The connect command carries the fields, typed.
	snap := sess.Snapshot()
	if snap.Connect["token"] != "t0k" || snap.Connect["priority"] != 2.0 || snap.Connect["hd"] != true {
		t.Errorf("connect command %v, want token, priority and hd with their types", snap.Connect)
	}
	// One onMetaData with the stream's fields and the custom keys.
	meta := snap.DataNamed("onMetaData")
	if len(meta) != 1 {
		t.Fatalf("%d onMetaData at the start, want 1", len(meta))
	}
	fields := metaFields(meta[0])
	for k, want := range map[string]any{"title": "Morning show", "episode": 12.0, "width": 640.0, "height": 360.0, "videocodecid": 7.0, "audiocodecid": 10.0} {
		if fields[k] != want {
			t.Errorf("onMetaData[%s] = %v, want %v", k, fields[k], want)
		}
	}
	if meta[0].Values[0] != "@setDataFrame" {
		t.Errorf("onMetaData sent as %v, want @setDataFrame", meta[0].Values[0])
	}

	// 20 cue points and captions at random moments.
	type sent struct {
		at      time.Time
		handler string
		ts      int64
	}
	var sends []sent
	for i := range 20 {
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond) // random moments: the stimulus, not a wait
		handler, data := "onCuePoint", fmt.Sprintf(`{"name":"cue-%d","type":"event","parameters":{"n":%d}}`, i, i)
		if i%2 == 1 {
			handler, data = "onTextData", fmt.Sprintf(`{"text":"caption %d","language":"en"}`, i)
		}
		at := time.Now()
		send(t, s.alice, fmt.Sprintf(`{"type":"metadata","requestId":"m%d","handler":%q,"data":%s}`, i, handler, data))
		st := answer(t, s.alice, fmt.Sprintf("m%d", i))
		if st.Type != bridge.TypeAck || st.Timestamp == nil {
			t.Fatalf("metadata %d answered %+v", i, st)
		}
		sends = append(sends, sent{at, handler, *st.Timestamp})
	}
	snap, err = sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool {
		return len(sn.DataNamed("onCuePoint"))+len(sn.DataNamed("onTextData")) >= 20
	})
	if err != nil {
		t.Fatal(err)
	}
	var lastMedia uint32
	n := 0
	for _, m := range snap.Messages {
		switch {
		case m.Kind == rtmptest.KindAudio || m.Kind == rtmptest.KindVideo:
			lastMedia = m.Timestamp
		case m.Kind == rtmptest.KindData && (m.Name == "onCuePoint" || m.Name == "onTextData"):
			if n >= len(sends) {
				t.Fatalf("more than %d cue/text messages arrived", len(sends))
			}
			want := sends[n]
			if m.Name != want.handler || int64(m.Timestamp) != want.ts {
				t.Errorf("message %d: %s at %d ms, want %s at %d ms (in order, once)", n, m.Name, m.Timestamp, want.handler, want.ts)
			}
			if m.Timestamp < lastMedia {
				t.Errorf("message %d at %d ms is behind the media before it (%d ms)", n, m.Timestamp, lastMedia)
			}
			if media, ok := mediaAt(snap, want.at); !ok || absDiff(m.Timestamp, media) > 100 {
				t.Errorf("message %d at %d ms; media at the moment it was sent was at %d ms: want within 100 ms", n, m.Timestamp, media)
			}
			n++
		}
	}
	if n != len(sends) {
		t.Errorf("%d cue/text messages arrived, want %d", n, len(sends))
	}

	// An update arrives merged with what was there.
	send(t, s.alice, `{"type":"metadata","requestId":"upd","handler":"onMetaData","data":{"title":"Morning show, part 2"}}`)
	if st := answer(t, s.alice, "upd"); st.Type != bridge.TypeAck {
		t.Fatalf("update answered %+v", st)
	}
	snap, err = sess.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return len(sn.DataNamed("onMetaData")) >= 2 })
	if err != nil {
		t.Fatal(err)
	}
	merged := metaFields(snap.DataNamed("onMetaData")[1])
	if merged["title"] != "Morning show, part 2" || merged["episode"] != 12.0 || merged["width"] != 640.0 {
		t.Errorf("updated onMetaData %v, want the new title merged with episode and the stream fields", merged)
	}

	// Bad metadata is refused with a clear error; the stream goes on.
	deep := `{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}`
	for _, tc := range []struct {
		name, msg string
		code      int
		text      string
	}{
		{"depth 7", `{"type":"metadata","requestId":"b1","handler":"onMetaData","data":` + deep + `}`, bridge.CodeInvalidMetadata, "depth 7"},
		{"over the size limit", `{"type":"metadata","requestId":"b2","handler":"onTextData","data":{"text":"` + strings.Repeat("x", 6000) + `"}}`, bridge.CodeInvalidMetadata, "limit"},
		{"unsupported handler", `{"type":"metadata","requestId":"b3","handler":"onFoo","data":{}}`, bridge.CodeInvalidMetadata, "onFoo"},
		{"non-object data", `{"type":"metadata","requestId":"b4","handler":"onCuePoint","data":"ad"}`, bridge.CodeInvalidRequest, `"data" must be an object`},
		{"NaN", `{"type":"metadata","requestId":"b5","handler":"onCuePoint","data":{"name":"x","time":NaN}}`, bridge.CodeInvalidRequest, "not valid JSON"},
		{"invalid UTF-8", "{\"type\":\"metadata\",\"requestId\":\"b6\",\"handler\":\"onTextData\",\"data\":{\"text\":\"\xff\xfe\"}}", bridge.CodeInvalidRequest, "UTF-8"},
	} {
		send(t, s.alice, tc.msg)
		st := answer(t, s.alice, tc.msg[strings.Index(tc.msg, `"b`)+1:strings.Index(tc.msg, `"b`)+3])
		if st.Error == nil || st.Error.Code != tc.code || !strings.Contains(st.Error.Message, tc.text) {
			t.Errorf("%s: answered %+v, want code %d mentioning %q", tc.name, st.Error, tc.code, tc.text)
		}
	}

	// A flood of metadata hits the broadcast's own rate limit
	// (broadcast.metadata_burst 25 here); every message is answered.
	const flood = 40
	for i := range flood {
		send(t, s.alice, fmt.Sprintf(`{"type":"metadata","requestId":"f%d","handler":"onTextData","data":{"text":"%d"}}`, i, i))
	}
	limited := 0
	for i := range flood {
		st := answer(t, s.alice, fmt.Sprintf("f%d", i))
		switch {
		case st.Error != nil && st.Error.Code == bridge.CodeRateLimited:
			limited++
		case st.Error != nil:
			t.Errorf("flood message %d: %+v", i, st.Error)
		}
	}
	if limited < flood-25-5 {
		t.Errorf("%d of %d flood messages rate-limited, want at least %d", limited, flood, flood-30)
	}

	// The ingest drops us: status says reconnecting, then the new session
	// starts with the merged metadata, both sequence headers and a keyframe.
	sess.Drop()
	waitStatus(t, s.alice, id, "reconnecting", func(st bridge.Status) bool { return st.Broadcast.State == bridge.StateReconnecting })
	sess2, err := s.recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap2, err := sess2.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return len(sn.Video()) > 0 && len(sn.Audio()) > 1 })
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for _, m := range snap2.Messages {
		if m.Kind != rtmptest.KindCommand && len(first) < 4 {
			first = append(first, describe(m))
		}
	}
	if strings.Join(first, " ") != "onMetaData avc-header aac-header keyframe" {
		t.Errorf("new session starts %v, want onMetaData, both headers, a keyframe", first)
	}
	if m := metaFields(snap2.DataNamed("onMetaData")[0]); m["title"] != "Morning show, part 2" {
		t.Errorf("new session's onMetaData %v lacks the update", m)
	}
	st := waitStatus(t, s.alice, id, "live again", func(st bridge.Status) bool {
		return st.Broadcast.State == bridge.StateBroadcasting && st.Broadcast.Outputs[0].Reconnects == 1
	})
	if o := st.Broadcast.Outputs[0]; o.State != "live" {
		t.Errorf("output after reconnect: %+v", o)
	}
}

// metaFields returns the object of an onMetaData data message.
func metaFields(m rtmptest.Message) map[string]any {
	for _, v := range m.Values {
		if obj, ok := v.(map[string]any); ok {
			return obj
		}
	}
	return nil
}

// mediaAt is the timestamp of the last media message that had arrived by t.
func mediaAt(snap *rtmptest.Snapshot, t time.Time) (uint32, bool) {
	var ts uint32
	ok := false
	for _, m := range snap.Messages {
		if m.Time.After(t) {
			break
		}
		if m.Kind == rtmptest.KindAudio || m.Kind == rtmptest.KindVideo {
			ts, ok = m.Timestamp, true
		}
	}
	return ts, ok
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// describe names a message the way the start of a session is checked.
func describe(m rtmptest.Message) string {
	switch {
	case m.Kind == rtmptest.KindData:
		return m.Name
	case m.Kind == rtmptest.KindVideo && len(m.Payload) > 1 && m.Payload[1] == 0:
		return "avc-header"
	case m.Kind == rtmptest.KindVideo && len(m.Payload) > 0 && m.Payload[0]>>4 == 1:
		return "keyframe"
	case m.Kind == rtmptest.KindVideo:
		return "interframe"
	case m.Kind == rtmptest.KindAudio && len(m.Payload) > 1 && m.Payload[1] == 0:
		return "aac-header"
	}
	return "audio"
}
