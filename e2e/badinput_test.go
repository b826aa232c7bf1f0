package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// cli runs the roomcast binary against rc and returns its exit code,
// stdout and stderr.
func cli(t *testing.T, rc *roomcast, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, roomcastBinary(t), args...)
	cmd.Env = append(cmd.Environ(), "ROOMCAST_API="+rc.addr, "ROOMCAST_TOKEN="+rc.Token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("roomcast %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestStartFailsClearly: a broadcast that cannot start says why, in time,
// and the CLI exits non-zero.
func TestStartFailsClearly(t *testing.T) {
	const trackWait = 2 * time.Second
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, func(c *config.Config) { c.Broadcast.TrackWait = trackWait })

	// A room where someone is present but "ghost" never publishes.
	rooms := lksdk.NewRoomServiceClient(lk.HTTPURL(), lk.APIKey(), lk.APISecret())
	if _, err := rooms.CreateRoom(context.Background(), &lkproto.CreateRoomRequest{Name: "quiet", EmptyTimeout: 600}); err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t)
	dest := recv.URL("live", "k")

	for _, tc := range []struct {
		name             string
		args             []string
		want             []string
		minTime, maxTime time.Duration
	}{
		{
			name:    "unknown room",
			args:    []string{"start", "--room", "nosuchroom", "--identity", "alice", "--url", dest},
			want:    []string{"room_not_found", "3002", `"nosuchroom"`},
			maxTime: 5 * time.Second,
		},
		{
			name:    "participant never publishes",
			args:    []string{"start", "--room", "quiet", "--identity", "ghost", "--url", dest},
			want:    []string{"tracks_not_found", "6001", `"ghost"`, `"quiet"`, "within 2s"},
			minTime: trackWait,
			maxTime: trackWait + 5*time.Second,
		},
		{
			name: "missing identity",
			args: []string{"start", "--room", "quiet", "--url", dest},
			want: []string{"invalid_request", `"identity" is required`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			code, _, stderr := cli(t, rc, tc.args...)
			took := time.Since(began)
			if code == 0 {
				t.Fatalf("roomcast start exited 0; stderr: %s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not mention %s", stderr, w)
				}
			}
			if took < tc.minTime || (tc.maxTime > 0 && took > tc.maxTime) {
				t.Errorf("failed after %v, want between %v and %v", took, tc.minTime, tc.maxTime)
			}
		})
	}
	if n := len(recv.Sessions()); n != 0 {
		t.Errorf("the destination saw %d RTMP sessions, want none", n)
	}
}

// TestBadRequestsRejectedBeforeConnecting: bad URLs and bodies are refused
// with a code and a message naming the field; nothing connects anywhere.
func TestBadRequestsRejectedBeforeConnecting(t *testing.T) {
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, nil)
	recv := newReceiver(t)
	host := recv.Addr()

	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   int
		want   []string
	}{
		{"wrong scheme", `{"room":"r","identity":"a","outputs":[{"url":"http://` + host + `/live/secretkey"}]}`,
			400, bridge.CodeInvalidURL, []string{`outputs[0].url`, `scheme "http" is not allowed`}},
		{"no stream key", `{"room":"r","identity":"a","outputs":[{"url":"rtmp://` + host + `/live"}]}`,
			400, bridge.CodeInvalidURL, []string{`outputs[0].url`, "app/stream-key"}},
		{"second output bad", `{"room":"r","identity":"a","outputs":[{"url":"rtmp://` + host + `/live/k"},{"url":"srt://x/live/secretkey"}]}`,
			400, bridge.CodeInvalidURL, []string{`outputs[1].url`}},
		{"no outputs", `{"room":"r","identity":"a","outputs":[]}`,
			400, bridge.CodeInvalidRequest, []string{`"outputs"`}},
		{"malformed JSON", `{"room":`, 400, bridge.CodeInvalidRequest, []string{"not valid JSON"}},
		{"unknown field", `{"room":"r","identity":"a","outputs":[],"colour":"red"}`,
			400, bridge.CodeInvalidRequest, []string{`unknown field "colour"`}},
		{"wrong type", `{"room":5}`, 400, bridge.CodeInvalidRequest, []string{`"room"`, "string"}},
		{"oversize", `{"room":"` + strings.Repeat("x", 70<<10) + `"}`, 413, bridge.CodeMessageTooLarge, []string{"larger than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, rc.addr+"/v1/broadcasts", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+rc.Token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct{ Error *bridge.Error }
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Error == nil {
				t.Fatalf("status %d, body not an error (%v)", res.StatusCode, err)
			}
			if res.StatusCode != tc.status || body.Error.Code != tc.code {
				t.Errorf("got %d %+v, want %d code %d", res.StatusCode, body.Error, tc.status, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body.Error.Message, w) {
					t.Errorf("message %q does not mention %s", body.Error.Message, w)
				}
			}
			if strings.Contains(body.Error.Message, "secretkey") {
				t.Errorf("message leaks the stream key: %q", body.Error.Message)
			}
		})
	}
	if n := len(recv.Sessions()); n != 0 {
		t.Errorf("the destination saw %d RTMP sessions, want none", n)
	}
	if list, err := rc.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("broadcasts after bad requests: %v, %v; want none", list, err)
	}
}

// TestRefusedDestination: an RTMP server that refuses the connection fails
// the broadcast with an error naming the destination, key redacted.
func TestRefusedDestination(t *testing.T) {
	lk := startLiveKit(t)
	publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 320, Height: 240, BitrateKbps: 300})
	rc := startRoomcast(t, lk, nil)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close() // nothing listens there now

	code, _, stderr := cli(t, rc, "start", "--room", "studio", "--identity", "alice", "--url", "rtmp://"+closed+"/live/topsecret")
	if code == 0 {
		t.Fatal("roomcast start exited 0 for a refused destination")
	}
	for _, w := range []string{"destination_failed", "5001", "rtmp://" + closed + "/live/****", "refused"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not mention %s", stderr, w)
		}
	}
	if strings.Contains(stderr, "topsecret") {
		t.Errorf("stderr leaks the stream key: %s", stderr)
	}

	list, err := rc.List(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	b := list[0]
	if b.State != bridge.StateFailed || b.Error == nil || b.Error.Code != bridge.CodeDestinationFailed {
		t.Errorf("broadcast = %+v, want failed with destination_failed", b)
	}
	if len(b.Outputs) != 1 || b.Outputs[0].State != "failed" || strings.Contains(b.Outputs[0].Error+b.Outputs[0].URL, "topsecret") {
		t.Errorf("outputs = %+v", b.Outputs)
	}
}
