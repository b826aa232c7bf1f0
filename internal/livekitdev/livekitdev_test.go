package livekitdev

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

func TestTwoServersInParallel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	servers := make([]*Server, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = Start(ctx, Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start server %d: %v", i, err)
		}
		t.Cleanup(func() { servers[i].Close() })
	}
	if servers[0].Port() == servers[1].Port() || servers[0].UDPPort() == servers[1].UDPPort() {
		t.Fatalf("servers share ports: %d/%d and %d/%d",
			servers[0].Port(), servers[0].UDPPort(), servers[1].Port(), servers[1].UDPPort())
	}

	for i, s := range servers {
		tok, err := s.Token("room", "alice-"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		room, err := lksdk.ConnectToRoomWithToken(s.URL(), tok, lksdk.NewRoomCallback(),
			lksdk.WithAutoSubscribe(false), lksdk.WithLogger(logger.GetDiscardLogger()))
		if err != nil {
			t.Fatalf("join server %d at %s: %v", i, s.URL(), err)
		}
		if got := room.LocalParticipant.Identity(); got != "alice-"+strconv.Itoa(i) {
			t.Errorf("server %d: identity %q", i, got)
		}
		room.Disconnect()
	}

	for i, s := range servers {
		pid := s.PID()
		start := time.Now()
		if err := s.Close(); err != nil {
			t.Errorf("close server %d: %v", i, err)
		}
		t.Logf("server %d stopped in %v", i, time.Since(start).Round(time.Millisecond))
		if err := s.Close(); err != nil {
			t.Errorf("second close of server %d: %v", i, err)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("server %d (pid %d) still exists after Close: kill 0 = %v", i, pid, err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(s.Port()))
		if err != nil {
			t.Errorf("server %d port %d still bound after Close: %v", i, s.Port(), err)
		} else {
			l.Close()
		}
	}
}

func TestStartMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{BinPath: "/nonexistent/livekit-server"})
	if err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
}

func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{Port: l.Addr().(*net.TCPAddr).Port})
	if err == nil {
		s.Close()
		t.Fatal("Start on a port in use succeeded")
	}
	if !errors.Is(err, errPortInUse) {
		t.Errorf("Start on a port in use: %v, want errPortInUse", err)
	}
}
