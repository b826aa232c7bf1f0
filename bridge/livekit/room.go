// Package livekit is roomcast's LiveKit adapter: it joins a room as a
// hidden participant, subscribes to one participant's tracks and hands them
// to the media side as egress.Tracks. Everything LiveKit-specific stays here.
package livekit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/synchronizer"
	"github.com/pion/webrtc/v4"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/egress"
	"github.com/roomcast/roomcast/internal/lklog"
)

// Client joins rooms on one LiveKit server. It implements bridge.Rooms.
type Client struct {
	cfg      config.LiveKit
	identity string // roomcast's participant (Join); subscribers add a suffix
	rooms    *lksdk.RoomServiceClient
	log      *slog.Logger
}

// NewClient returns a Client for the configured server. It also routes the
// SDK's logs through log: warnings and errors, or everything when log is
// at debug level.
func NewClient(cfg config.LiveKit, identity string, log *slog.Logger) *Client {
	min := slog.LevelWarn
	if log.Enabled(context.Background(), slog.LevelDebug) {
		min = slog.LevelDebug
	}
	lklog.Install(log.With("component", "livekit-sdk"), min)
	return &Client{
		cfg:      cfg,
		identity: identity,
		rooms:    lksdk.NewRoomServiceClient(cfg.URL, cfg.APIKey, cfg.APISecret),
		log:      log,
	}
}

// Subscribe joins room as a hidden participant and subscribes to identity's
// camera and microphone, waiting up to wait for both to be published. leave
// disconnects from the room; the tracks end then.
func (c *Client) Subscribe(ctx context.Context, room, identity string, wait time.Duration) (tracks []egress.Track, leave func(), err error) {
	if err := c.checkRoom(ctx, room); err != nil {
		return nil, nil, err
	}

	w := &waiter{
		identity: identity,
		want:     []lkproto.TrackSource{lkproto.TrackSource_CAMERA, lkproto.TrackSource_MICROPHONE},
		sync:     synchronizer.NewSynchronizer(nil),
		got:      map[lkproto.TrackSource]*track{},
		ready:    make(chan struct{}),
	}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackPublished = w.onPublished
	cb.OnTrackSubscribed = w.onSubscribed

	token, err := c.token(room)
	if err != nil {
		return nil, nil, err
	}
	r, err := lksdk.ConnectToRoomWithToken(c.cfg.URL, token, cb, lksdk.WithAutoSubscribe(false))
	if err != nil {
		return nil, nil, fmt.Errorf("%w %q on %s: %v", bridge.ErrRoomConnect, room, c.cfg.URL, err)
	}
	// Tracks published before we joined are not announced by callbacks.
	for _, rp := range r.GetRemoteParticipants() {
		for _, pub := range rp.TrackPublications() {
			if p, ok := pub.(*lksdk.RemoteTrackPublication); ok {
				w.onPublished(p, rp)
			}
		}
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return w.tracks(), r.Disconnect, nil
	case <-timer.C:
		r.Disconnect()
		w.closeAll()
		return nil, nil, fmt.Errorf("%w: participant %q in room %q did not publish %s within %v (has %s)",
			bridge.ErrTracksNotFound, identity, room, sourceList(w.want), wait, w.describe())
	case <-ctx.Done():
		r.Disconnect()
		w.closeAll()
		return nil, nil, ctx.Err()
	}
}

// checkRoom fails fast for a room that does not exist: joining would create
// it, and the broadcast would then wait for a participant who cannot come.
func (c *Client) checkRoom(ctx context.Context, room string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := c.rooms.ListRooms(ctx, &lkproto.ListRoomsRequest{Names: []string{room}})
	if err != nil {
		return fmt.Errorf("%w %q: LiveKit server %s: %v", bridge.ErrRoomConnect, room, c.cfg.URL, err)
	}
	if len(res.Rooms) == 0 {
		return fmt.Errorf("%w: no room %q on LiveKit server %s", bridge.ErrRoomNotFound, room, c.cfg.URL)
	}
	return nil
}

func (c *Client) token(room string) (string, error) {
	// One hidden participant per broadcast, each with its own identity: a
	// second join with the same identity would evict the first. Kind
	// EGRESS lets LiveKit close the room when only roomcast is left.
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	at := auth.NewAccessToken(c.cfg.APIKey, c.cfg.APISecret)
	at.SetIdentity(c.identity + "-" + hex.EncodeToString(suffix)).
		SetKind(lkproto.ParticipantInfo_EGRESS).
		SetValidFor(24 * time.Hour).
		SetVideoGrant(&auth.VideoGrant{
			RoomJoin:       true,
			Room:           room,
			Hidden:         true,
			CanSubscribe:   ptr(true),
			CanPublish:     ptr(false),
			CanPublishData: ptr(true),
		})
	token, err := at.ToJWT()
	if err != nil {
		return "", fmt.Errorf("%w %q: sign token: %v", bridge.ErrRoomConnect, room, err)
	}
	return token, nil
}

// waiter collects the wanted tracks of one participant as the SDK
// announces them, from the SDK's callback goroutines.
type waiter struct {
	identity string
	want     []lkproto.TrackSource
	sync     *synchronizer.Synchronizer

	mu        sync.Mutex
	published []lkproto.TrackSource // everything seen, for the error
	got       map[lkproto.TrackSource]*track
	ready     chan struct{}
	done      bool
}

func (w *waiter) onPublished(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if rp.Identity() != w.identity {
		return
	}
	w.mu.Lock()
	w.published = append(w.published, pub.Source())
	wanted := slices.Contains(w.want, pub.Source()) && w.got[pub.Source()] == nil
	w.mu.Unlock()
	if wanted {
		_ = pub.SetSubscribed(true)
	}
}

func (w *waiter) onSubscribed(remote *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if rp.Identity() != w.identity || !slices.Contains(w.want, pub.Source()) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.got[pub.Source()] != nil {
		return
	}
	w.got[pub.Source()] = newTrack(remote, pub, rp, w.sync)
	if len(w.got) == len(w.want) {
		w.done = true
		close(w.ready)
	}
}

func (w *waiter) tracks() []egress.Track {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ts []egress.Track
	for _, src := range w.want {
		ts = append(ts, w.got[src])
	}
	return ts
}

func (w *waiter) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	for _, t := range w.got {
		_ = t.Close()
	}
}

func (w *waiter) describe() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.published) == 0 {
		return "no tracks"
	}
	return sourceList(w.published)
}

func sourceList(srcs []lkproto.TrackSource) string {
	s := ""
	for i, src := range srcs {
		if i > 0 {
			s += " and "
		}
		s += src.String()
	}
	return s
}

func ptr[T any](v T) *T { return &v }
