package egress

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-gst/go-gst/gst"
	"github.com/pion/webrtc/v4"
)

// Video modes: what to do with the video track.
const (
	// ModeAuto passes H.264 through and transcodes anything else.
	ModeAuto = "auto"
	// ModePassthrough passes H.264 through and refuses anything else.
	ModePassthrough = "passthrough"
	// ModeTranscode always decodes and encodes.
	ModeTranscode = "transcode"
)

// VideoOptions are the video targets of a stream, as nanoStream's
// transcodingTargets name them. Zero fields take the defaults: 1280x720,
// 30 fps, 3 Mb/s, mode auto. Size, rate and bitrate apply when the video is
// transcoded; passthrough leaves the publisher's stream as it is.
type VideoOptions struct {
	Mode          string // ModeAuto, ModePassthrough or ModeTranscode; "" is auto
	Width, Height int    // output size; the picture is scaled and padded to fit
	Bitrate       int    // bits per second, constant
	Framerate     int    // frames per second, constant
	// DropFrames lets the encoder fall below Framerate instead of
	// repeating frames when the input is slower, and drops frames that
	// arrive faster.
	DropFrames bool
	// Slate sends black frames at the output size when there is no video
	// track, for destinations that want video; otherwise such a stream is
	// audio-only FLV.
	Slate bool
}

// Transcoding defaults: 720p30 at 3 Mb/s is within what YouTube and Twitch
// recommend for 720p30 (YouTube 1.5–4 Mb/s; Twitch up to 6).
const (
	defaultWidth     = 1280
	defaultHeight    = 720
	defaultFramerate = 30
	defaultBitrate   = 3_000_000
)

func (o VideoOptions) withDefaults() VideoOptions {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.Width == 0 {
		o.Width = defaultWidth
	}
	if o.Height == 0 {
		o.Height = defaultHeight
	}
	if o.Framerate == 0 {
		o.Framerate = defaultFramerate
	}
	if o.Bitrate == 0 {
		o.Bitrate = defaultBitrate
	}
	return o
}

// validate checks what the caller may have got wrong; the bridge checks the
// same with field names, so these are the last line of defence.
func (o VideoOptions) validate() error {
	switch o.Mode {
	case ModeAuto, ModePassthrough, ModeTranscode:
	default:
		return fmt.Errorf("egress: video mode %q: want %s, %s or %s", o.Mode, ModeAuto, ModePassthrough, ModeTranscode)
	}
	// x264 wants even sizes for 4:2:0.
	if o.Width < 64 || o.Width > 3840 || o.Height < 64 || o.Height > 2160 || o.Width%2 != 0 || o.Height%2 != 0 {
		return fmt.Errorf("egress: video size %dx%d: want even sizes from 64x64 to 3840x2160", o.Width, o.Height)
	}
	if o.Framerate < 1 || o.Framerate > 60 {
		return fmt.Errorf("egress: video framerate %d: want 1 to 60", o.Framerate)
	}
	if o.Bitrate < 100_000 || o.Bitrate > 20_000_000 {
		return fmt.Errorf("egress: video bitrate %d: want 100000 to 20000000 bit/s", o.Bitrate)
	}
	return nil
}

// videoCodec is how the pipeline takes one RTP video codec apart.
type videoCodec struct {
	name     string // what Stats report: "h264", "vp8"
	encoding string // RTP caps encoding-name
	// elementary, if set, is the caps of what the reader pushes instead of
	// RTP: the codec is depacketized in Go because GStreamer 1.22 has no
	// depayloader for it (AV1, see av1Assembler).
	elementary string
	depay      string // RTP (or elementary) → elementary stream, access-unit aligned
	decode     string // elementary stream → raw video
}

// videoCodecs maps WebRTC MIME types (lower case) to their elements.
var videoCodecs = map[string]videoCodec{
	strings.ToLower(webrtc.MimeTypeH264): {name: "h264", encoding: "H264", depay: "rtph264depay ! h264parse", decode: "avdec_h264"},
	strings.ToLower(webrtc.MimeTypeVP8):  {name: "vp8", encoding: "VP8", depay: "rtpvp8depay", decode: "vp8dec"},
	strings.ToLower(webrtc.MimeTypeVP9):  {name: "vp9", encoding: "VP9", depay: "rtpvp9depay", decode: "vp9dec"},
	// av1dec is libaom's decoder (gst-plugins-bad); dav1d's is not in 1.22.
	strings.ToLower(webrtc.MimeTypeAV1): {name: "av1", encoding: "AV1", elementary: av1Caps, depay: "av1parse", decode: "av1dec"},
}

// missingElements names the elements of a description fragment that this
// GStreamer installation lacks.
func missingElements(fragments ...string) []string {
	initGStreamer()
	var missing []string
	for _, f := range fragments {
		for _, part := range strings.Split(f, "!") {
			fields := strings.Fields(part)
			if len(fields) == 0 {
				continue
			}
			if gst.Find(fields[0]) == nil {
				missing = append(missing, fields[0])
			}
		}
	}
	return missing
}

// plan decides what happens to each track: which is the video, which the
// audio, whether video is passed through or transcoded and why, and which
// silent or black stand-ins the stream needs. It fills the Stats fields
// that say so.
func (s *Stream) plan(tracks []Track) error {
	v := s.opts.Video
	for _, t := range tracks {
		c := t.Codec()
		mime := strings.ToLower(c.MimeType)
		switch {
		case c.Kind == Video && s.video == nil:
			vc, ok := videoCodecs[mime]
			if !ok {
				return fmt.Errorf("egress: video track %s: %w (roomcast takes H.264, VP8, VP9 and AV1)", c.MimeType, ErrUnsupportedCodec)
			}
			s.video, s.videoCodec = t, vc
			s.stats.VideoCodecIn, s.stats.VideoCodec = vc.name, "h264"
			switch {
			case v.Mode == ModePassthrough && vc.name != "h264":
				return fmt.Errorf("egress: video mode %s needs an H.264 track, but the track is %s: %w; use mode %s or %s to transcode it",
					ModePassthrough, c.MimeType, ErrUnsupportedCodec, ModeAuto, ModeTranscode)
			case v.Mode == ModeTranscode:
				s.stats.Transcoding, s.stats.VideoReason = true, "video mode transcode"
			case vc.name != "h264":
				s.stats.Transcoding, s.stats.VideoReason = true, vc.name+" cannot go into FLV"
			default:
				s.stats.Passthrough, s.stats.VideoReason = true, "h264 goes into FLV as it is"
			}
			if s.stats.Transcoding {
				if m := missingElements(vc.depay, vc.decode, "x264enc"); len(m) > 0 {
					return fmt.Errorf("egress: video track %s: %w: GStreamer lacks %s", c.MimeType, ErrUnsupportedCodec, strings.Join(m, ", "))
				}
			}
		case c.Kind == Audio && s.audio == nil && mime == strings.ToLower(webrtc.MimeTypeOpus):
			s.audio = t
		case c.Kind == Video || c.Kind == Audio:
			return fmt.Errorf("egress: %s track %s: %w (this version takes one video and one Opus audio track)", c.Kind, c.MimeType, ErrUnsupportedCodec)
		default:
			return fmt.Errorf("egress: track of unknown kind %d", c.Kind)
		}
	}
	if s.video == nil && s.audio == nil {
		return errors.New("egress: no tracks")
	}
	// YouTube drops a stream that has no audio: a missing microphone
	// becomes continuous AAC silence.
	s.stats.AudioCodec = "aac"
	if s.video == nil && v.Slate {
		s.stats.VideoCodec, s.stats.Transcoding, s.stats.VideoReason = "h264", true, "no video track: black frames"
	}
	if s.video == nil && !v.Slate {
		s.stats.VideoReason = "no video track: audio only"
	}
	return nil
}
