package egress

import "time"

// rateSpan is the window Stats measures bitrates and frame rate over: long
// enough to smooth a keyframe's burst, short enough that the room sees a
// stall within two status updates.
const rateSpan = 2 * time.Second

// rateWindow sums the sizes of the frames seen in the last rateSpan.
type rateWindow struct {
	start   time.Time // first frame ever
	samples []rateSample
	bytes   int
}

type rateSample struct {
	at    time.Time
	bytes int
}

func (w *rateWindow) add(now time.Time, n int) {
	if w.start.IsZero() {
		w.start = now
	}
	w.prune(now)
	w.samples = append(w.samples, rateSample{now, n})
	w.bytes += n
}

func (w *rateWindow) prune(now time.Time) {
	i := 0
	for i < len(w.samples) && now.Sub(w.samples[i].at) > rateSpan {
		w.bytes -= w.samples[i].bytes
		i++
	}
	if i > 0 {
		w.samples = w.samples[:copy(w.samples, w.samples[i:])]
	}
}

// span is the time the window covers: rateSpan, or less just after the
// first frame so early rates are not underestimated.
func (w *rateWindow) span(now time.Time) time.Duration {
	if w.start.IsZero() {
		return 0
	}
	return min(rateSpan, now.Sub(w.start))
}

// rate returns bits per second and the number of frames in the window.
func (w *rateWindow) rate(now time.Time) (bps, frames int) {
	w.prune(now)
	span := w.span(now)
	if span < 100*time.Millisecond {
		return 0, len(w.samples)
	}
	return int(float64(w.bytes*8) / span.Seconds()), len(w.samples)
}
