// Command roomcast-demo is `make run`: a whole broadcast on this machine.
// It starts a livekit-server in dev mode, an nginx-rtmp server, a
// participant publishing a moving test pattern and a tone, and `roomcast
// serve`; then it asks roomcast to broadcast the participant to nginx and
// prints where to watch. Ctrl-C stops everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/bridge/httpapi"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/nginxrtmp"
	"github.com/roomcast/roomcast/internal/testpattern"
)

func main() {
	roomcastBin := flag.String("roomcast", "roomcast", "path to the roomcast binary")
	room := flag.String("room", "demo", "room name")
	identity := flag.String("identity", "presenter", "identity of the test-pattern participant")
	flag.Parse()

	// The publisher is scenery here: only its errors are worth a line.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *roomcastBin, *room, *identity, log); err != nil {
		fmt.Fprintln(os.Stderr, "roomcast-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, roomcastBin, room, identity string, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "roomcast-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step("starting livekit-server (dev keys devkey/secret)")
	lk, err := livekitdev.Start(ctx, livekitdev.Options{Dir: dir, Port: preferPort(7880), UDPPort: 0})
	if err != nil {
		return err
	}
	defer lk.Close()

	step("starting nginx-rtmp, the local destination")
	nginx, err := nginxrtmp.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer nginx.Close()

	step(fmt.Sprintf("publishing a test pattern and a tone as %q in room %q", identity, room))
	src, err := testpattern.NewSource(testpattern.SourceOptions{Logger: log})
	if err != nil {
		return err
	}
	if err := src.Start(ctx); err != nil {
		return err
	}
	defer src.Close()
	token, err := lk.Token(room, identity)
	if err != nil {
		return err
	}
	pub, err := testpattern.Publish(ctx, src, lk.URL(), token)
	if err != nil {
		return err
	}
	defer pub.Close()

	api := "127.0.0.1:" + strconv.Itoa(preferPort(8080))
	step("starting roomcast serve on " + api)
	serve := exec.Command(roomcastBin, "serve", "--http-listen", api, "--livekit-url", lk.URL(),
		"--livekit-api-key", lk.APIKey(), "--livekit-api-secret", lk.APISecret())
	serve.Stdout, serve.Stderr = os.Stdout, os.Stderr
	// Its own process group: a terminal's Ctrl-C reaches only the demo,
	// which then stops the broadcast before roomcast.
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := serve.Start(); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM) // roomcast ends its RTMP sessions cleanly
		<-served
	}()
	// The API takes LiveKit access tokens; the dev keys sign one here.
	token, err = httpapi.Token(config.LiveKit{APIKey: lk.APIKey(), APISecret: lk.APISecret()}, "", 24*time.Hour)
	if err != nil {
		return err
	}
	client := &httpapi.Client{BaseURL: "http://" + api, Token: token}
	if err := waitHealthy(ctx, client.BaseURL, served); err != nil {
		return err
	}

	key := "demo"
	step("starting the broadcast")
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	in, err := client.Start(startCtx, bridge.StartRequest{
		Room: room, Identity: identity,
		Outputs: []bridge.OutputRequest{{URL: nginx.URL("live", key)}},
	}, true)
	if err != nil {
		return fmt.Errorf("start broadcast: %w", err)
	}

	fmt.Printf(`
roomcast is broadcasting %q from room %q (broadcast %s, state %s).

  Watch it:   ffplay %s     (or open that URL in VLC)
  Inspect:    ROOMCAST_API=%s .bin/roomcast list
              curl -H "Authorization: Bearer $(.bin/roomcast token)" %s/v1/broadcasts
  Stop it:    Ctrl-C stops the broadcast, roomcast, the publisher, nginx and livekit-server.

`, identity, room, in.ID, in.State, nginx.URL("live", key), client.BaseURL, client.BaseURL)

	select {
	case <-ctx.Done():
		step("stopping")
		stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := client.Stop(stopCtx, in.ID); err != nil {
			return fmt.Errorf("stop broadcast: %w", err)
		}
		return nil
	case err := <-served:
		served <- err // for the deferred wait
		return fmt.Errorf("roomcast serve exited: %v", err)
	}
}

// waitHealthy polls /healthz until roomcast answers: the process has no
// other way to say it is listening.
func waitHealthy(ctx context.Context, base string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("roomcast serve exited: %v", err)
		case <-ctx.Done():
			return errors.New("roomcast serve did not answer on " + base)
		case <-tick.C:
		}
	}
}

// preferPort returns p if it is free on loopback, else another free port:
// the well-known ports make the printed commands familiar, but a busy one
// must not stop the demo.
func preferPort(p int) int {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return 0
		}
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func step(s string) { fmt.Println("==> " + s) }
