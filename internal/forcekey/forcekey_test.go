package forcekey

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
)

var initOnce sync.Once

// TestRequest: each encoder a test publisher uses makes a keyframe only on
// its first frame and within two frames of each request, twice in a row,
// and keeps encoding; av1enc's keyframes carry a sequence header, which is
// what the AV1 RTP payloader marks as a new coded video sequence.
func TestRequest(t *testing.T) {
	initOnce.Do(func() { gst.Init(nil) })
	for _, enc := range []string{
		"av1enc usage-profile=realtime cpu-used=10 threads=2 lag-in-frames=0 keyframe-mode=disabled end-usage=cbr target-bitrate=300 min-quantizer=4 max-quantizer=56",
		"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=100000",
		"vp8enc deadline=1 cpu-used=8 keyframe-max-dist=100000",
	} {
		t.Run(firstWord(enc), func(t *testing.T) { testRequest(t, enc) })
	}
}

func firstWord(s string) string {
	for i, c := range s {
		if c == ' ' {
			return s[:i]
		}
	}
	return s
}

func testRequest(t *testing.T, desc string) {
	pipe, err := gst.NewPipelineFromString(fmt.Sprintf(
		"videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! %s name=enc ! appsink name=out sync=false", desc))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pipe.SetState(gst.StateNull) }()
	el, err := pipe.GetElementByName("enc")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pipe.GetElementByName("out")
	if err != nil {
		t.Fatal(err)
	}
	sink := app.SinkFromElement(out)
	enc := New(pipe.Bin, el, desc+" name=enc")
	if err := pipe.SetState(gst.StatePlaying); err != nil {
		t.Fatal(err)
	}

	var keys []int
	requested := map[int]bool{20: true, 40: true}
	for i := range 70 {
		key, data := pull(t, sink)
		if key {
			keys = append(keys, i)
			if firstWord(desc) == "av1enc" && !hasSequenceHeader(data) {
				t.Errorf("AV1 keyframe %d has no sequence header", i)
			}
		}
		if requested[i] {
			if err := enc.Request(); err != nil {
				t.Fatal(err)
			}
			if err := enc.Request(); err != nil { // coalesced or harmless
				t.Fatal(err)
			}
		}
	}
	if len(keys) != 3 || keys[0] != 0 || keys[1] < 21 || keys[1] > 22 || keys[2] < 41 || keys[2] > 42 {
		t.Errorf("keyframes at frames %v, want 0 and within two frames after 20 and 40", keys)
	}
}

func pull(t *testing.T, sink *app.Sink) (key bool, data []byte) {
	t.Helper()
	s := sink.PullSample()
	if s == nil {
		t.Fatal("encoder stopped")
	}
	defer func() { runtime.SetFinalizer(s, nil); s.Unref() }()
	buf := s.GetBuffer()
	return !buf.HasFlags(gst.BufferFlagDeltaUnit), buf.Bytes()
}

// hasSequenceHeader walks a temporal unit's OBUs (each with its size
// field, as av1enc writes them) for a sequence header (type 1).
func hasSequenceHeader(tu []byte) bool {
	for len(tu) > 1 {
		typ, ext := tu[0]>>3&0x0f, int(tu[0]>>2&1)
		if typ == 1 {
			return true
		}
		size, n := 0, 0
		for k := 1 + ext; k < len(tu); k++ {
			size |= int(tu[k]&0x7f) << (7 * n)
			n++
			if tu[k]&0x80 == 0 {
				break
			}
		}
		tu = tu[min(len(tu), 1+ext+n+size):]
	}
	return false
}
