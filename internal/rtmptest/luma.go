package rtmptest

import (
	"context"
	"time"
)

// LumaFrame is one decoded video frame's time and mean luma (0 to 255;
// limited-range black is 16).
type LumaFrame struct {
	Time time.Duration
	Y    float64
}

// Luma decodes the video of an FLV file with ffmpeg and returns each
// frame's mean luma, in order: a way to tell a black picture from a
// camera's.
func Luma(ctx context.Context, path string) ([]LumaFrame, error) {
	series, err := lavfiSeries(ctx, "movie="+path+",signalstats", "lavfi.signalstats.YAVG")
	if err != nil {
		return nil, err
	}
	frames := make([]LumaFrame, len(series))
	for i, p := range series {
		frames[i] = LumaFrame{p.t, p.v}
	}
	return frames, nil
}
