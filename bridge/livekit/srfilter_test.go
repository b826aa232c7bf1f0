package livekit

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// toNTP is ntpTime's inverse.
func toNTP(t time.Time) uint64 {
	const unixEpoch = 2208988800
	sec := uint64(t.Unix() + unixEpoch)
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

func TestSRFilter(t *testing.T) {
	start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	// Reports every 3 s of a 90 kHz clock starting near the wrap, each
	// sent late by the given delay.
	for _, tc := range []struct {
		name   string
		delays []time.Duration
		want   []bool
	}{
		{"steady", []time.Duration{0, 1, 0, 2, 1, 0} /* ms */, []bool{true, true, true, true, true, true}},
		{"one stalled report", []time.Duration{0, 0, 200, 0, 0}, []bool{true, true, false, true, true}},
		{"a stall then recovery", []time.Duration{1, 0, 60, 45, 0, 2}, []bool{true, true, false, false, true, true}},
		{"late first report is replaced", []time.Duration{50, 0, 0}, []bool{true, true, true}},
		{"jitter within tolerance", []time.Duration{0, 9, 3, 10}, []bool{true, true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSRFilter(90000)
			for i, d := range tc.delays {
				at := time.Duration(i) * 3 * time.Second
				rtpTime := uint32(0xffff0000) + uint32(int64(at)*90000/int64(time.Second))
				sr := &rtcp.SenderReport{RTPTime: rtpTime, NTPTime: toNTP(start.Add(at + d*time.Millisecond))}
				if got := f.accept(sr); got != tc.want[i] {
					t.Errorf("report %d sent %d ms late: accept = %v, want %v", i, d, got, tc.want[i])
				}
			}
		})
	}
}

func TestNTPTime(t *testing.T) {
	want := time.Date(2026, 11, 21, 12, 0, 1, 250_000_000, time.UTC)
	if got := ntpTime(toNTP(want)); got.Sub(want).Abs() > time.Microsecond {
		t.Errorf("ntpTime = %v, want %v", got, want)
	}
}
