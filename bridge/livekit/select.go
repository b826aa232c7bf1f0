package livekit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/roomcast/roomcast/bridge"
)

// selection says which of a participant's publications a broadcast takes:
// one video and one audio track of the requested source, or the video
// track with the requested name.
type selection struct {
	video, audio lkproto.TrackSource
	trackName    string
	maxW, maxH   uint32
}

func newSelection(req bridge.SubscribeRequest) selection {
	s := selection{
		video: lkproto.TrackSource_CAMERA, audio: lkproto.TrackSource_MICROPHONE,
		trackName: req.TrackName, maxW: uint32(req.MaxWidth), maxH: uint32(req.MaxHeight),
	}
	if req.Source == bridge.SourceScreen {
		s.video, s.audio = lkproto.TrackSource_SCREEN_SHARE, lkproto.TrackSource_SCREEN_SHARE_AUDIO
	}
	return s
}

// wants reports whether pub is the video or audio track the broadcast
// takes. A track name, when given, picks the video track whatever its
// source: a participant may publish two cameras.
func (s selection) wants(pub *lksdk.RemoteTrackPublication) bool {
	if pub.Kind() == lksdk.TrackKindVideo {
		if s.trackName != "" {
			return pub.Name() == s.trackName
		}
		return pub.Source() == s.video
	}
	return pub.Source() == s.audio
}

func (s selection) String() string {
	v := s.video.String()
	if s.trackName != "" {
		v = fmt.Sprintf("video track %q", s.trackName)
	}
	return v + " and " + s.audio.String()
}

// chooseLayer picks the simulcast layer to receive: the largest that fits
// within maxW x maxH, or the highest when no size is given. It returns nil
// for a track without layers. A layer that is too big is better than none:
// when nothing fits, the smallest is taken (the transcoder scales it).
func chooseLayer(info *lkproto.TrackInfo, maxW, maxH uint32) *lkproto.VideoLayer {
	if info == nil {
		return nil
	}
	layers := info.Layers
	if len(layers) == 0 && len(info.Codecs) > 0 {
		layers = info.Codecs[0].Layers
	}
	if len(layers) < 2 {
		return nil // not simulcast: nothing to choose
	}
	layers = slices.Clone(layers)
	slices.SortFunc(layers, func(a, b *lkproto.VideoLayer) int { return int(a.Width*a.Height) - int(b.Width*b.Height) })
	if maxW == 0 || maxH == 0 {
		return layers[len(layers)-1]
	}
	for i := len(layers) - 1; i >= 0; i-- {
		if layers[i].Width <= maxW && layers[i].Height <= maxH {
			return layers[i]
		}
	}
	return layers[0]
}

// layerName is how status reports a layer: "high 1280x720".
func layerName(l *lkproto.VideoLayer) string {
	if l == nil {
		return ""
	}
	return fmt.Sprintf("%s %dx%d", strings.ToLower(l.Quality.String()), l.Width, l.Height)
}

// Why waitTracks gave up.
var (
	errNoTracks = errors.New("no tracks")
	// errNoNamedTrack: the broadcast asked for a video track by name, and
	// the participant does not publish one of that name. Going ahead
	// without the video the user named would hide the mistake.
	errNoNamedTrack = errors.New("no video track of that name")
)

// settle is how long a broadcast waits for the rest of a participant's
// tracks once one is in and no other wanted one is announced: a browser
// publishes camera and microphone within a second of each other, and an
// audio-only (or video-only) participant should not wait all of Wait.
const settle = 2 * time.Second

// waitTracks returns once both tracks are in; or, once one is in, every
// wanted publication seen is subscribed and settle has passed without a
// new one; or at wait with whatever is in. It fails if nothing came, or
// if a video track named by the request is not among what came.
func (w *waiter) waitTracks(ctx context.Context, wait time.Duration) error {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	settled := time.NewTimer(settle)
	settled.Stop() // started by the first track, restarted by each
	defer settled.Stop()
	for {
		select {
		case <-w.ready:
			return nil
		case <-w.update:
			settled.Reset(settle)
		case <-settled.C:
			if ok, err := w.partial(); ok {
				return err
			}
		case <-deadline.C:
			return w.some()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// partial reports that some track is in and every wanted publication seen
// so far is subscribed, and whether that is enough (see missingNamed).
func (w *waiter) partial() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.got) == 0 || len(w.got) != len(w.wanted) {
		return false, nil
	}
	w.done = true // late arrivals are no longer taken
	return true, w.missingNamed()
}

// some ends the wait with whatever is in, if that is enough.
func (w *waiter) some() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true // late arrivals are no longer taken
	if len(w.got) == 0 {
		return errNoTracks
	}
	return w.missingNamed()
}

// missingNamed fails a wait that ends without the video track the
// request named; w.mu must be held.
func (w *waiter) missingNamed() error {
	if w.sel.trackName != "" && w.got[lksdk.TrackKindVideo] == nil {
		return errNoNamedTrack
	}
	return nil
}

// anyWanted reports whether a publication of kind is already being
// subscribed to; w.mu must be held.
func (w *waiter) anyWanted(kind lksdk.TrackKind) bool {
	for _, k := range w.wanted {
		if k == kind {
			return true
		}
	}
	return false
}

// chooseLayer asks the SFU for the simulcast layer that fits; w.mu must
// be held.
func (w *waiter) chooseLayer(pub *lksdk.RemoteTrackPublication) {
	l := chooseLayer(pub.TrackInfo(), w.sel.maxW, w.sel.maxH)
	if l == nil {
		return
	}
	w.layer = l
	_ = pub.SetVideoQuality(l.Quality) // fails only for OFF
}

func (w *waiter) layerName() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return layerName(w.layer)
}

func describePub(pub *lksdk.RemoteTrackPublication) string {
	return fmt.Sprintf("%s %q (%s)", pub.Source(), pub.Name(), pub.MimeType())
}
