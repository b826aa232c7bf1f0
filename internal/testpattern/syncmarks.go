package testpattern

import (
	"fmt"
	"time"

	"github.com/go-gst/go-gst/gst"
)

// addSyncMarks turns the raw video black except one white frame, and the
// raw audio silent except a 100 ms beep, at every multiple of SyncEvery.
// The sources are not live, so their timestamps count frames and samples
// exactly: the frame at 2 s and the beep from 2 s share an instant, and a
// receiver can measure lip sync from them.
func (s *Source) addSyncMarks() error {
	if !s.opts.NoVideo {
		el, err := s.pipeline.GetElementByName("rawvideo")
		if err != nil {
			return fmt.Errorf("testpattern: %w", err)
		}
		half := time.Second / time.Duration(2*s.opts.FPS)
		// I420: the luma plane comes first, one byte per pixel (widths
		// that are multiples of 4 have no row padding).
		luma := int64(s.opts.Width * s.opts.Height)
		el.GetStaticPad("src").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
			buf := info.GetBuffer()
			if buf == nil || !onMark(buf.PresentationTimestamp(), half) {
				return gst.PadProbeOK
			}
			if !buf.IsWritable() {
				s.log.Error("test pattern: video buffer not writable; no flash")
				return gst.PadProbeOK
			}
			buf.Memset(0, 235, min(luma, buf.GetSize())) // studio white
			return gst.PadProbeOK
		})
	}
	if !s.opts.NoAudio {
		el, err := s.pipeline.GetElementByName("rawaudio")
		if err != nil {
			return fmt.Errorf("testpattern: %w", err)
		}
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
