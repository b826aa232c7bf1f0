package bridge

import (
	"strings"
	"testing"

	"github.com/roomcast/roomcast/config"
)

func TestValidateMedia(t *testing.T) {
	cfg := config.Default().Broadcast
	for _, tc := range []struct {
		name string
		req  StartRequest
		want string // error text; "" for none
	}{
		{"defaults", StartRequest{}, ""},
		{"screen", StartRequest{Source: "screen", Video: &VideoRequest{Mode: "transcode", Width: 640, Height: 360, Bitrate: 1_000_000, Framerate: 25}}, ""},
		{"bad source", StartRequest{Source: "window"}, `field "source" is "window"; allowed: "camera", "screen"`},
		{"bad mode", StartRequest{Video: &VideoRequest{Mode: "copy"}}, `field "video.mode" is "copy"; allowed: "auto", "passthrough", "transcode"`},
		{"huge width", StartRequest{Video: &VideoRequest{Width: 8000, Height: 720}}, `field "video.width" is 8000; allowed: 64 to 3840 pixels`},
		{"odd height", StartRequest{Video: &VideoRequest{Width: 640, Height: 361}}, `field "video.height" is 361; it must be even`},
		{"width alone", StartRequest{Video: &VideoRequest{Width: 640}}, `"video.width" and "video.height" go together`},
		{"low bitrate", StartRequest{Video: &VideoRequest{Bitrate: 1000}}, `field "video.bitrate" is 1000; allowed: 100000 to 20000000 bit/s`},
		{"framerate", StartRequest{Video: &VideoRequest{Framerate: 120}}, `field "video.framerate" is 120`},
		{"audio rate", StartRequest{Audio: &AudioRequest{SampleRate: 22050}}, `field "audio.sampleRate" is 22050; allowed: 44100, 48000`},
		{"audio bitrate", StartRequest{Audio: &AudioRequest{Bitrate: 8000}}, `field "audio.bitrate" is 8000`},
	} {
		m, err := validateMedia(tc.req, cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		case tc.want != "":
			if e, ok := err.(*Error); !ok || e.Code != CodeInvalidRequest {
				t.Errorf("%s: error %#v is not invalid_request", tc.name, err)
			}
		case tc.name == "defaults" && (m.Source != SourceCamera || m.AudioBitrate != cfg.AudioBitrate || m.AudioSampleRate != cfg.AudioSampleRate):
			t.Errorf("defaults = %+v", m)
		}
	}
}
