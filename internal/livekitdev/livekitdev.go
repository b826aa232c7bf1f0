// Package livekitdev runs a real livekit-server on free loopback ports for
// tests, benchmarks and the demo. It writes a loopback-only config (no Redis,
// one API key), starts the binary, waits until the server answers API calls
// and stops it again.
package livekitdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// The development key pair written into every config.
const (
	APIKey    = "devkey"
	APISecret = "secret"
)

const (
	// startTimeout bounds Start when ctx has no deadline; a cold start takes
	// well under a second, but a loaded CI machine is slower.
	startTimeout = 30 * time.Second
	// livekit-server's first SIGTERM drains: it waits, polling every 5 s,
	// until no participant is left. A second signal forces the stop, so
	// Close sends one after forceAfter, and SIGKILL after stopGrace.
	forceAfter = 250 * time.Millisecond
	stopGrace  = 2 * time.Second
	pollEvery  = 50 * time.Millisecond
)

// Options configure Start. The zero value runs the binary found by BinPath
// rules on two free ports in a fresh temporary directory.
type Options struct {
	// BinPath is the livekit-server binary. Default: $ROOMCAST_LIVEKIT_SERVER,
	// else .bin/server under the module root, else livekit-server or server
	// on PATH.
	BinPath string
	// Dir holds the config and the server log. Default: a new temporary
	// directory, removed by Close.
	Dir string
	// Log, if set, receives the server's output as well as the log file.
	Log io.Writer
	// Port is the HTTP/WebSocket port and UDPPort the single RTC UDP port.
	// Zero picks a free one.
	Port    int
	UDPPort int
	// WebhookURLs receive the server's webhooks, signed with the dev keys.
	WebhookURLs []string
}

// Server is a running livekit-server.
type Server struct {
	port     int
	udpPort  int
	webhooks []string
	dir      string
	rmDir    bool
	logPath  string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returns
	logf   *os.File

	closeOnce sync.Once
	closeErr  error
}

// Start launches livekit-server and returns once it serves API requests.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	bin, err := findBinary(opts.BinPath)
	if err != nil {
		return nil, err
	}
	s, err := start(ctx, bin, opts)
	if err != nil && errors.Is(err, errPortInUse) && opts.Port == 0 && opts.UDPPort == 0 {
		// Another process took a port between picking and binding it.
		s, err = start(ctx, bin, opts)
	}
	return s, err
}

var errPortInUse = errors.New("port already in use")

func start(ctx context.Context, bin string, opts Options) (*Server, error) {
	s := &Server{port: opts.Port, udpPort: opts.UDPPort, webhooks: opts.WebhookURLs, dir: opts.Dir}
	var err error
	if s.port == 0 {
		if s.port, err = freeTCPPort(); err != nil {
			return nil, err
		}
	}
	if s.udpPort == 0 {
		if s.udpPort, err = freeUDPPort(); err != nil {
			return nil, err
		}
	}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "livekitdev-"); err != nil {
			return nil, fmt.Errorf("livekitdev: create dir: %w", err)
		}
		s.rmDir = true
	}
	if err := s.launch(bin, opts.Log); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) launch(bin string, extraLog io.Writer) error {
	// Named by port so that servers may share a Dir.
	base := filepath.Join(s.dir, "livekit-"+strconv.Itoa(s.port))
	confPath := base + ".yaml"
	if err := os.WriteFile(confPath, []byte(s.config()), 0o600); err != nil {
		return fmt.Errorf("livekitdev: write config: %w", err)
	}
	s.logPath = base + ".log"
	f, err := os.Create(s.logPath)
	if err != nil {
		return fmt.Errorf("livekitdev: create log: %w", err)
	}
	s.logf = f
	var out io.Writer = f
	if extraLog != nil {
		out = io.MultiWriter(f, extraLog)
	}
	s.cmd = exec.Command(bin, "--config", confPath)
	s.cmd.Stdout = out
	s.cmd.Stderr = out
	// Its own process group: a terminal's Ctrl-C reaches only our process,
	// which stops the server last, after the participants have left.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("livekitdev: start %s: %w", bin, err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	return nil
}

// config is loopback only: bind_addresses alone still lets the RTC side
// gather candidates on every interface, hence node_ip and interfaces.
func (s *Server) config() string {
	webhook := ""
	if len(s.webhooks) > 0 {
		webhook = fmt.Sprintf("webhook:\n  api_key: %s\n  urls: [%s]\n", APIKey, strings.Join(s.webhooks, ", "))
	}
	return webhook + fmt.Sprintf(`port: %d
bind_addresses: [127.0.0.1]
rtc:
  udp_port: %d
  tcp_port: 0
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces:
    includes: [lo]
keys:
  %s: %s
logging:
  level: info
`, s.port, s.udpPort, APIKey, APISecret)
}

// waitReady polls until the HTTP port answers and a RoomService call
// succeeds. v1.13.5 may ignore a SIGTERM that arrives within ~100 ms of its
// HTTP port first answering, so callers must not get the server earlier.
func (s *Server) waitReady(ctx context.Context) error {
	client := lksdk.NewRoomServiceClient(s.HTTPURL(), APIKey, APISecret)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	// A request to a port some other process holds may hang; give up on it
	// as soon as the server has exited.
	liveCtx, cancelLive := context.WithCancel(ctx)
	defer cancelLive()
	go func() {
		select {
		case <-s.exited:
			cancelLive()
		case <-liveCtx.Done():
		}
	}()
	for {
		reqCtx, cancel := context.WithTimeout(liveCtx, time.Second)
		_, err := client.ListRooms(reqCtx, &livekit.ListRoomsRequest{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			if bytes.Contains(s.readLog(), []byte("address already in use")) {
				return fmt.Errorf("livekitdev: server on port %d/udp %d: %w (log %s)", s.port, s.udpPort, errPortInUse, s.logPath)
			}
			return fmt.Errorf("livekitdev: server exited during start (%v); log %s:\n%s", s.cmd.ProcessState, s.logPath, tail(s.readLog(), 2000))
		case <-ctx.Done():
			return fmt.Errorf("livekitdev: server on port %d not ready: %w (last error: %v); log %s:\n%s", s.port, ctx.Err(), err, s.logPath, tail(s.readLog(), 2000))
		case <-tick.C:
		}
	}
}

// Close stops the server: SIGTERM, a second (forcing) SIGTERM if it is
// still draining, then SIGKILL after a grace period. It waits for the
// process to exit and is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.exited != nil {
			s.stop()
		}
		s.cleanup()
	})
	return s.closeErr
}

func (s *Server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	force := time.NewTimer(forceAfter)
	defer force.Stop()
	kill := time.NewTimer(stopGrace)
	defer kill.Stop()
	for {
		select {
		case <-s.exited:
			return
		case <-force.C:
			s.cmd.Process.Signal(syscall.SIGTERM)
		case <-kill.C:
			s.cmd.Process.Kill()
			<-s.exited
			return
		}
	}
}

func (s *Server) cleanup() {
	if s.logf != nil {
		if err := s.logf.Close(); err != nil {
			s.closeErr = fmt.Errorf("livekitdev: close log: %w", err)
		}
	}
	if s.rmDir {
		os.RemoveAll(s.dir)
	}
}

// URL is the WebSocket URL participants connect to.
func (s *Server) URL() string { return "ws://127.0.0.1:" + strconv.Itoa(s.port) }

// HTTPURL is the base URL of the server API.
func (s *Server) HTTPURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the HTTP/WebSocket port.
func (s *Server) Port() int { return s.port }

// UDPPort is the single UDP port that carries all RTC media.
func (s *Server) UDPPort() int { return s.udpPort }

// APIKey is the server's API key.
func (s *Server) APIKey() string { return APIKey }

// APISecret is the secret for APIKey.
func (s *Server) APISecret() string { return APISecret }

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Exited is closed once the server process has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// LogPath is the file that holds the server's output (removed by Close when
// Options.Dir was empty).
func (s *Server) LogPath() string { return s.logPath }

func (s *Server) readLog() []byte {
	b, _ := os.ReadFile(s.logPath)
	return b
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
