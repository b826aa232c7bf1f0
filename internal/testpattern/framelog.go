package testpattern

import "time"

// SentFrame records one video access unit as it was handed to the SDK.
type SentFrame struct {
	Hash     [32]byte  // avc.VCLHash of the access unit
	SentAt   time.Time // just before the first WriteSample
	Keyframe bool      // holds an IDR slice
	Size     int       // bytes, Annex-B as encoded
}

// frameLog is a bounded log of sent frames with an index by hash.
type frameLog struct {
	max    int
	frames []SentFrame
	byHash map[[32]byte]time.Time
}

func (l *frameLog) add(f SentFrame) {
	if l.byHash == nil {
		l.byHash = make(map[[32]byte]time.Time)
	}
	if len(l.frames) >= l.max {
		// Drop the oldest half at once so trimming costs O(1) per frame.
		keep := l.frames[len(l.frames)/2:]
		l.frames = append(make([]SentFrame, 0, l.max), keep...)
		clear(l.byHash)
		for _, g := range l.frames {
			if _, ok := l.byHash[g.Hash]; !ok {
				l.byHash[g.Hash] = g.SentAt
			}
		}
	}
	l.frames = append(l.frames, f)
	if _, ok := l.byHash[f.Hash]; !ok {
		l.byHash[f.Hash] = f.SentAt
	}
}

func (l *frameLog) copy() []SentFrame {
	return append([]SentFrame(nil), l.frames...)
}

func (l *frameLog) sentAt(hash [32]byte) (time.Time, bool) {
	t, ok := l.byHash[hash]
	return t, ok
}
