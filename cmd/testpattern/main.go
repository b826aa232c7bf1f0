// Command testpattern joins a LiveKit room and publishes a live H.264 + Opus
// test pattern until interrupted, standing in for a browser publisher in the
// demo (make run) and in manual tests.
//
//	testpattern --url ws://127.0.0.1:7880 --api-key devkey --api-secret secret \
//		--room demo --identity alice [--width 1280 --height 720 --fps 30 --bitrate 2500]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// statsEvery is how often the running publisher logs what it sent.
const statsEvery = 10 * time.Second

func main() {
	if err := run(); err != nil {
		slog.Error("testpattern failed", "error", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "ws://127.0.0.1:7880", "LiveKit server URL")
	apiKey := flag.String("api-key", "devkey", "LiveKit API key")
	apiSecret := flag.String("api-secret", "secret", "LiveKit API secret")
	room := flag.String("room", "demo", "room to join")
	identity := flag.String("identity", "alice", "participant identity")
	width := flag.Int("width", 1280, "video width")
	height := flag.Int("height", 720, "video height")
	fps := flag.Int("fps", 30, "video frame rate")
	bitrate := flag.Int("bitrate", 2500, "video bitrate in kbit/s")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	token, err := livekitdev.Token(*apiKey, *apiSecret, *room, *identity)
	if err != nil {
		return err
	}
	src, err := testpattern.NewSource(testpattern.SourceOptions{
		Width: *width, Height: *height, FPS: *fps, BitrateKbps: *bitrate,
	})
	if err != nil {
		return err
	}
	defer src.Close()
	if err := src.Start(ctx); err != nil {
		return err
	}

	joinCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	pub, err := testpattern.Publish(joinCtx, src, *url, token)
	cancel()
	if err != nil {
		return err
	}
	defer pub.Close()
	slog.Info("publishing test pattern", "url", *url, "room", *room, "identity", *identity,
		"video", fmt.Sprintf("%dx%d@%d %dkbps", *width, *height, *fps, *bitrate),
		"videoTrack", pub.VideoTrackSID(), "audioTrack", pub.AudioTrackSID())

	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			slog.Info("sent", "videoFrames", src.VideoFrames(), "audioFrames", src.AudioFrames(),
				"plis", pub.PLIs(), "keyframeRequests", src.KeyframeRequests())
		case <-src.Done():
			if err := src.Err(); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			slog.Info("stopped")
			return nil
		}
	}
}
