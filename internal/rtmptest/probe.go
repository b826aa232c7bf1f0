package rtmptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ProbeResult is what ffprobe reports about a media file.
type ProbeResult struct {
	Format  Format
	Streams []Stream
	Packets []Packet // in file order
}

// Format describes the container.
type Format struct {
	Name     string        // ffprobe format_name, e.g. "flv"
	Duration time.Duration // zero if ffprobe does not know it
}

// Stream describes one elementary stream. Fields that do not apply to the
// stream's type are zero.
type Stream struct {
	Index        int
	CodecType    string // "video", "audio", "data"
	CodecName    string // "h264", "aac", ...
	Profile      string // "High", "LC", ...
	PixFmt       string // "yuv420p"; a Y444 stream is one browsers reject
	Width        int
	Height       int
	AvgFrameRate float64 // frames per second; 0 when ffprobe says 0/0
	RFrameRate   float64
	SampleRate   int
	Channels     int
}

// Packet is one demuxed packet.
type Packet struct {
	StreamIndex int
	CodecType   string
	PTS         time.Duration
	DTS         time.Duration
	Keyframe    bool // ffprobe's 'K' flag
	Size        int
}

// Probe runs ffprobe on path and returns its streams, format and packets.
func Probe(ctx context.Context, path string) (*ProbeResult, error) {
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-print_format", "json",
		"-show_streams", "-show_format", "-show_packets", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	res, err := parseProbe(out)
	if err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	return res, nil
}

// ffprobe's JSON writes most numbers as strings.
type probeJSON struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		Index        int    `json:"index"`
		CodecType    string `json:"codec_type"`
		CodecName    string `json:"codec_name"`
		Profile      string `json:"profile"`
		PixFmt       string `json:"pix_fmt"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
		RFrameRate   string `json:"r_frame_rate"`
		SampleRate   string `json:"sample_rate"`
		Channels     int    `json:"channels"`
	} `json:"streams"`
	Packets []struct {
		StreamIndex int    `json:"stream_index"`
		CodecType   string `json:"codec_type"`
		PTSTime     string `json:"pts_time"`
		DTSTime     string `json:"dts_time"`
		Size        string `json:"size"`
		Flags       string `json:"flags"`
	} `json:"packets"`
}

func parseProbe(b []byte) (*ProbeResult, error) {
	var j probeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	res := &ProbeResult{Format: Format{Name: j.Format.FormatName}}
	var err error
	if res.Format.Duration, err = seconds(j.Format.Duration); err != nil {
		return nil, fmt.Errorf("format duration: %w", err)
	}
	for _, s := range j.Streams {
		st := Stream{
			Index: s.Index, CodecType: s.CodecType, CodecName: s.CodecName, Profile: s.Profile,
			PixFmt: s.PixFmt, Width: s.Width, Height: s.Height, Channels: s.Channels,
		}
		if st.AvgFrameRate, err = ratio(s.AvgFrameRate); err != nil {
			return nil, fmt.Errorf("stream %d avg_frame_rate: %w", s.Index, err)
		}
		if st.RFrameRate, err = ratio(s.RFrameRate); err != nil {
			return nil, fmt.Errorf("stream %d r_frame_rate: %w", s.Index, err)
		}
		if s.SampleRate != "" {
			if st.SampleRate, err = strconv.Atoi(s.SampleRate); err != nil {
				return nil, fmt.Errorf("stream %d sample_rate: %w", s.Index, err)
			}
		}
		res.Streams = append(res.Streams, st)
	}
	res.Packets = make([]Packet, 0, len(j.Packets))
	for i, p := range j.Packets {
		pk := Packet{StreamIndex: p.StreamIndex, CodecType: p.CodecType, Keyframe: strings.Contains(p.Flags, "K")}
		if pk.PTS, err = seconds(p.PTSTime); err != nil {
			return nil, fmt.Errorf("packet %d pts_time: %w", i, err)
		}
		if pk.DTS, err = seconds(p.DTSTime); err != nil {
			return nil, fmt.Errorf("packet %d dts_time: %w", i, err)
		}
		if pk.Size, err = strconv.Atoi(p.Size); err != nil {
			return nil, fmt.Errorf("packet %d size: %w", i, err)
		}
		res.Packets = append(res.Packets, pk)
	}
	return res, nil
}

// seconds parses ffprobe's decimal seconds; "" and "N/A" mean unknown.
// ffprobe prints microseconds, so rounding to them keeps differences exact.
func seconds(s string) (time.Duration, error) {
	if s == "" || s == "N/A" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, nil
}

// ratio parses "30000/1001"; "0/0" (unknown) gives 0.
func ratio(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	num, den, ok := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || !ok {
		return n, err
	}
	d, err := strconv.ParseFloat(den, 64)
	if err != nil {
		return 0, err
	}
	if d == 0 {
		return 0, nil
	}
	return n / d, nil
}

// Stream returns the first stream of codecType ("video" or "audio").
func (r *ProbeResult) Stream(codecType string) (Stream, bool) {
	for _, s := range r.Streams {
		if s.CodecType == codecType {
			return s, true
		}
	}
	return Stream{}, false
}

// StreamPackets returns the packets of the first stream of codecType.
func (r *ProbeResult) StreamPackets(codecType string) []Packet {
	s, ok := r.Stream(codecType)
	if !ok {
		return nil
	}
	var out []Packet
	for _, p := range r.Packets {
		if p.StreamIndex == s.Index {
			out = append(out, p)
		}
	}
	return out
}

// videoPTS returns the video packets' presentation times in display order.
func (r *ProbeResult) videoPTS(keyframesOnly bool) []time.Duration {
	var pts []time.Duration
	for _, p := range r.StreamPackets("video") {
		if p.Keyframe || !keyframesOnly {
			pts = append(pts, p.PTS)
		}
	}
	slices.Sort(pts)
	return pts
}

// MeasuredFrameRate returns the video frame rate measured from packet
// timestamps, which unlike the header's rate shows frames that were lost or
// duplicated on the way.
func (r *ProbeResult) MeasuredFrameRate() (float64, error) {
	pts := r.videoPTS(false)
	if len(pts) < 2 {
		return 0, fmt.Errorf("%d video packets, need at least 2", len(pts))
	}
	span := pts[len(pts)-1] - pts[0]
	if span <= 0 {
		return 0, errors.New("video packets span no time")
	}
	return float64(len(pts)-1) / span.Seconds(), nil
}

// MaxKeyframeGap returns the longest time between consecutive video
// keyframes, counting the stretch from the last keyframe to the last video
// packet too, so a stream that stops sending keyframes cannot look fine.
// Ingests want at most 4 s (YouTube) or 2 s (Twitch).
func (r *ProbeResult) MaxKeyframeGap() (time.Duration, error) {
	keys := r.videoPTS(true)
	all := r.videoPTS(false)
	if len(keys) == 0 {
		return 0, fmt.Errorf("no video keyframes among %d video packets", len(all))
	}
	keys = append(keys, all[len(all)-1])
	var gap time.Duration
	for i := 1; i < len(keys); i++ {
		gap = max(gap, keys[i]-keys[i-1])
	}
	return gap, nil
}

// Keyframes returns the number of video keyframes.
func (r *ProbeResult) Keyframes() int {
	return len(r.videoPTS(true))
}
