// Package e2e proves roomcast's user stories against real components: a
// livekit-server, Go SDK publishers encoding with GStreamer, roomcast
// itself, an RTMP receiver that records every message, and nginx-rtmp read
// back with ffprobe.
package e2e

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge/httpapi"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/service"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// testLog keeps test output readable: warnings and errors only, unless
// ROOMCAST_TEST_LOG=debug.
func testLog() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("ROOMCAST_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func startLiveKit(tb testing.TB) *livekitdev.Server {
	tb.Helper()
	return startLiveKitWith(tb, livekitdev.Options{})
}

func startLiveKitWith(tb testing.TB, opts livekitdev.Options) *livekitdev.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts.Dir = tb.TempDir()
	lk, err := livekitdev.Start(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = lk.Close() })
	return lk
}

// publisher is a Go SDK participant publishing a live H.264 + Opus test
// pattern, remembering every access unit it sent.
type publisher struct {
	*testpattern.Source
	pub *testpattern.Publisher
}

func publish(tb testing.TB, lk *livekitdev.Server, room, identity string, opts testpattern.SourceOptions) *publisher {
	tb.Helper()
	src := startSource(tb, opts)
	return &publisher{Source: src, pub: join(tb, lk, src, room, identity)}
}

// startSource runs a test-pattern encoder until the test ends.
func startSource(tb testing.TB, opts testpattern.SourceOptions) *testpattern.Source {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = testLog()
	}
	src, err := testpattern.NewSource(opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := src.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = src.Close() })
	return src
}

// newReceiver is an RTMP receiver that records every message, closed
// when the test ends.
func newReceiver(tb testing.TB) *rtmptest.Receiver {
	tb.Helper()
	recv, err := rtmptest.NewReceiver()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = recv.Close() })
	return recv
}

// join connects one more participant publishing src: benchmarks fan one
// encoder out to many rooms.
func join(tb testing.TB, lk *livekitdev.Server, src *testpattern.Source, room, identity string) *testpattern.Publisher {
	tb.Helper()
	token, err := lk.Token(room, identity)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := testpattern.Publish(ctx, src, lk.URL(), token)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pub.Close() })
	return pub
}

// roomcast is the bridge running in this process, as `roomcast serve`
// wires it, with its API on a free loopback port. Its Client carries a
// token for every room.
type roomcast struct {
	*httpapi.Client
	svc  *service.Service
	cfg  config.Config
	addr string
}

func startRoomcast(tb testing.TB, lk *livekitdev.Server, adjust func(*config.Config)) *roomcast {
	return startRoomcastOn(tb, listen(tb), lk, adjust, testLog())
}

// listen reserves a loopback port, e.g. for roomcast's API before the
// livekit-server that sends it webhooks starts.
func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// startRoomcastOn is startRoomcast serving on ln, logging to log.
func startRoomcastOn(tb testing.TB, ln net.Listener, lk *livekitdev.Server, adjust func(*config.Config), log *slog.Logger) *roomcast {
	tb.Helper()
	cfg := config.Default()
	cfg.LiveKit = config.LiveKit{URL: lk.URL(), APIKey: lk.APIKey(), APISecret: lk.APISecret()}
	if adjust != nil {
		adjust(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	svc, err := service.New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			tb.Errorf("roomcast: %v", err)
		}
	})
	token, err := httpapi.Token(cfg.LiveKit, "", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	return &roomcast{Client: &httpapi.Client{BaseURL: addr, Token: token}, svc: svc, cfg: cfg, addr: addr}
}

// roomcastBinary builds cmd/roomcast once per test binary, for the tests
// that prove the CLI.
func roomcastBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "roomcast-e2e")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "roomcast")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/roomcast").CombinedOutput()
		if err != nil {
			binErr = errors.New("go build ./cmd/roomcast: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
