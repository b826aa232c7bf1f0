package egress

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
)

// The FLV tag stream between the muxer and the outputs. The pump goroutine
// owns it: it merges the user's keys into onMetaData, puts SendData
// messages before the next media tag, caches the header tags every new
// session starts with, and hands each tag to every output.

// pendingData is a SendData message waiting for the next media tag.
type pendingData struct {
	ts   uint32
	body []byte         // an encoded onCuePoint or onTextData
	meta map[string]any // or, for onMetaData, the merged user keys
}

// maxPendingData bounds SendData messages waiting for the pump. The pump
// takes them at every media tag (every ~20 ms); 64 waiting means the
// stream has stalled, and the sender should hear so.
const maxPendingData = 64

// SendData sends a script data message on every output: handler is
// "onMetaData" (the keys are merged into the user metadata and the merged
// onMetaData is sent again), "onCuePoint" or "onTextData". data comes from
// JSON (map[string]any, []any, float64, string, bool, nil); ValidateData
// says what is accepted.
//
// The message goes out before the next media frame, with the timestamp of
// the newest media frame the stream has produced, so it is never behind
// the media before it; SendData returns that timestamp, which a cue
// point's missing time is also taken from. Before the first frame the
// timestamp is 0. Messages sent while an output is reconnecting are
// dropped for that output (see OutputStats.DataDropped). SendData is safe
// to call from any goroutine, before or while Run runs.
func (s *Stream) SendData(handler string, data map[string]any) (time.Duration, error) {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	if s.ended {
		return 0, errors.New("egress: send data: the stream has ended")
	}
	if len(s.pending) >= maxPendingData {
		return 0, fmt.Errorf("egress: send data: %d messages already wait for the stream's next frame", len(s.pending))
	}
	ts := time.Duration(s.lastTS) * time.Millisecond
	body, meta, err := prepareData(handler, data, ts, s.opts.MaxMetadataBytes)
	if err != nil {
		return 0, err
	}
	p := pendingData{ts: s.lastTS, body: body}
	if meta != nil {
		merged := make(map[string]any, len(s.dataMeta)+len(meta))
		maps.Copy(merged, s.dataMeta)
		maps.Copy(merged, meta)
		b, err := appendAMF0(nil, HandlerMetaData, amfECMAArray(sortedProps(merged)))
		if err != nil {
			return 0, fmt.Errorf("egress: %w: %v", ErrInvalidMetadata, err)
		}
		if len(b) > s.opts.MaxMetadataBytes {
			return 0, invalid(handler, "data", "merged metadata of %d bytes exceeds the limit of %d", len(b), s.opts.MaxMetadataBytes)
		}
		s.dataMeta, p.meta = merged, merged
	}
	s.pending = append(s.pending, p)
	return ts, nil
}

// takePending returns the SendData messages to send before a media tag
// with timestamp ts, and makes ts the stamp of the ones that follow.
func (s *Stream) takePending(ts uint32) []pendingData {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	p := s.pending
	s.pending = nil
	s.lastTS = max(s.lastTS, ts)
	return p
}

// pump reads the muxer's FLV and routes each tag. It returns at EOS or
// when the pipeline stops.
func (s *Stream) pump(sink *app.Sink) {
	var split tagSplitter
	for {
		sample := sink.PullSample()
		if sample == nil {
			return
		}
		buf := sample.GetBuffer()
		data := buf.Bytes() // a copy
		release(buf)
		release(sample)
		if err := split.write(data, s.route); err != nil {
			s.log.Error("muxer output is not FLV", "err", err)
			return
		}
	}
}

// route is the FLV tag stream between the muxer and the outputs. It keeps
// the header tags every new session needs, replaces the muxer's
// onMetaData with the merged one, puts SendData messages before the next
// media tag, and hands each tag to every output.
func (s *Stream) route(t Tag) {
	t.Data = bytes.Clone(t.Data) // queued by the outputs; never written again
	switch {
	case t.Type == TagScript:
		// flvmux writes no script tag but onMetaData.
		vals, err := decodeAMF0(t.Data)
		if name, _ := arg(vals, 0).(string); err != nil || name != HandlerMetaData {
			s.log.Warn("muxer wrote a script tag that is not onMetaData; dropped", "err", err)
			return
		}
		switch v := arg(vals, 1).(type) {
		case amfECMAArray:
			s.muxMeta = v
		case amfObject:
			s.muxMeta = amfECMAArray(v)
		}
		s.sendMeta(t.Timestamp)
		return
	case t.IsSequenceHeader():
		s.setHeader(t)
	case t.IsMedia():
		for _, p := range s.takePending(t.Timestamp) {
			if p.meta != nil {
				s.userMeta = p.meta
				s.sendMeta(p.ts)
				continue
			}
			s.broadcast(Tag{Type: TagScript, Timestamp: p.ts, Data: p.body})
		}
	}
	s.broadcast(t)
	s.count(t)
}

func (s *Stream) broadcast(t Tag) {
	for _, o := range s.outputList() {
		o.enqueue(t)
	}
}

// sendMeta builds the merged onMetaData (the muxer's fields, the audio
// fields flvmux leaves out, then the user keys), caches it as the first
// header and sends it. Nothing is sent before the muxer's own.
func (s *Stream) sendMeta(ts uint32) {
	if s.muxMeta == nil {
		return
	}
	merged := slices.Clone(s.muxMeta)
	has := map[string]bool{}
	for _, p := range merged {
		has[p.Key] = true
	}
	add := func(k string, v any) {
		if !has[k] {
			merged = append(merged, amfProp{k, v})
			has[k] = true
		}
	}
	if s.audio != nil {
		// flvmux learns the AAC bitrate from TAG events, which are dropped
		// (see dropTagEvents): roomcast knows it anyway. kb/s, as FLV has it.
		for i, p := range merged {
			if p.Key == "audiodatarate" && p.Value == 0.0 {
				merged[i].Value = float64(s.opts.AudioBitrate) / 1000
			}
		}
		add("audiosamplerate", float64(s.opts.AudioSampleRate))
		add("audiosamplesize", 16.0)
		add("stereo", true)
	}
	for _, p := range sortedProps(s.userMeta) {
		add(p.Key, p.Value)
	}
	body, err := appendAMF0(nil, HandlerMetaData, merged)
	if err != nil {
		s.log.Error("cannot encode onMetaData", "err", err)
		return
	}
	meta := Tag{Type: TagScript, Timestamp: ts, Data: body}
	w, _ := s.muxMeta.get("width")
	h, _ := s.muxMeta.get("height")
	s.mu.Lock()
	// Only the first: flvmux does not update its onMetaData when the size
	// changes, the caps probe in watchVideo does (passthrough).
	if wf, ok := w.(float64); ok && s.stats.Width == 0 {
		s.stats.Width = int(wf)
	}
	if hf, ok := h.(float64); ok && s.stats.Height == 0 {
		s.stats.Height = int(hf)
	}
	s.mu.Unlock()
	s.setHeader(meta)
	s.broadcast(meta)
}

func (m amfECMAArray) get(key string) (any, bool) { return amfObject(m).get(key) }

// setHeader caches t as the onMetaData or the sequence header of its kind.
func (s *Stream) setHeader(t Tag) {
	s.mu.Lock()
	defer s.mu.Unlock()
	headers := make([]Tag, 0, 3)
	kept := false
	for _, h := range s.headers {
		if h.Type == t.Type {
			h, kept = t, true
		}
		headers = append(headers, h)
	}
	if !kept {
		headers = append(headers, t)
	}
	// onMetaData first, then video, then audio, as flvmux orders them.
	slices.SortStableFunc(headers, func(a, b Tag) int { return headerRank(a) - headerRank(b) })
	s.headers = headers
}

func headerRank(t Tag) int {
	switch t.Type {
	case TagScript:
		return 0
	case TagVideo:
		return 1
	}
	return 2
}

// headerTags returns the tags a new session starts with.
func (s *Stream) headerTags() []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers
}

// dropTagEvents stops TAG events at the muxer's inputs: flvmux 1.22 with
// streamable=true re-sends onMetaData for each one (about 20 in the first
// 5 s), and roomcast owns the stream's metadata.
func dropTagEvents(p *gst.Pipeline) error {
	mux, err := p.GetElementByName(muxName)
	if err != nil {
		return err
	}
	pads, err := mux.GetSinkPads()
	if err != nil {
		return err
	}
	for _, pad := range pads {
		pad.AddProbe(gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
			if ev := info.GetEvent(); ev != nil && ev.Type() == gst.EventTypeTag {
				return gst.PadProbeDrop
			}
			return gst.PadProbeOK
		})
	}
	return nil
}
