// Package nginxrtmp runs a real nginx-rtmp server on a free loopback port for
// tests and demos. It records every published stream to an FLV file that
// ffprobe can read back, and lets ffplay watch it live. It is not a metadata
// oracle: nginx-rtmp rebuilds onMetaData and drops other data messages (use
// rtmptest.Receiver for that).
package nginxrtmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ModulePath is the rtmp module of Debian's libnginx-mod-rtmp.
var ModulePath = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// Time allowed for nginx to stop after SIGTERM before it is killed. It
// finishes the recordings on SIGTERM, which takes milliseconds.
const stopTimeout = 5 * time.Second

// How often Start tries the port while nginx comes up.
const pollInterval = 20 * time.Millisecond

// Port races (another process taking the port between our probe and nginx's
// bind) are retried this many times.
const startAttempts = 3

// Server is a running nginx with an rtmp application "live".
type Server struct {
	dir    string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returns
	err    error         // cmd.Wait's result, readable after exited
}

// Start writes an nginx.conf into dir and runs nginx in the foreground as a
// child process, returning once its RTMP port accepts connections. ctx bounds
// the start only; the server runs until Close. Everything nginx writes (pid,
// logs, recordings under dir/rec) stays inside dir.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := nginxPath()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(ModulePath); err != nil {
		return nil, fmt.Errorf("nginxrtmp: rtmp module (libnginx-mod-rtmp): %w", err)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("nginxrtmp: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "rec"), 0o755); err != nil {
		return nil, fmt.Errorf("nginxrtmp: %w", err)
	}
	for attempt := 1; ; attempt++ {
		s, err := start(ctx, bin, dir)
		if err == nil || attempt == startAttempts || ctx.Err() != nil ||
			!strings.Contains(err.Error(), "Address already in use") {
			return s, err
		}
	}
}

func nginxPath() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	// /usr/sbin is not on a non-root PATH on Debian.
	const sbin = "/usr/sbin/nginx"
	if _, err := os.Stat(sbin); err != nil {
		return "", fmt.Errorf("nginxrtmp: nginx not on PATH nor at %s: %w", sbin, err)
	}
	return sbin, nil
}

func start(ctx context.Context, bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		dir:    dir,
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		exited: make(chan struct{}),
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(s.config()), 0o644); err != nil {
		return nil, fmt.Errorf("nginxrtmp: write config: %w", err)
	}
	// -e sends startup errors to our log before the config is read;
	// otherwise nginx opens the compiled-in log path first.
	s.cmd = exec.Command(bin, "-p", dir, "-c", conf, "-e", s.ErrorLogPath())
	// Keep a terminal's Ctrl-C away from it; Close owns its end.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nginxrtmp: start %s: %w", bin, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("nginxrtmp: %w; error log: %s", err, s.errorLogTail())
	}
	return s, nil
}

// freePort asks the kernel for a free loopback port. nginx binds it a moment
// later; Start retries if something else took it in between.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("nginxrtmp: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// config returns nginx.conf. master_process off keeps nginx a single
// process that is our child, so Close reaps everything; running as root it
// then never switches user, so the recordings are written as the caller.
func (s *Server) config() string {
	return fmt.Sprintf(`load_module %s;
daemon off;
master_process off;
pid %s;
error_log %s info;

events {
	worker_connections 256;
}

rtmp {
	server {
		listen %s;
		chunk_size 4096;

		application live {
			live on;
			record all;
			record_path %s;
			record_unique off;
			allow play all;
		}
	}
}
`, ModulePath, filepath.Join(s.dir, "nginx.pid"), s.ErrorLogPath(), s.addr, filepath.Join(s.dir, "rec"))
}

func (s *Server) waitReady(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		conn, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("nginx exited before listening on %s: %v", s.addr, s.err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for nginx on %s: %w", s.addr, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Addr returns the RTMP address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// URL returns rtmp://127.0.0.1:PORT/app/key. The configured application is
// "live".
func (s *Server) URL(app, key string) string {
	return fmt.Sprintf("rtmp://%s/%s/%s", s.addr, app, key)
}

// RecordingPath returns where nginx writes the recording of stream key. The
// file grows while the stream is published and is complete once the
// publisher has disconnected or the server has closed.
func (s *Server) RecordingPath(key string) string {
	return filepath.Join(s.dir, "rec", key+".flv")
}

// ErrorLogPath returns nginx's error log, useful in test failure messages.
func (s *Server) ErrorLogPath() string { return filepath.Join(s.dir, "error.log") }

func (s *Server) errorLogTail() string {
	b, err := os.ReadFile(s.ErrorLogPath())
	if err != nil {
		return err.Error()
	}
	const tail = 2000
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	return strings.TrimSpace(string(b))
}

// Close stops nginx with SIGTERM, which closes the recordings, and kills it
// if it has not exited within a few seconds. It waits for the process.
func (s *Server) Close() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("nginxrtmp: stop nginx: %w", err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("nginxrtmp: kill nginx: %w", err)
	}
	<-s.exited
	return fmt.Errorf("nginxrtmp: nginx ignored SIGTERM for %v and was killed", stopTimeout)
}
