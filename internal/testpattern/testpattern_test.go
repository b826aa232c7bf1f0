package testpattern

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/roomcast/roomcast/internal/avc"
	"github.com/roomcast/roomcast/internal/livekitdev"
)

// receivedAU is one H.264 access unit as a subscriber reassembled it.
type receivedAU struct {
	hash     [32]byte
	keyframe bool
	at       time.Time
}

// subscriber is a second participant that reads both published tracks.
type subscriber struct {
	room  *lksdk.Room
	aus   chan receivedAU
	audio chan struct{} // one token per audio packet, dropped when full
	pli   chan func()   // sends a PLI for the video track
	wg    sync.WaitGroup
}

func joinSubscriber(t *testing.T, ctx context.Context, srv *livekitdev.Server, room string) *subscriber {
	t.Helper()
	s := &subscriber{
		aus:   make(chan receivedAU, 1024),
		audio: make(chan struct{}, 1024),
		pli:   make(chan func(), 1),
	}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		s.wg.Add(1)
		switch track.Kind() {
		case webrtc.RTPCodecTypeVideo:
			ssrc := track.SSRC()
			s.pli <- func() { rp.WritePLI(ssrc) }
			go s.readVideo(ctx, track)
		default:
			go s.readAudio(ctx, track)
		}
	}
	tok, err := srv.Token(room, "viewer", livekitdev.SubscribeOnly)
	if err != nil {
		t.Fatal(err)
	}
	s.room, err = lksdk.ConnectToRoomWithToken(srv.URL(), tok, cb)
	if err != nil {
		t.Fatalf("viewer join: %v", err)
	}
	return s
}

// readVideo reassembles access units (RTP marker bit ends one) and reports
// each until the track ends.
func (s *subscriber) readVideo(ctx context.Context, track *webrtc.TrackRemote) {
	defer s.wg.Done()
	var depack codecs.H264Packet
	var au bytes.Buffer
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		b, err := depack.Unmarshal(pkt.Payload)
		if err != nil {
			au.Reset()
			continue
		}
		au.Write(b)
		if !pkt.Marker {
			continue
		}
		nalus := avc.SplitAnnexB(au.Bytes())
		r := receivedAU{hash: avc.VCLHash(nalus), keyframe: avc.IsKeyframe(nalus), at: time.Now()}
		au.Reset()
		select {
		case s.aus <- r:
		case <-ctx.Done():
			return
		}
	}
}

func (s *subscriber) readAudio(ctx context.Context, track *webrtc.TrackRemote) {
	defer s.wg.Done()
	for {
		if _, _, err := track.ReadRTP(); err != nil {
			return
		}
		select {
		case s.audio <- struct{}{}:
		default:
		}
	}
}

func (s *subscriber) close() {
	s.room.Disconnect()
	s.wg.Wait()
}

// nextAU waits for the next access unit, failing the test on timeout.
func (s *subscriber) nextAU(t *testing.T, ctx context.Context) receivedAU {
	t.Helper()
	select {
	case r := <-s.aus:
		return r
	case <-ctx.Done():
		t.Fatalf("no video access unit: %v", ctx.Err())
		return receivedAU{}
	}
}

func TestPublishKeyframesOnlyOnRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	srv, err := livekitdev.Start(ctx, livekitdev.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	src, err := NewSource(SourceOptions{Width: 640, Height: 360})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Token("tp", "alice")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := Publish(ctx, src, srv.URL(), tok)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if pub.VideoTrackSID() == "" || pub.AudioTrackSID() == "" {
		t.Fatalf("track sids %q %q", pub.VideoTrackSID(), pub.AudioTrackSID())
	}

	sub := joinSubscriber(t, ctx, srv, "tp")
	defer sub.close()

	// The SFU forwards from a keyframe on, so the first access unit is one.
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	defer waitCancel()
	first := sub.nextAU(t, waitCtx)
	if !first.keyframe {
		t.Errorf("first access unit received is not a keyframe")
	}
	select {
	case <-sub.audio:
	case <-waitCtx.Done():
		t.Fatal("no audio RTP received")
	}
	var sendPLI func()
	select {
	case sendPLI = <-sub.pli:
	case <-waitCtx.Done():
		t.Fatal("video track never subscribed")
	}

	// Quiet window: without keyframe requests the encoder must not send a
	// keyframe, and every frame must arrive byte-identical.
	var latencies []time.Duration
	checkPassthrough := func(r receivedAU) {
		t.Helper()
		sent, ok := src.FrameSentAt(r.hash)
		if !ok {
			t.Errorf("received an access unit that was never sent (keyframe %v)", r.keyframe)
			return
		}
		latencies = append(latencies, r.at.Sub(sent))
	}
	checkPassthrough(first)
	requestsBefore := src.KeyframeRequests()
	window, windowCancel := context.WithTimeout(ctx, 3*time.Second)
	quietFrames, quietKeyframes := 0, 0
collect:
	for {
		select {
		case r := <-sub.aus:
			checkPassthrough(r)
			quietFrames++
			if r.keyframe {
				quietKeyframes++
			}
		case <-window.Done():
			break collect
		}
	}
	windowCancel()
	if requests := src.KeyframeRequests() - requestsBefore; requests == 0 && quietKeyframes > 0 {
		t.Errorf("%d keyframes in 3 s without a keyframe request", quietKeyframes)
	} else if int64(quietKeyframes) > requests {
		t.Errorf("%d keyframes in 3 s for %d keyframe requests", quietKeyframes, requests)
	}
	if quietFrames < 60 {
		t.Errorf("received %d frames in 3 s at 30 fps", quietFrames)
	}

	// A PLI from the viewer reaches the publisher and yields a keyframe.
	plisBefore := pub.PLIs()
	sentPLI := time.Now()
	sendPLI()
	pliCtx, pliCancel := context.WithTimeout(ctx, 2*time.Second)
	defer pliCancel()
	for {
		r := sub.nextAU(t, pliCtx)
		checkPassthrough(r)
		if r.keyframe {
			t.Logf("keyframe received %v after PLI", r.at.Sub(sentPLI).Round(time.Millisecond))
			break
		}
	}
	if pub.PLIs() <= plisBefore {
		t.Errorf("publisher counted no PLI (before %d, after %d)", plisBefore, pub.PLIs())
	}

	// The publisher's own record agrees: every keyframe had a cause.
	frames := src.Frames()
	keyframes := 0
	for _, f := range frames {
		if f.Keyframe {
			keyframes++
		}
	}
	if max := 1 + src.KeyframeRequests(); int64(keyframes) > max {
		t.Errorf("%d keyframes sent for 1 first frame + %d requests", keyframes, src.KeyframeRequests())
	}
	if src.AudioFrames() == 0 {
		t.Error("no audio frames written")
	}
	slices.Sort(latencies)
	t.Logf("frames sent %d (keyframes %d), audio frames %d, PLIs %d, keyframe requests %d; latency p50 %v max %v over %d frames",
		len(frames), keyframes, src.AudioFrames(), pub.PLIs(), src.KeyframeRequests(),
		latencies[len(latencies)/2], latencies[len(latencies)-1], len(latencies))

	// Everything stops on Close.
	pub.Close()
	src.Close()
	select {
	case <-src.Done():
	case <-ctx.Done():
		t.Fatal("source did not stop")
	}
	if err := src.Err(); err != nil {
		t.Errorf("source stopped with %v", err)
	}
}

func TestSourceStopsWithContext(t *testing.T) {
	src, err := NewSource(SourceOptions{Width: 320, Height: 240, FPS: 15, BitrateKbps: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := src.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	cancel()
	select {
	case <-src.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("source still running 5 s after its context ended")
	}
	if !errors.Is(src.Err(), context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", src.Err())
	}
}

func TestOneSourceManyRooms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	srv, err := livekitdev.Start(ctx, livekitdev.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	src, err := NewSource(SourceOptions{Width: 320, Height: 240, BitrateKbps: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}

	pubs := make(map[string]*Publisher)
	for _, room := range []string{"a", "b"} {
		tok, err := srv.Token(room, "alice")
		if err != nil {
			t.Fatal(err)
		}
		pubs[room], err = Publish(ctx, src, srv.URL(), tok)
		if err != nil {
			t.Fatalf("publish into room %s: %v", room, err)
		}
		defer pubs[room].Close()
	}

	sub := joinSubscriber(t, ctx, srv, "b")
	defer sub.close()
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	defer waitCancel()
	if first := sub.nextAU(t, waitCtx); !first.keyframe {
		t.Error("first access unit in room b is not a keyframe")
	}

	// Room a leaving must not disturb room b.
	pubs["a"].Close()
	plisA := pubs["a"].PLIs()
	for range 30 {
		r := sub.nextAU(t, waitCtx)
		if _, ok := src.FrameSentAt(r.hash); !ok {
			t.Fatal("room b received an access unit the source never sent")
		}
	}

	// A PLI in room b reaches b's publisher and forces a keyframe.
	var sendPLI func()
	select {
	case sendPLI = <-sub.pli:
	case <-waitCtx.Done():
		t.Fatal("video track never subscribed")
	}
	plisB := pubs["b"].PLIs()
	sendPLI()
	for r := sub.nextAU(t, waitCtx); !r.keyframe; r = sub.nextAU(t, waitCtx) {
	}
	if pubs["b"].PLIs() <= plisB {
		t.Error("room b's publisher counted no PLI")
	}
	if got := pubs["a"].PLIs(); got != plisA {
		t.Errorf("closed publisher a still counts PLIs: %d then %d", plisA, got)
	}
}
