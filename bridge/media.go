package bridge

import (
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/egress"
)

// Sources a broadcast can take from the participant.
const (
	SourceCamera = "camera" // camera and microphone; the default
	SourceScreen = "screen" // screen share and screen-share audio
)

// VideoRequest sets what the destination receives as video, as
// nanoStream's transcodingTargets do. Zero fields take the defaults.
type VideoRequest struct {
	// Mode: "auto" (pass H.264 through, transcode anything else; the
	// default), "passthrough" (fail unless the track is H.264) or
	// "transcode" (always encode).
	Mode string `json:"mode,omitempty"`
	// Width and Height of the transcoded output (default 1280x720); also
	// the target that picks the simulcast layer: the largest that fits.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Bitrate of the transcoded output in bit/s (default 3000000, CBR).
	Bitrate int `json:"bitrate,omitempty"`
	// Framerate of the transcoded output (default 30).
	Framerate int `json:"framerate,omitempty"`
	// DropFrames lets the transcoder send fewer frames than Framerate
	// rather than repeat frames.
	DropFrames bool `json:"dropFrames,omitempty"`
	// Track picks a video track by name when the participant publishes
	// several of the chosen source.
	Track string `json:"track,omitempty"`
	// Slate sends black video when the participant has no video track;
	// without it such a broadcast is audio-only.
	Slate bool `json:"slate,omitempty"`
}

// AudioRequest sets the AAC the destination receives.
type AudioRequest struct {
	Bitrate    int `json:"bitrate,omitempty"`    // bit/s; default from config (128000)
	SampleRate int `json:"sampleRate,omitempty"` // 44100 or 48000; default from config
}

// Media is the validated media part of a StartRequest.
type Media struct {
	Source     string
	Video      egress.VideoOptions
	VideoTrack string
	// MaxWidth and MaxHeight pick the simulcast layer; zero means the
	// highest layer.
	MaxWidth, MaxHeight int
	AudioBitrate        int
	AudioSampleRate     int
}

// validateMedia checks the media fields of req and fills in defaults from
// cfg. Errors name the field and what it allows.
func validateMedia(req StartRequest, cfg config.Broadcast) (Media, error) {
	m := Media{Source: req.Source, AudioBitrate: cfg.AudioBitrate, AudioSampleRate: cfg.AudioSampleRate}
	switch m.Source {
	case "":
		m.Source = SourceCamera
	case SourceCamera, SourceScreen:
	default:
		return Media{}, newError(CodeInvalidRequest, `field "source" is %q; allowed: %q, %q`, req.Source, SourceCamera, SourceScreen)
	}
	v := req.Video
	if v == nil {
		v = &VideoRequest{}
	}
	switch v.Mode {
	case "", egress.ModeAuto, egress.ModePassthrough, egress.ModeTranscode:
	default:
		return Media{}, newError(CodeInvalidRequest, `field "video.mode" is %q; allowed: %q, %q, %q`, v.Mode, egress.ModeAuto, egress.ModePassthrough, egress.ModeTranscode)
	}
	checks := []struct {
		field    string
		value    int
		min, max int
		unit     string
	}{
		{"video.width", v.Width, 64, 3840, "pixels"},
		{"video.height", v.Height, 64, 2160, "pixels"},
		{"video.bitrate", v.Bitrate, 100_000, 20_000_000, "bit/s"},
		{"video.framerate", v.Framerate, 1, 60, "frames/s"},
	}
	for _, c := range checks {
		if c.value != 0 && (c.value < c.min || c.value > c.max) {
			return Media{}, newError(CodeInvalidRequest, "field %q is %d; allowed: %d to %d %s", c.field, c.value, c.min, c.max, c.unit)
		}
	}
	for _, c := range checks[:2] {
		if c.value%2 != 0 {
			return Media{}, newError(CodeInvalidRequest, "field %q is %d; it must be even (H.264 4:2:0)", c.field, c.value)
		}
	}
	if (v.Width == 0) != (v.Height == 0) {
		return Media{}, newError(CodeInvalidRequest, `fields "video.width" and "video.height" go together; set both or neither`)
	}
	m.Video = egress.VideoOptions{
		Mode: v.Mode, Width: v.Width, Height: v.Height, Bitrate: v.Bitrate,
		Framerate: v.Framerate, DropFrames: v.DropFrames, Slate: v.Slate,
	}
	m.VideoTrack, m.MaxWidth, m.MaxHeight = v.Track, v.Width, v.Height

	if a := req.Audio; a != nil {
		if a.Bitrate != 0 {
			if a.Bitrate < 32_000 || a.Bitrate > 320_000 {
				return Media{}, newError(CodeInvalidRequest, `field "audio.bitrate" is %d; allowed: 32000 to 320000 bit/s`, a.Bitrate)
			}
			m.AudioBitrate = a.Bitrate
		}
		if a.SampleRate != 0 {
			if a.SampleRate != 44100 && a.SampleRate != 48000 {
				return Media{}, newError(CodeInvalidRequest, `field "audio.sampleRate" is %d; allowed: 44100, 48000`, a.SampleRate)
			}
			m.AudioSampleRate = a.SampleRate
		}
	}
	return m, nil
}

// subscribeRequest is what the broadcast asks of the room.
func (m Media) subscribeRequest(room, identity string, cfg config.Broadcast) SubscribeRequest {
	return SubscribeRequest{
		Room: room, Identity: identity, Source: m.Source, TrackName: m.VideoTrack,
		MaxWidth: m.MaxWidth, MaxHeight: m.MaxHeight, Wait: cfg.TrackWait,
	}
}
