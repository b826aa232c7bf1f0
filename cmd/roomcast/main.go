// Command roomcast streams LiveKit room participants to RTMP destinations.
//
//	roomcast serve [--config roomcast.yaml] [flags]   run the bridge and its API
//	roomcast start --room R --identity I --url rtmp://host/app/key [--url ...] [--no-wait]
//	roomcast list
//	roomcast get ID
//	roomcast stop ID
//
// The client verbs call the API at $ROOMCAST_API (default
// http://127.0.0.1:8080), or --api.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/bridge/httpapi"
	"github.com/roomcast/roomcast/bridge/livekit"
	"github.com/roomcast/roomcast/config"
)

const usage = `usage: roomcast <command> [flags]

commands:
  serve    run the bridge and its HTTP API (see --help for flags)
  start    start a broadcast: --room R --identity I --url rtmp://host/app/key
  list     list broadcasts
  get ID   show one broadcast
  stop ID  stop a broadcast and wait until it has ended
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(args)
	case "start", "list", "get", "stop":
		err = client(cmd, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "roomcast: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "roomcast %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := config.Flags()
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, _ := fs.GetString("config")
	cfg, err := config.Load(path, fs)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	m := bridge.NewManager(cfg.Broadcast, livekit.NewClient(cfg.LiveKit, log), log)
	srv := &http.Server{Handler: httpapi.New(m, log), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("roomcast serving", "api", "http://"+ln.Addr().String(), "livekit", cfg.LiveKit.URL)

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	}
	log.Info("shutting down: stopping broadcasts")
	m.Close() // every RTMP session ends cleanly before the process does
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// urls collects repeated --url flags.
type urls []string

func (u *urls) String() string     { return strings.Join(*u, ",") }
func (u *urls) Set(s string) error { *u = append(*u, s); return nil }

func client(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	api := fs.String("api", envOr("ROOMCAST_API", "http://127.0.0.1:8080"), "roomcast API base URL")
	var req bridge.StartRequest
	var outs urls
	noWait := false
	if cmd == "start" {
		fs.StringVar(&req.Room, "room", "", "LiveKit room name")
		fs.StringVar(&req.Identity, "identity", "", "identity of the participant to broadcast")
		fs.Var(&outs, "url", "RTMP destination rtmp[s]://host/app/stream-key (repeatable)")
		fs.BoolVar(&noWait, "no-wait", false, "return at once instead of waiting until live")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &httpapi.Client{BaseURL: *api}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var out any
	var err error
	switch cmd {
	case "start":
		for _, u := range outs {
			req.Outputs = append(req.Outputs, bridge.OutputRequest{URL: u})
		}
		out, err = c.Start(ctx, req, !noWait)
	case "list":
		out, err = c.List(ctx)
	case "get", "stop":
		if fs.NArg() != 1 {
			return errors.New("want exactly one broadcast id")
		}
		if cmd == "get" {
			out, err = c.Get(ctx, fs.Arg(0))
		} else {
			out, err = c.Stop(ctx, fs.Arg(0))
		}
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
