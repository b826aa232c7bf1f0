package testpattern

import (
	"log/slog"
	"time"

	"github.com/go-gst/go-gst/gst"
)

func (s *Source) addSyncMarks() error {
	return AddSyncMarks(s.pipeline, s.opts.Width, s.opts.Height, s.opts.FPS, s.log)
}

// AddSyncMarks turns the raw video of p (an element named "rawvideo"
// passing I420 of the given size and rate) black except one white frame,
// and its raw audio ("rawaudio", S16 in 10 ms buffers) silent except a
// 100 ms beep, at every multiple of SyncEvery. Either element may be
// absent. The sources must not be live, so their timestamps count frames
// and samples exactly: the frame at 2 s and the beep from 2 s share an
// instant, and a receiver can measure lip sync from them.
func AddSyncMarks(p *gst.Pipeline, width, height, fps int, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if el, err := p.GetElementByName("rawvideo"); err == nil {
		half := time.Second / time.Duration(2*fps)
		// I420: the luma plane comes first, one byte per pixel (widths
		// that are multiples of 4 have no row padding).
		luma := int64(width * height)
		el.GetStaticPad("src").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
			buf := info.GetBuffer()
			if buf == nil || !onMark(buf.PresentationTimestamp(), half) {
				return gst.PadProbeOK
			}
			if !buf.IsWritable() {
				log.Error("test pattern: video buffer not writable; no flash")
				return gst.PadProbeOK
			}
			buf.Memset(0, 235, min(luma, buf.GetSize())) // studio white
			return gst.PadProbeOK
		})
	}
	if el, err := p.GetElementByName("rawaudio"); err == nil {
		// Buffers are 10 ms (samplesperbuffer=480) and start on 10 ms
		// boundaries, so a beep is exactly ten whole buffers.
		el.GetStaticPad("src").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
			buf := info.GetBuffer()
			if buf == nil {
				return gst.PadProbeOK
			}
			pts := buf.PresentationTimestamp().AsDuration()
			if pts != nil && *pts%SyncEvery < syncBeep {
				return gst.PadProbeOK
			}
			if buf.IsWritable() {
				buf.Memset(0, 0, buf.GetSize())
			}
			return gst.PadProbeOK
		})
	}
	return nil
}

// onMark reports whether a frame at pts is the one nearest a multiple of
// SyncEvery.
func onMark(pts gst.ClockTime, half time.Duration) bool {
	d := pts.AsDuration()
	if d == nil {
		return false
	}
	r := *d % SyncEvery
	return r < half || SyncEvery-r <= half
}
