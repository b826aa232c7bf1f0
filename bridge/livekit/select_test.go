package livekit

import (
	"testing"

	lkproto "github.com/livekit/protocol/livekit"
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
