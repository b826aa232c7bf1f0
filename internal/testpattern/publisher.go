package testpattern

import (
	"context"
	"errors"
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
	vp8Codec  = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	av1Codec  = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}
	opusCodec = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
)

// Publisher is one participant in one room publishing a Source: a camera
// track (one per simulcast layer, highest first) and a microphone Opus
// track, either of which the Source may leave out.
type Publisher struct {
	src  *Source
	opts PublishOptions
	log  *slog.Logger
	room *lksdk.Room
	// owner is the Publisher that joined the room, for one made by
	// AddVideo; nil when this one joined.
	owner  *Publisher
	audio  *lksdk.LocalTrack
	sdkLog protologger.Logger

	videoMu sync.Mutex
	video   []*lksdk.LocalTrack // one per layer; replaced by RepublishVideo

	videoPub *lksdk.LocalTrackPublication
	audioPub *lksdk.LocalTrackPublication
	videoSID string
	audioSID string
	plis     atomic.Int64
	inbox    *Inbox // data messages the room sent this participant
	// Muted tracks are announced as muted and get no samples, as an SFU
	// then forwards nothing.
	videoMuted, audioMuted atomic.Bool

	closeOnce sync.Once
}

// PublishOptions say how a Publisher announces its video track. The zero
// value publishes an unmuted track named testpattern-camera (or
// testpattern-screen).
type PublishOptions struct {
	// VideoName names the video track, e.g. to tell two cameras apart.
	VideoName string
	// VideoMuted publishes the camera muted from the start, as a browser
	// that joins with the camera off: not one frame is sent until
	// MuteVideo(false).
	VideoMuted bool
}

// Publish joins the room at url with token and publishes src's video and
// audio, returning once both tracks are bound to the peer connection, so
// media flows as soon as src runs. ctx bounds the join and publication
// only, like a dialer's context; the Publisher then runs until Close.
func Publish(ctx context.Context, src *Source, url, token string) (*Publisher, error) {
	return PublishWith(ctx, src, url, token, PublishOptions{})
}

// PublishWith is Publish with options for the video track.
func PublishWith(ctx context.Context, src *Source, url, token string, opts PublishOptions) (*Publisher, error) {
	lklog.Install(slog.Default(), slog.LevelWarn)
	timeout := defaultConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	sdkLog := lklog.New(src.log, slog.LevelWarn)
	p := &Publisher{src: src, opts: opts, log: src.log, inbox: NewInbox()}
	p.videoMuted.Store(opts.VideoMuted) // before the source is attached: no frame leaks out

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
	p.sdkLog = sdkLog
	video, bound, err := p.newVideoTracks()
	if err != nil {
		return err
	}
	p.setVideo(video)
	// A Publisher made by AddVideo adds video only.
	if p.src.audio != nil && p.owner == nil {
		p.audio, err = lksdk.NewLocalSampleTrack(opusCodec)
		if err != nil {
			return fmt.Errorf("testpattern: audio track: %w", err)
		}
		p.audio.SetLogger(sdkLog)
		b := make(chan struct{})
		p.audio.OnBind(func() { close(b) })
		bound = append(bound, b)
	}
	p.src.attach(p)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("testpattern: publish: %w", err)
	}

	if p.videoPub, err = p.publishVideo(video); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("testpattern: publish: %w", err)
	}
	if p.audio != nil && p.owner == nil {
		audioSource := livekit.TrackSource_MICROPHONE
		if p.src.opts.Screen {
			audioSource = livekit.TrackSource_SCREEN_SHARE_AUDIO
		}
		p.audioPub, err = p.room.LocalParticipant.PublishTrack(p.audio, &lksdk.TrackPublicationOptions{
			Name:   "testpattern-microphone",
			Source: audioSource,
			Stereo: true,
		})
		if err != nil {
			return fmt.Errorf("testpattern: publish audio: %w", err)
		}
		p.audioSID = p.audioPub.SID()
	}
	return waitBound(ctx, bound)
}

func waitBound(ctx context.Context, bound []chan struct{}) error {
	for _, b := range bound {
		select {
		case <-b:
		case <-ctx.Done():
			return fmt.Errorf("testpattern: tracks not bound: %w", ctx.Err())
		}
	}
	return nil
}

// newVideoTracks makes one local track per layer of the source, and the
// channels that close when each is bound to the peer connection.
func (p *Publisher) newVideoTracks() ([]*lksdk.LocalTrack, []chan struct{}, error) {
	o := p.src.opts
	codec := h264Codec
	switch o.Codec {
	case "vp8":
		codec = vp8Codec
	case "av1":
		codec = av1Codec
	}
	var tracks []*lksdk.LocalTrack
	var bound []chan struct{}
	for i := range p.src.Layers() {
		var opts []lksdk.LocalTrackOptions
		opts = append(opts, lksdk.WithRTCPHandler(p.onRTCP))
		if p.src.Layers() > 1 {
			l := layers[i]
			opts = append(opts, lksdk.WithSimulcast("testpattern-camera", &livekit.VideoLayer{
				Quality: []livekit.VideoQuality{livekit.VideoQuality_HIGH, livekit.VideoQuality_MEDIUM, livekit.VideoQuality_LOW}[i],
				Width:   uint32(o.Width / l &^ 1), Height: uint32(o.Height / l &^ 1),
			}))
		}
		t, err := lksdk.NewLocalTrack(codec, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("testpattern: video track: %w", err)
		}
		t.SetLogger(p.sdkLog)
		// Samples written before a track is bound are dropped, so attach
		// now and ask for a keyframe once the video track is bound: a
		// browser's encoder starts every new track with one, and this
		// Publisher may join a Source that has been running for a while.
		b := make(chan struct{})
		t.OnBind(func() {
			p.src.RequestKeyframe()
			close(b)
		})
		bound = append(bound, b)
		tracks = append(tracks, t)
	}
	return tracks, bound, nil
}

func (p *Publisher) publishVideo(tracks []*lksdk.LocalTrack) (*lksdk.LocalTrackPublication, error) {
	o := p.src.opts
	opts := &lksdk.TrackPublicationOptions{
		Name:        "testpattern-camera",
		Source:      livekit.TrackSource_CAMERA,
		VideoWidth:  o.Width,
		VideoHeight: o.Height,
	}
	if o.Screen {
		opts.Name, opts.Source = "testpattern-screen", livekit.TrackSource_SCREEN_SHARE
	}
	if p.opts.VideoName != "" {
		opts.Name = p.opts.VideoName
	}
	var pub *lksdk.LocalTrackPublication
	var err error
	switch len(tracks) {
	case 0:
		return nil, nil
	case 1:
		pub, err = p.room.LocalParticipant.PublishTrack(tracks[0], opts)
	default:
		pub, err = p.room.LocalParticipant.PublishSimulcastTrack(tracks, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("testpattern: publish video: %w", err)
	}
	p.videoSID = pub.SID()
	if p.opts.VideoMuted {
		pub.SetMuted(true)
	}
	return pub, nil
}

func (p *Publisher) setVideo(tracks []*lksdk.LocalTrack) {
	p.videoMu.Lock()
	defer p.videoMu.Unlock()
	p.video = tracks
}

// RepublishVideo unpublishes the camera and publishes a new track from
// the same source, as a browser does when the user switches cameras.
func (p *Publisher) RepublishVideo(ctx context.Context) error {
	if p.videoPub == nil {
		return errors.New("testpattern: no video to republish")
	}
	if err := p.room.LocalParticipant.UnpublishTrack(p.videoPub.SID()); err != nil {
		return fmt.Errorf("testpattern: unpublish video: %w", err)
	}
	video, bound, err := p.newVideoTracks()
	if err != nil {
		return err
	}
	p.setVideo(video)
	if p.videoPub, err = p.publishVideo(video); err != nil {
		return err
	}
	return waitBound(ctx, bound)
}

// AddVideo publishes src's video as one more video track of the
// participant p joined as (a second camera), or as its new camera after
// UnpublishVideo, e.g. of another codec. The result shares p's room:
// closing it unpublishes the track and leaves p in the room.
func (p *Publisher) AddVideo(ctx context.Context, src *Source, opts PublishOptions) (*Publisher, error) {
	owner := p
	if p.owner != nil {
		owner = p.owner
	}
	q := &Publisher{src: src, opts: opts, log: src.log, room: p.room, owner: owner, inbox: p.inbox, sdkLog: p.sdkLog}
	q.videoMuted.Store(opts.VideoMuted)
	if err := q.publish(ctx, p.sdkLog); err != nil {
		src.detach(q)
		return nil, err
	}
	return q, nil
}

// UnpublishVideo removes the video track, as a browser does when the
// camera is turned off for good or before it publishes another one.
func (p *Publisher) UnpublishVideo() error {
	if p.videoPub == nil {
		return errors.New("testpattern: no video to unpublish")
	}
	p.setVideo(nil)
	if err := p.room.LocalParticipant.UnpublishTrack(p.videoPub.SID()); err != nil {
		return fmt.Errorf("testpattern: unpublish video: %w", err)
	}
	return nil
}

// MuteVideo mutes or unmutes the camera as a browser does: the room is
// told, and no frames are sent while muted. Unmuting asks the encoder for
// a keyframe, which a browser's encoder sends on resume.
func (p *Publisher) MuteVideo(muted bool) {
	if p.videoPub == nil {
		return
	}
	p.videoMuted.Store(muted)
	p.videoPub.SetMuted(muted)
	if !muted {
		p.src.RequestKeyframe()
	}
}

// MuteAudio mutes or unmutes the microphone.
func (p *Publisher) MuteAudio(muted bool) {
	if p.audioPub == nil {
		return
	}
	p.audioMuted.Store(muted)
	p.audioPub.SetMuted(muted)
}

// onRTCP runs on the SDK's RTCP reader goroutine for the video track.
func (p *Publisher) onRTCP(pkt rtcp.Packet) {
	switch pkt.(type) {
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		p.plis.Add(1)
		p.src.RequestKeyframe()
	}
}

func (p *Publisher) writeVideo(layer int, s media.Sample) {
	p.videoMu.Lock()
	video := p.video
	p.videoMu.Unlock()
	if p.videoMuted.Load() || layer >= len(video) {
		return
	}
	if err := video[layer].WriteSample(s, nil); err != nil {
		p.log.Debug("test pattern: write video", "error", err)
	}
}

func (p *Publisher) writeAudio(s media.Sample) {
	if p.audioMuted.Load() || p.audio == nil {
		return
	}
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

// Close stops writing and leaves the room; one made by AddVideo
// unpublishes its track instead. It does not stop the Source.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.src.detach(p)
		if p.owner != nil {
			if p.videoPub != nil {
				_ = p.room.LocalParticipant.UnpublishTrack(p.videoPub.SID())
			}
			return
		}
		p.room.Disconnect()
	})
	return nil
}
