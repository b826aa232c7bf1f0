package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// TestCLI drives a `roomcast serve` process with the CLI verbs an operator
// types: start waits until live, list and get show it, stop ends it.
func TestCLI(t *testing.T) {
	lk := startLiveKit(t)
	publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 320, Height: 240, BitrateKbps: 300})
	proc := startRoomcastProcess(t, lk)
	rc := &roomcast{Client: proc.Client, addr: proc.BaseURL}
	recv := newReceiver(t)

	code, out, stderr := cli(t, rc, "start", "--room", "studio", "--identity", "alice", "--url", recv.URL("live", "clikey"), "--metadata", `{"title":"CLI show"}`, "--connect-info", `{"via":"cli"}`)
	if code != 0 {
		t.Fatalf("start exited %d: %s", code, stderr)
	}
	var started bridge.Info
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatalf("start printed %q: %v", out, err)
	}
	if started.State != bridge.StateBroadcasting || started.ID == "" {
		t.Fatalf("start printed %+v, want a broadcasting broadcast", started)
	}
	if strings.Contains(out, "clikey") {
		t.Errorf("start output shows the stream key: %s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return len(s.DataNamed("onMetaData")) > 0 })
	if err != nil || snap.Connect["via"] != "cli" || metaFields(snap.DataNamed("onMetaData")[0])["title"] != "CLI show" {
		t.Errorf("--connect-info and --metadata did not reach the destination: connect %v (%v)", snap.Connect, err)
	}

	code, out, stderr = cli(t, rc, "list")
	var list []bridge.Info
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID != started.ID {
		t.Errorf("list exited %d with %q (%s)", code, out, stderr)
	}
	code, out, stderr = cli(t, rc, "get", started.ID)
	var got bridge.Info
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Stats == nil || !got.Stats.Passthrough {
		t.Errorf("get exited %d with %q (%s)", code, out, stderr)
	}

	// The verbs for the other endpoints, each printing its JSON answer.
	recv2 := newReceiver(t)
	for _, step := range []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"metadata", started.ID, "onCuePoint", `{"name":"chapter-2","type":"navigation"}`}, `"timestamp"`},
		{[]string{"add-output", started.ID, "--url", recv2.URL("live", "second-cli-key")}, `"id": "out_2"`},
		{[]string{"remove-output", started.ID, "out_2"}, `"state": "broadcasting"`},
		{[]string{"server"}, `"activeBroadcasts": 1`},
		{[]string{"health"}, `"ready"`},
	} {
		code, out, stderr := cli(t, rc, step.args...)
		if code != 0 || !strings.Contains(out, step.want) || strings.Contains(out, "second-cli-key") {
			t.Errorf("roomcast %v exited %d with %q (%s), want %s", step.args, code, out, stderr, step.want)
		}
	}
	if code, _, stderr := cli(t, rc, "metadata", started.ID, "onCuePoint", `{"name":`); code == 0 || !strings.Contains(stderr, "metadata JSON") {
		t.Errorf("metadata with broken JSON exited %d: %s", code, stderr)
	}

	code, out, stderr = cli(t, rc, "stop", started.ID)
	var stopped bridge.Info
	if code != 0 || json.Unmarshal([]byte(out), &stopped) != nil || stopped.State != bridge.StateStopped {
		t.Fatalf("stop exited %d with %q (%s)", code, out, stderr)
	}
	if snap, err := sess.WaitEnd(ctx); err != nil || snap.End != rtmptest.Clean {
		t.Errorf("RTMP session ended %v (%v), want clean", snap.End, err)
	}

	if code, _, stderr = cli(t, rc, "get", "bc_nosuch"); code == 0 || !strings.Contains(stderr, "broadcast_not_found") {
		t.Errorf("get of an unknown id exited %d: %s", code, stderr)
	}
}
