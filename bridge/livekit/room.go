// Package livekit is roomcast's LiveKit adapter: it joins a room as a
// hidden participant, subscribes to one participant's tracks and hands them
// to the media side as egress.Tracks. Everything LiveKit-specific stays here.
package livekit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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

// Subscribe joins the room as a hidden participant and subscribes to the
// participant's selected video and audio (see selection), waiting up to
// req.Wait for them; it goes ahead with one of the two when the other is
// not published (see waitTracks). Leave disconnects from the room; the
// tracks end then.
func (c *Client) Subscribe(ctx context.Context, req bridge.SubscribeRequest) (bridge.Subscription, error) {
	room, identity, wait := req.Room, req.Identity, req.Wait
	if err := c.checkRoom(ctx, room); err != nil {
		return bridge.Subscription{}, err
	}

	warn := req.OnWarning
	if warn == nil {
		warn = func(error) {}
	}
	w := &waiter{
		identity: identity,
		warn:     warn,
		sel:      newSelection(req),
		sync:     synchronizer.NewSynchronizerWithOptions(synchronizer.WithStartGate()),
		got:      map[lksdk.TrackKind]*track{},
		ready:    make(chan struct{}),
		update:   make(chan struct{}, 1),
	}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackPublished = w.onPublished
	cb.OnTrackSubscribed = w.onSubscribed
	cb.OnParticipantDisconnected = w.onDisconnected

	token, err := c.token(room)
	if err != nil {
		return bridge.Subscription{}, err
	}
	r, err := lksdk.ConnectToRoomWithToken(c.cfg.URL, token, cb, lksdk.WithAutoSubscribe(false))
	if err != nil {
		return bridge.Subscription{}, fmt.Errorf("%w %q on %s: %v", bridge.ErrRoomConnect, room, c.cfg.URL, err)
	}
	// Tracks published before we joined are not announced by callbacks.
	for _, rp := range r.GetRemoteParticipants() {
		for _, pub := range rp.TrackPublications() {
			if p, ok := pub.(*lksdk.RemoteTrackPublication); ok {
				w.onPublished(p, rp)
			}
		}
	}

	if err := w.waitTracks(ctx, wait); err != nil {
		r.Disconnect()
		w.closeAll()
		if ctx.Err() != nil {
			return bridge.Subscription{}, ctx.Err()
		}
		if errors.Is(err, errNoNamedTrack) {
			return bridge.Subscription{}, fmt.Errorf("%w: participant %q in room %q publishes no video track named %q (it publishes %s)",
				bridge.ErrTracksNotFound, identity, room, w.sel.trackName, w.describe())
		}
		return bridge.Subscription{}, fmt.Errorf("%w: participant %q in room %q did not publish %s within %v (has %s)",
			bridge.ErrTracksNotFound, identity, room, w.sel, wait, w.describe())
	}
	return bridge.Subscription{Tracks: w.tracks(), Leave: r.Disconnect, Layer: w.layerName()}, nil
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
	sel      selection
	warn     func(error) // never nil
	sync     *synchronizer.Synchronizer

	mu        sync.Mutex
	published []string                   // everything seen, for the error
	wanted    map[string]lksdk.TrackKind // SIDs subscribed to
	got       map[lksdk.TrackKind]*track
	layer     *lkproto.VideoLayer        // the simulcast layer asked for
	relays    map[lksdk.TrackKind]*relay // what egress reads, once started
	ready     chan struct{}              // closed when video and audio are in
	update    chan struct{}              // a track came in
	done      bool
	late      map[string]bool // SIDs warned about by lateTrack
}

func (w *waiter) onPublished(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if rp.Identity() != w.identity {
		return
	}
	w.mu.Lock()
	// The SDK may announce a publication twice (at join and on update).
	if d := describePub(pub); !slices.Contains(w.published, d) {
		w.published = append(w.published, d)
	}
	if late := w.lateTrack(pub); late != nil {
		w.mu.Unlock()
		w.warn(late)
		return
	}
	wanted := w.sel.wants(pub) && w.got[pub.Kind()] == nil && !w.anyWanted(pub.Kind())
	if w.relays[pub.Kind()] != nil {
		// A replacement for a track already broadcast (see relay).
		_, seen := w.wanted[pub.SID()]
		wanted = w.sel.wants(pub) && !seen
	}
	if wanted {
		if w.wanted == nil {
			w.wanted = map[string]lksdk.TrackKind{}
		}
		w.wanted[pub.SID()] = pub.Kind()
	}
	w.mu.Unlock()
	if wanted {
		_ = pub.SetSubscribed(true)
	}
}

// lateTrack returns the warning for a wanted publication of a kind the
// broadcast started without (a camera that had never sent a packet is not
// announced until it does), once per publication; w.mu must be held. It
// is not taken: the FLV would grow a track mid-stream, which players
// handle badly.
func (w *waiter) lateTrack(pub *lksdk.RemoteTrackPublication) error {
	if !w.done || w.got[pub.Kind()] != nil || !w.sel.wants(pub) || w.late[pub.SID()] {
		return nil
	}
	if w.late == nil {
		w.late = map[string]bool{}
	}
	w.late[pub.SID()] = true
	return fmt.Errorf("%w: participant %q published %s after the broadcast started without %s; a running broadcast does not add a track"+
		" (players handle a stream that grows one badly): restart the broadcast to include it",
		bridge.ErrTrackChanged, w.identity, describePub(pub), pub.Kind())
}

func (w *waiter) onSubscribed(remote *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if rp.Identity() != w.identity || !w.sel.wants(pub) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.relays[pub.Kind()]; r != nil {
		if pub.Kind() == lksdk.TrackKindVideo {
			w.chooseLayer(pub)
		}
		if t := newTrack(remote, pub, rp, w.sync); !r.offer(t) {
			_ = t.Close()
			// Refused (another codec, or a replacement is already
			// waiting): stop the SFU sending it.
			_ = pub.SetSubscribed(false)
		}
		return
	}
	if w.done || w.got[pub.Kind()] != nil {
		return
	}
	if pub.Kind() == lksdk.TrackKindVideo {
		w.chooseLayer(pub)
	}
	w.got[pub.Kind()] = newTrack(remote, pub, rp, w.sync)
	select {
	case w.update <- struct{}{}:
	default:
	}
	if len(w.got) == 2 {
		w.done = true
		close(w.ready)
	}
}

func (w *waiter) tracks() []egress.Track {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ts []egress.Track
	w.relays = map[lksdk.TrackKind]*relay{}
	for _, kind := range []lksdk.TrackKind{lksdk.TrackKindVideo, lksdk.TrackKindAudio} {
		if t := w.got[kind]; t != nil {
			w.relays[kind] = newRelay(t, w.identity, w.warn)
			ts = append(ts, w.relays[kind])
		}
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
	return strings.Join(w.published, ", ")
}

func ptr[T any](v T) *T { return &v }
