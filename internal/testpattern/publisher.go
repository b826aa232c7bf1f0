package testpattern

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	protologger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/roomcast/roomcast/internal/lklog"
)

// defaultConnectTimeout bounds joining a room when ctx has no deadline.
const defaultConnectTimeout = 10 * time.Second

var (
	// h264Codec is what the encoder emits: constrained baseline, level 3.1
	// (720p30), the profile every browser decodes in hardware and software.
	h264Codec = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeH264,
		ClockRate:   90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}
	opusCodec = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
)

// Publisher is one participant in one room publishing a Source: a camera
// H.264 track and a microphone Opus track.
type Publisher struct {
	src   *Source
	log   *slog.Logger
	room  *lksdk.Room
	video *lksdk.LocalTrack
	audio *lksdk.LocalTrack

	videoSID string
	audioSID string
	plis     atomic.Int64
	inbox    *Inbox // data messages the room sent this participant

	closeOnce sync.Once
}

// Publish joins the room at url with token and publishes src's video and
// audio, returning once both tracks are bound to the peer connection, so
// media flows as soon as src runs. ctx bounds the join and publication
// only, like a dialer's context; the Publisher then runs until Close.
func Publish(ctx context.Context, src *Source, url, token string) (*Publisher, error) {
	lklog.Install(slog.Default(), slog.LevelWarn)
	timeout := defaultConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	sdkLog := lklog.New(src.log, slog.LevelWarn)
	p := &Publisher{src: src, log: src.log, inbox: NewInbox()}

	room, err := lksdk.ConnectToRoomWithToken(url, token, p.inbox.Callback(),
		lksdk.WithAutoSubscribe(false),
		lksdk.WithConnectTimeout(timeout),
		lksdk.WithLogger(sdkLog))
	if err != nil {
		return nil, fmt.Errorf("testpattern: join %s: %w", url, err)
	}
	p.room = room
	if err := p.publish(ctx, sdkLog); err != nil {
		src.detach(p)
		room.Disconnect()
		return nil, err
	}
	return p, nil
}

func (p *Publisher) publish(ctx context.Context, sdkLog protologger.Logger) error {
	var err error
	p.video, err = lksdk.NewLocalSampleTrack(h264Codec, lksdk.WithRTCPHandler(p.onRTCP))
	if err != nil {
		return fmt.Errorf("testpattern: video track: %w", err)
	}
	p.video.SetLogger(sdkLog)
	p.audio, err = lksdk.NewLocalSampleTrack(opusCodec)
	if err != nil {
		return fmt.Errorf("testpattern: audio track: %w", err)
	}
	p.audio.SetLogger(sdkLog)
	// Samples written before a track is bound are dropped, so attach now and
	// ask for a keyframe once the video track is bound: a browser's encoder
	// starts every new track with one, and this Publisher may join a Source
	// that has been running for a while.
	videoBound, audioBound := make(chan struct{}), make(chan struct{})
	p.video.OnBind(func() {
		p.src.RequestKeyframe()
		close(videoBound)
	})
	p.audio.OnBind(func() { close(audioBound) })
	p.src.attach(p)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("testpattern: publish: %w", err)
	}

	lp := p.room.LocalParticipant
	vpub, err := lp.PublishTrack(p.video, &lksdk.TrackPublicationOptions{
		Name:        "testpattern-camera",
		Source:      livekit.TrackSource_CAMERA,
		VideoWidth:  p.src.opts.Width,
		VideoHeight: p.src.opts.Height,
	})
	if err != nil {
		return fmt.Errorf("testpattern: publish video: %w", err)
	}
	p.videoSID = vpub.SID()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("testpattern: publish: %w", err)
	}
	apub, err := lp.PublishTrack(p.audio, &lksdk.TrackPublicationOptions{
		Name:   "testpattern-microphone",
		Source: livekit.TrackSource_MICROPHONE,
		Stereo: true,
	})
	if err != nil {
		return fmt.Errorf("testpattern: publish audio: %w", err)
	}
	p.audioSID = apub.SID()
	for _, bound := range []chan struct{}{videoBound, audioBound} {
		select {
		case <-bound:
		case <-ctx.Done():
			return fmt.Errorf("testpattern: tracks not bound: %w", ctx.Err())
		}
	}
	return nil
}

// onRTCP runs on the SDK's RTCP reader goroutine for the video track.
func (p *Publisher) onRTCP(pkt rtcp.Packet) {
	switch pkt.(type) {
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		p.plis.Add(1)
		p.src.RequestKeyframe()
	}
}

func (p *Publisher) writeVideo(s media.Sample) {
	if err := p.video.WriteSample(s, nil); err != nil {
		p.log.Debug("test pattern: write video", "error", err)
	}
}

func (p *Publisher) writeAudio(s media.Sample) {
	if err := p.audio.WriteSample(s, nil); err != nil {
		p.log.Debug("test pattern: write audio", "error", err)
	}
}

// PLIs counts keyframe requests (PLI or FIR) received for the video track.
func (p *Publisher) PLIs() int64 { return p.plis.Load() }

// VideoTrackSID is the server's id for the video track.
func (p *Publisher) VideoTrackSID() string { return p.videoSID }

// AudioTrackSID is the server's id for the audio track.
func (p *Publisher) AudioTrackSID() string { return p.audioSID }

// Identity is the participant identity the token granted.
func (p *Publisher) Identity() string { return p.room.LocalParticipant.Identity() }

// Source is the encoder this Publisher writes.
func (p *Publisher) Source() *Source { return p.src }

// Close stops writing and leaves the room. It does not stop the Source.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.src.detach(p)
		p.room.Disconnect()
	})
	return nil
}
