package egress

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/pion/rtp"
)

// Element names the code looks up in the main pipeline.
const (
	videoSrcName = "video"
	audioSrcName = "audio"
	muxName      = "mux"
	tagSinkName  = "tags"
	// rateName is the transcoder's videorate, whose counters are the
	// frames dropped and repeated to hold the output framerate.
	rateName = "rate"
	// videoInName is the element whose output caps say the size the
	// publisher sends: the parser in passthrough, the decoder otherwise.
	videoInName = "videoin"
	// Stand-in sources, ended when the real tracks end.
	silenceName = "silence"
	slateName   = "slate"
)

// muxQueue sits before each muxer pad. The sources are not live, so flvmux
// waits for every pad; 2 s lets one branch run ahead of a slower one
// (a decoder, an encoder's lookahead) without stalling it.
const muxQueue = " ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=2000000000 ! "

// description builds the main pipeline, in the order the data flows:
// RTP sources → depayload/decode → parse/encode → flvmux → appsink, whose
// FLV tags the pump hands to the outputs.
//
// The sources are not live: flvmux then waits for data on every pad and
// interleaves strictly by timestamp, which no clock or latency setting has
// to guess. Buffer timestamps come from Track.ReadRTP (the shared clock).
// Because the muxer waits for every pad, a track that goes quiet (muted)
// would stall the stream: the readers fill such gaps (see gapFiller), and a
// missing track is stood in for by a silent or black source.
func (s *Stream) description() string {
	var d []string
	// Bounded so a stalled branch cannot grow memory: leaky-type=downstream
	// drops the oldest packets; the depayloader recovers at the next keyframe.
	const appsrcProps = "format=time is-live=false do-timestamp=false max-bytes=4000000 leaky-type=downstream"
	v := s.opts.Video
	switch {
	case s.video != nil && !s.stats.Transcoding:
		c := s.video.Codec()
		d = append(d, fmt.Sprintf(
			"appsrc name=%s %s caps=\"application/x-rtp,media=video,encoding-name=H264,clock-rate=%d,payload=%d\""+
				// Passthrough: h264parse only reframes the access units as
				// AVC (length-prefixed, SPS/PPS in codec data) for FLV. A new
				// SPS (the publisher changed resolution) becomes new caps,
				// and flvmux sends a new sequence header.
				" ! rtph264depay ! h264parse name=%s ! video/x-h264,stream-format=avc,alignment=au"+muxQueue+"%s.video",
			videoSrcName, appsrcProps, c.ClockRate, c.PayloadType, videoInName, muxName))
	case s.video != nil:
		c, vc := s.video.Codec(), s.videoCodec
		// videorate before scaling, so frames it drops are never scaled;
		// videoscale keeps the aspect ratio and pads with black
		// (add-borders), so a publisher that changes resolution mid-stream
		// never changes the output size. skip-to-first starts videorate's
		// output grid at the first frame rather than at 0: a 30 fps input
		// then lands on its own instants instead of up to half a frame
		// (17 ms) away, which lip sync would pay for.
		rate := "videorate skip-to-first=true name=" + rateName
		rateCaps := fmt.Sprintf(",framerate=%d/1", v.Framerate)
		if v.DropFrames {
			rate += fmt.Sprintf(" max-rate=%d", v.Framerate)
			rateCaps = ""
		}
		caps := fmt.Sprintf("application/x-rtp,media=video,encoding-name=%s,clock-rate=%d,payload=%d", vc.encoding, c.ClockRate, c.PayloadType)
		if vc.elementary != "" {
			caps = vc.elementary // depacketized in Go (AV1)
		}
		d = append(d, fmt.Sprintf(
			"appsrc name=%s %s caps=\"%s\""+
				" ! %s ! %s name=%s ! %s ! videoscale add-borders=true ! videoconvert"+
				" ! video/x-raw,format=I420,width=%d,height=%d,pixel-aspect-ratio=1/1%s ! %s"+muxQueue+"%s.video",
			videoSrcName, appsrcProps, caps,
			vc.depay, vc.decode, videoInName, rate, v.Width, v.Height, rateCaps, s.encoder(), muxName))
	case v.Slate:
		// Black frames for a destination that wants video when the
		// participant has none; x264 spends almost nothing on them.
		d = append(d, fmt.Sprintf(
			"videotestsrc name=%s is-live=false pattern=black ! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1,pixel-aspect-ratio=1/1"+
				" ! %s"+muxQueue+"%s.video",
			slateName, v.Width, v.Height, v.Framerate, s.encoder(), muxName))
	}

	// FLV carries no Opus (flvmux 1.22 has no Opus caps): decode with
	// packet-loss concealment and encode AAC-LC. voaacenc, not avenc_aac:
	// the same AAC-LC for 2.5x less CPU (0.29 s against 0.73 s per minute
	// of 48 kHz stereo here), and the encoder was the largest single cost
	// of a broadcast. audiorate fills what gaps remain with silence, so the
	// AAC timeline has no holes, and with tolerance=0 it also makes the
	// samples follow the timestamps exactly: when the synchronizer moves
	// the audio by a few ms to match a sender report, samples are dropped
	// or added at once. At its 40 ms default (the encoder's and the
	// resampler's too, which count samples from there) such a move
	// was ignored, and the audio stayed up to 40 ms off.
	aac := fmt.Sprintf("audio/x-raw,rate=%d,channels=2 ! voaacenc bitrate=%d ! aacparse", s.opts.AudioSampleRate, s.opts.AudioBitrate)
	if s.audio != nil {
		c := s.audio.Codec()
		d = append(d, fmt.Sprintf(
			"appsrc name=%s %s caps=\"application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=%d,payload=%d\""+
				" ! rtpopusdepay ! opusdec plc=true ! audiorate skip-to-first=true tolerance=0 ! audioconvert ! audioresample ! %s"+muxQueue+"%s.audio",
			audioSrcName, appsrcProps, c.ClockRate, c.PayloadType, aac, muxName))
	} else {
		// No microphone: continuous AAC silence, since YouTube drops
		// streams without audio. Not live: the muxer paces it against the
		// video's timestamps.
		d = append(d, fmt.Sprintf("audiotestsrc name=%s is-live=false wave=silence ! audioconvert ! %s"+muxQueue+"%s.audio",
			silenceName, aac, muxName))
	}
	// streamable: no seeking back to patch the header, which RTMP cannot do.
	d = append(d, fmt.Sprintf("flvmux name=%s streamable=true ! appsink name=%s sync=false max-buffers=200", muxName, tagSinkName))
	return strings.Join(d, "  ")
}

// encoder is the H.264 encoder of the transcoding and slate branches.
// zerolatency: no B-frames or lookahead, so a frame leaves when it
// arrives. CBR (pass=cbr, x264enc's default) with a one-second VBV and
// nal-hrd=cbr, which pads easy pictures with filler so the rate is
// constant: what ingest servers expect (Twitch asks for CBR). A fixed GOP of KeyframeInterval (scenecut off, so
// x264 adds none of its own) gives Twitch its 2 s keyframes. Main profile
// and I420 (without it x264 picks High 4:4:4, which players reject); x264
// sets the level from size and rate (3.1 for 720p30).
func (s *Stream) encoder() string {
	v := s.opts.Video
	gop := max(1, int(s.opts.KeyframeInterval.Seconds()*float64(v.Framerate)))
	kbps := v.Bitrate / 1000
	return fmt.Sprintf("x264enc tune=zerolatency speed-preset=%s bitrate=%d vbv-buf-capacity=1000 key-int-max=%d"+
		" option-string=\"scenecut=0:keyint_min=%d:nal-hrd=cbr\""+
		" ! video/x-h264,profile=main ! h264parse", x264Preset, kbps, gop, gop)
}

// x264Preset trades quality for CPU. veryfast is what DESIGN.md measured
// (x264enc 26–30 % of a core for 720p30).
const x264Preset = "veryfast"

// startReaders starts one reader per track, feeding its appsrc, and once
// every reader has ended ends the stand-in sources too, so the muxer can
// drain. Each goroutine ends when its track is closed.
func (s *Stream) startReaders(main *gst.Pipeline, wg *sync.WaitGroup) error {
	var readers sync.WaitGroup
	for _, t := range []Track{s.video, s.audio} {
		if t == nil {
			continue
		}
		name := videoSrcName
		if t == s.audio {
			name = audioSrcName
		}
		el, err := main.GetElementByName(name)
		if err != nil {
			return err
		}
		readers.Add(1)
		wg.Add(1)
		go func() { defer wg.Done(); defer readers.Done(); s.read(t, app.SrcFromElement(el)) }()
	}
	var standIns []*gst.Element
	for _, name := range []string{silenceName, slateName} {
		if el, err := main.GetElementByName(name); err == nil {
			standIns = append(standIns, el)
		}
	}
	if len(standIns) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readers.Wait()
			for _, el := range standIns {
				el.SendEvent(gst.NewEOSEvent())
			}
		}()
	}
	return nil
}

// audioPathDelay is how much later than its timestamp the audio is heard
// at the destination, on this media path: the Opus encoder's lookahead
// (6.5 ms, which RTP cannot signal) and the AAC encoder's priming (1024
// samples, which FLV cannot signal; MP4 would use an edit list), plus what
// the decoders add. TestMediaSideLipSync measured 37–38 ms, passthrough and
// transcode alike, with exact capture times in. Video is delayed by the
// same, so a player shows the flash and plays the beep together.
const audioPathDelay = 38 * time.Millisecond

// timedPacket is a packet with its presentation time.
type timedPacket struct {
	pkt *rtp.Packet
	pts time.Duration
}

// read pushes one track's packets into its appsrc until the track ends,
// then ends the appsrc's stream so the muxer can drain. A second goroutine
// blocks in ReadRTP so that this one can notice when the track goes quiet
// and fill the gap (see gapFiller).
func (s *Stream) read(t Track, src *app.Source) {
	defer src.EndStream()
	c := t.Codec()
	packets := make(chan timedPacket, 64)
	done := make(chan struct{})
	ended := make(chan struct{})
	defer func() { close(done); <-ended }() // ends once the track is closed
	go func() {
		defer close(ended)
		defer close(packets)
		for {
			pkt, pts, err := t.ReadRTP()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					s.log.Debug("track read ended", "kind", c.Kind, "err", err)
				}
				return
			}
			select {
			case packets <- timedPacket{pkt, pts}:
			case <-done:
				return
			}
		}
	}()

	f := newGapFiller(c, s.videoCodec.name)
	f.timeline = &s.timeline
	if c.Kind == Video {
		f.standIn = func() []*rtp.Packet { return s.blackStandIn(c) }
	}
	var delay time.Duration
	if c.Kind == Video {
		delay = audioPathDelay
	}
	// The appsrc takes RTP packets, or for AV1 whole temporal units:
	// payload returns what to push for pkt, nil for nothing (yet).
	var tus *av1Assembler
	if c.Kind == Video && s.videoCodec.elementary != "" {
		tus = newAV1Assembler()
	}
	var wire []byte
	payload := func(pkt *rtp.Packet, pts time.Duration) ([]byte, time.Duration) {
		if tus != nil {
			tu, at, keyframeWanted := tus.add(pkt, pts)
			if keyframeWanted {
				s.requestKeyframeSoon()
			}
			return tu, at
		}
		n := pkt.MarshalSize()
		if cap(wire) < n {
			wire = make([]byte, n)
		}
		n, err := pkt.MarshalTo(wire[:n])
		if err != nil {
			return nil, 0
		}
		return wire[:n], pts
	}
	push := func(pkt *rtp.Packet, pts time.Duration) bool {
		data, pts := payload(pkt, pts)
		if data == nil {
			return true
		}
		buf := gst.NewBufferFromBytes(data)
		buf.SetPresentationTimestamp(gst.ClockTime(pts + delay))
		ret := src.PushBuffer(buf)
		release(buf)
		return ret == gst.FlowOK
	}

	check := time.NewTicker(f.checkEvery())
	defer check.Stop()
	for {
		select {
		case tp, ok := <-packets:
			if !ok {
				return
			}
			if tp.pts+delay < 0 {
				// Before the stream's start: a track's clock may begin
				// a little before the first track's (the synchronizer
				// starts each from its own first packets), and a
				// negative time would reach GStreamer as a huge one,
				// which stalls the muxer.
				continue
			}
			if tus != nil {
				tus.arrived(tp.pkt)
			}
			out, keyframeWanted := f.real(tp.pkt, tp.pts, time.Now())
			if keyframeWanted {
				t.RequestKeyframe()
			}
			for _, p := range out {
				if !push(p.pkt, p.pts) {
					return
				}
			}
		case now := <-check.C:
			for _, p := range f.fill(now) {
				if !push(p.pkt, p.pts) {
					return
				}
			}
		}
	}
}

// watchVideo finds the elements whose counters and caps Stats reports:
// videorate's drops, and the input size from each caps event out of the
// parser or decoder (a publisher can change size at any time).
func (s *Stream) watchVideo(main *gst.Pipeline) {
	rate, _ := main.GetElementByName(rateName)
	s.mu.Lock()
	s.rate = rate
	s.mu.Unlock()
	in, err := main.GetElementByName(videoInName)
	if err != nil {
		return
	}
	in.GetStaticPad("src").AddProbe(gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		ev := info.GetEvent()
		if ev == nil || ev.Type() != gst.EventTypeCaps {
			return gst.PadProbeOK
		}
		caps := ev.ParseCaps()
		if caps == nil || caps.GetSize() == 0 {
			return gst.PadProbeOK
		}
		str := caps.GetStructureAt(0)
		w, _ := str.GetValue("width")
		h, _ := str.GetValue("height")
		s.mu.Lock()
		s.stats.VideoWidthIn, _ = w.(int)
		s.stats.VideoHeightIn, _ = h.(int)
		// Passed through, the output is the input: flvmux sends onMetaData
		// once, so its size would go stale when a simulcast layer or
		// the publisher's size changes.
		if s.stats.Passthrough {
			s.stats.Width, s.stats.Height = s.stats.VideoWidthIn, s.stats.VideoHeightIn
		}
		s.mu.Unlock()
		return gst.PadProbeOK
	})
}
