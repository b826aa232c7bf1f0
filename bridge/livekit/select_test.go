package livekit

import (
	"errors"
	"fmt"
	"testing"

	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

func TestChooseLayer(t *testing.T) {
	simulcast := &lkproto.TrackInfo{Layers: []*lkproto.VideoLayer{
		{Quality: lkproto.VideoQuality_HIGH, Width: 1280, Height: 720},
		{Quality: lkproto.VideoQuality_LOW, Width: 320, Height: 180},
		{Quality: lkproto.VideoQuality_MEDIUM, Width: 640, Height: 360},
	}}
	for _, tc := range []struct {
		name       string
		info       *lkproto.TrackInfo
		maxW, maxH uint32
		want       string
	}{
		{"highest by default", simulcast, 0, 0, "high 1280x720"},
		{"exact fit", simulcast, 640, 360, "medium 640x360"},
		{"fits below", simulcast, 1000, 600, "medium 640x360"},
		{"larger target", simulcast, 1920, 1080, "high 1280x720"},
		{"nothing fits: smallest", simulcast, 160, 90, "low 320x180"},
		{"single layer", &lkproto.TrackInfo{Layers: []*lkproto.VideoLayer{{Width: 1280, Height: 720}}}, 640, 360, ""},
		{"layers under codecs", &lkproto.TrackInfo{Codecs: []*lkproto.SimulcastCodecInfo{{Layers: simulcast.Layers}}}, 640, 360, "medium 640x360"},
	} {
		if got := layerName(chooseLayer(tc.info, tc.maxW, tc.maxH)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestWaitEnds: when a wait for tracks may end and with what: a track
// named by the request must be among those in.
func TestWaitEnds(t *testing.T) {
	video, audio := lksdk.TrackKindVideo, lksdk.TrackKindAudio
	for _, tc := range []struct {
		name      string
		got       []lksdk.TrackKind
		wanted    int // publications subscribed to
		trackName string
		partial   bool  // settle may end the wait
		err       error // how it ends
	}{
		{"nothing yet", nil, 1, "", false, errNoTracks},
		{"audio, video still coming", []lksdk.TrackKind{audio}, 2, "", false, nil},
		{"audio only", []lksdk.TrackKind{audio}, 1, "", true, nil},
		{"both", []lksdk.TrackKind{video, audio}, 2, "", true, nil},
		{"named video in", []lksdk.TrackKind{video, audio}, 2, "side", true, nil},
		{"named video not published", []lksdk.TrackKind{audio}, 1, "side", true, errNoNamedTrack},
		{"named video still coming", []lksdk.TrackKind{audio}, 2, "side", false, errNoNamedTrack},
	} {
		w := &waiter{sel: selection{trackName: tc.trackName}, got: map[lksdk.TrackKind]*track{}, wanted: map[string]lksdk.TrackKind{}}
		for _, k := range tc.got {
			w.got[k] = &track{}
		}
		for i := range tc.wanted {
			w.wanted[fmt.Sprint(i)] = video
		}
		ok, err := w.partial()
		if ok != tc.partial || (ok && !errors.Is(err, tc.err)) {
			t.Errorf("%s: partial = %v, %v; want %v, %v", tc.name, ok, err, tc.partial, tc.err)
		}
		if err := w.some(); !errors.Is(err, tc.err) {
			t.Errorf("%s: at the deadline: %v, want %v", tc.name, err, tc.err)
		}
	}
}
