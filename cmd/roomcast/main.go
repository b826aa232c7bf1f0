// Command roomcast streams LiveKit room participants to RTMP destinations.
// `roomcast serve` runs the bridge; every other verb calls its HTTP API
// (see usage below), one verb per endpoint.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/bridge/httpapi"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/service"
)

const usage = `usage: roomcast <command> [flags]

commands:
  serve                       run the bridge and its HTTP API (serve --help for flags)
  start                       start a broadcast: --room R --identity I
                              --url rtmp://host/app/key | --destination NAME (repeatable)
                              [--source screen] [--video-mode transcode --video-width 1280 ...]
                              [--metadata JSON] [--connect-info JSON]
  list                        list broadcasts
  get ID                      show one broadcast
  stop ID                     stop a broadcast and wait until it has ended
  metadata ID HANDLER JSON    send onMetaData, onCuePoint or onTextData, e.g.
                              metadata bc_1 onCuePoint '{"name":"ad","type":"event"}'
  add-output ID               add --url U or --destination NAME to a broadcast
  remove-output ID OUTPUT_ID  end one destination of a broadcast
  server                      show load, capacity and version
  health                      show liveness and readiness
  token                       print an API token (--room R scopes it)

Client verbs call the API at --api or $ROOMCAST_API (default
http://127.0.0.1:8080) with --token or $ROOMCAST_TOKEN, or else a token
they sign with --api-key/--api-secret ($ROOMCAST_LIVEKIT_API_KEY and
$ROOMCAST_LIVEKIT_API_SECRET, default devkey/secret as in dev mode).
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
	case "start", "list", "get", "stop", "metadata", "add-output", "remove-output", "server", "health", "token":
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

	svc, err := service.New(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("roomcast serving", "api", "http://"+ln.Addr().String(), "livekit", cfg.LiveKit.URL, "auth", cfg.HTTP.Auth)
	return svc.Serve(ctx, ln)
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

// args says how many positional arguments each verb takes.
var nargs = map[string]int{"get": 1, "stop": 1, "metadata": 3, "add-output": 1, "remove-output": 2}

func client(cmd string, args []string) error {
	// pflag, unlike flag, takes flags after the positional arguments:
	// roomcast add-output ID --url ...
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	api := fs.String("api", envOr("ROOMCAST_API", "http://127.0.0.1:8080"), "roomcast API base URL")
	token := fs.String("token", os.Getenv("ROOMCAST_TOKEN"), "API token (LiveKit access token with roomRecord)")
	key := fs.String("api-key", envOr("ROOMCAST_LIVEKIT_API_KEY", "devkey"), "LiveKit API key to sign a token with")
	secret := fs.String("api-secret", envOr("ROOMCAST_LIVEKIT_API_SECRET", "secret"), "LiveKit API secret to sign a token with")
	tokenRoom := fs.String("token-room", "", "scope the signed token to this room")
	var req bridge.StartRequest
	var video bridge.VideoRequest
	var urls, dests []string
	var metadata, connectInfo string
	noWait := false
	switch cmd {
	case "start":
		fs.StringVar(&req.Room, "room", "", "LiveKit room name")
		fs.StringVar(&req.Identity, "identity", "", "identity of the participant to broadcast")
		fs.BoolVar(&noWait, "no-wait", false, "return at once instead of waiting until live")
		fs.StringVar(&req.Source, "source", "", "camera (default) or screen")
		fs.StringVar(&video.Mode, "video-mode", "", "auto (default), passthrough or transcode")
		fs.IntVar(&video.Width, "video-width", 0, "transcoded width; also picks the simulcast layer")
		fs.IntVar(&video.Height, "video-height", 0, "transcoded height")
		fs.IntVar(&video.Bitrate, "video-bitrate", 0, "transcoded bits per second")
		fs.IntVar(&video.Framerate, "video-framerate", 0, "transcoded frames per second")
		fs.StringVar(&metadata, "metadata", "", `custom onMetaData keys as a JSON object, e.g. '{"title":"Show"}'`)
		fallthrough
	case "add-output":
		fs.StringArrayVar(&urls, "url", nil, "RTMP destination rtmp[s]://host/app/stream-key (repeatable)")
		fs.StringArrayVar(&dests, "destination", nil, "name of a configured destination (repeatable)")
		fs.StringVar(&connectInfo, "connect-info", "", `extra RTMP connect fields for these outputs as a flat JSON object`)
	case "token":
		fs.StringVar(tokenRoom, "room", "", "scope the token to this room (default: every room)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if n := nargs[cmd]; fs.NArg() != n {
		return fmt.Errorf("want %d argument(s) after %s, got %d (see roomcast help)", n, cmd, fs.NArg())
	}
	lk := config.LiveKit{APIKey: *key, APISecret: *secret}
	if cmd == "token" {
		t, err := httpapi.Token(lk, *tokenRoom, 6*time.Hour)
		if err == nil {
			fmt.Println(t)
		}
		return err
	}
	if *token == "" {
		t, err := httpapi.Token(lk, *tokenRoom, 10*time.Minute)
		if err != nil {
			return fmt.Errorf("sign a token: %w", err)
		}
		*token = t
	}
	c := &httpapi.Client{BaseURL: *api, Token: *token}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var info map[string]any
	if err := unmarshalFlag("connect-info", connectInfo, &info); err != nil {
		return err
	}
	var outputs []bridge.OutputRequest
	for _, u := range urls {
		outputs = append(outputs, bridge.OutputRequest{URL: u, ConnectInfo: info})
	}
	for _, d := range dests {
		outputs = append(outputs, bridge.OutputRequest{Destination: d, ConnectInfo: info})
	}
	var out any
	var err error
	switch a := fs.Args(); cmd {
	case "start":
		req.Outputs = outputs
		if video != (bridge.VideoRequest{}) {
			req.Video = &video
		}
		if err := unmarshalFlag("metadata", metadata, &req.Metadata); err != nil {
			return err
		}
		out, err = c.Start(ctx, req, !noWait)
	case "list":
		out, err = c.List(ctx)
	case "get":
		out, err = c.Get(ctx, a[0])
	case "stop":
		out, err = c.Stop(ctx, a[0])
	case "metadata":
		mr := httpapi.MetadataRequest{Handler: a[1]}
		if err := json.Unmarshal([]byte(a[2]), &mr.Data); err != nil {
			return fmt.Errorf("metadata JSON: %w", err)
		}
		out, err = c.Metadata(ctx, a[0], mr)
	case "add-output":
		if len(outputs) != 1 {
			return errors.New("add-output takes exactly one --url or --destination")
		}
		out, err = c.AddOutput(ctx, a[0], outputs[0])
	case "remove-output":
		out, err = c.RemoveOutput(ctx, a[0], a[1])
	case "server":
		out, err = c.Server(ctx)
	case "health":
		out, err = c.Health(ctx)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// unmarshalFlag decodes a JSON flag value; an empty one leaves v alone.
func unmarshalFlag(name, value string, v any) error {
	if value == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(value), v); err != nil {
		return fmt.Errorf("--%s is not a JSON object: %w", name, err)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
