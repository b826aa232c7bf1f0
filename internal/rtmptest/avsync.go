package rtmptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// WriteFLV writes the audio and video messages of a recorded session as
// an FLV file, for ffmpeg to decode.
func WriteFLV(path string, snap *Snapshot) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.Write([]byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0})
	for _, m := range snap.Messages {
		var typ byte
		switch m.Kind {
		case KindAudio:
			typ = 8
		case KindVideo:
			typ = 9
		default:
			continue
		}
		n, ts := len(m.Payload), m.Timestamp
		w.Write([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0})
		w.Write(m.Payload)
		w.Write(binary.BigEndian.AppendUint32(nil, uint32(11+n)))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncOffsets decodes an FLV file with ffmpeg and returns, for each white
// flash in the video, how much later the nearest beep in the audio starts
// (negative: earlier). Flashes without a beep within half a period are
// the recording's edges and are left out.
func SyncOffsets(ctx context.Context, path string, period time.Duration) ([]time.Duration, error) {
	// Mean luma per frame, and RMS level per 2 ms of audio.
	video, err := lavfiSeries(ctx, "movie="+path+",signalstats", "lavfi.signalstats.YAVG")
	if err != nil {
		return nil, err
	}
	audio, err := lavfiSeries(ctx, "amovie="+path+",asetnsamples=n=96:p=0,astats=metadata=1:reset=1", "lavfi.astats.Overall.RMS_level")
	if err != nil {
		return nil, err
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range video {
		lo, hi = min(lo, p.v), max(hi, p.v)
	}
	var flashes, beeps []time.Duration
	for i, p := range video {
		if p.v > (lo+hi)/2 && (i == 0 || video[i-1].v <= (lo+hi)/2) {
			flashes = append(flashes, p.t)
		}
	}
	const beepLevel = -30 // dBFS; silence decodes to -inf or far below
	for i, p := range audio {
		if p.v > beepLevel && (i == 0 || audio[i-1].v <= beepLevel) {
			beeps = append(beeps, p.t)
		}
	}
	if hi-lo < 50 || len(beeps) == 0 {
		return nil, fmt.Errorf("no marks: luma %.0f..%.0f, %d beeps", lo, hi, len(beeps))
	}
	var offsets []time.Duration
	for _, f := range flashes {
		best := time.Duration(math.MaxInt64)
		for _, b := range beeps {
			if (b - f).Abs() < best.Abs() {
				best = b - f
			}
		}
		// A flash without a beep within half a period is the recording's
		// edge (the beep fell outside it), not a measurement.
		if best.Abs() < period/2 {
			offsets = append(offsets, best)
		}
	}
	return offsets, nil
}

type point struct {
	t time.Duration
	v float64
}

// lavfiSeries runs a lavfi graph through ffprobe and returns each frame's
// time and the value of one metadata key.
func lavfiSeries(ctx context.Context, graph, key string) ([]point, error) {
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-f", "lavfi", "-i", graph,
		"-show_entries", "frame=pts_time:frame_tags="+key, "-of", "csv=p=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ffprobe %s: %w: %s", graph, err, stderr.String())
	}
	var ps []point
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 2 {
			continue
		}
		sec, err1 := strconv.ParseFloat(f[0], 64)
		v, err2 := strconv.ParseFloat(f[1], 64) // "-inf" parses
		if err1 != nil || err2 != nil {
			continue
		}
		ps = append(ps, point{time.Duration(sec * float64(time.Second)), v})
	}
	return ps, nil
}
