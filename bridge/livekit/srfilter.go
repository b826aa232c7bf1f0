package livekit

import (
	"time"

	"github.com/pion/rtcp"
)

// srFilter drops RTCP sender reports that a stall made late. A sender
// report pairs an RTP time with the wall-clock time it corresponds to, but
// senders stamp it from when they sent their last packet (pion does), and
// a sender or SFU starved of CPU for 200 ms sends a report 200 ms late. The
// synchronizer would follow that report, 5 ms per frame, and then come back
// at the next good one: in a five-minute test on a loaded machine the flash
// and beep drifted 170 and 240 ms apart for a few seconds that way.
//
// Delays only ever make a report later, never earlier, so the report
// whose wall-clock time is earliest for its RTP time is the truest; as
// NTP does with its clock samples, the filter keeps the last few reports'
// offsets and passes a report only if it is within srTolerance of the
// earliest of them. The window is short enough to follow a sender clock
// that really drifts (0.01 %, 3 ms over the window, is within tolerance).
type srFilter struct {
	clockRate int64
	started   bool
	first     time.Time // the first report's wall-clock time
	lastRTP   uint32
	elapsed   int64 // RTP ticks from the first report to the last, unwrapped
	// offsets of the last srWindow reports: wall-clock time elapsed since
	// the first report minus RTP time elapsed
	offsets []time.Duration
}

const (
	srWindow    = 8 // LiveKit sends a report every 3 s or so: 24 s
	srTolerance = 10 * time.Millisecond
)

func newSRFilter(clockRate uint32) *srFilter {
	return &srFilter{clockRate: int64(clockRate)}
}

// accept reports whether sr should reach the synchronizer.
func (f *srFilter) accept(sr *rtcp.SenderReport) bool {
	if f.clockRate == 0 {
		return true
	}
	ntp := ntpTime(sr.NTPTime)
	if !f.started {
		f.started, f.first, f.lastRTP = true, ntp, sr.RTPTime
	}
	// RTP time wraps; reports are seconds apart, far less than half the
	// 32-bit range at any clock rate WebRTC uses.
	f.elapsed += int64(int32(sr.RTPTime - f.lastRTP))
	f.lastRTP = sr.RTPTime
	offset := ntp.Sub(f.first) - time.Duration(f.elapsed*int64(time.Second)/f.clockRate)

	f.offsets = append(f.offsets, offset)
	if len(f.offsets) > srWindow {
		f.offsets = f.offsets[1:]
	}
	earliest := offset
	for _, o := range f.offsets {
		earliest = min(earliest, o)
	}
	return offset-earliest <= srTolerance
}

// ntpTime converts a 64-bit NTP timestamp (seconds since 1900 and a binary
// fraction) to a time.
func ntpTime(ntp uint64) time.Time {
	const unixEpoch = 2208988800 // seconds from 1900 to 1970
	sec := int64(ntp>>32) - unixEpoch
	frac := int64(ntp&0xffffffff) * int64(time.Second) >> 32
	return time.Unix(sec, frac)
}
