package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// maxSyncOffset is the lip-sync bound: the flash and the beep the
// publisher made on one instant arrive at most 40 ms apart.
const maxSyncOffset = 40 * time.Millisecond

// TestAVSync: the publisher shows a white frame and starts a beep on the
// same instant every 2 s; in the destination's recording they stay within
// 40 ms of each other, passed through (H.264) and transcoded (VP8). The
// long run, over five minutes, is BenchmarkAVSyncLong.
func TestAVSync(t *testing.T) {
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, nil)
	for _, tc := range []struct{ name, codec, identity string }{
		{"passthrough", "h264", "h264-host"},
		{"transcode", "vp8", "vp8-host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			publish(t, lk, "studio", tc.identity, testpattern.SourceOptions{Codec: tc.codec, SyncMarks: true, Width: 320, Height: 240, BitrateKbps: 500})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			in, sess := live(t, ctx, rc, bridge.StartRequest{Room: "studio", Identity: tc.identity,
				Video: &bridge.VideoRequest{Width: 320, Height: 240}})
			if _, err := sess.Wait(ctx, videoFor(9*time.Second)); err != nil {
				t.Fatal(err)
			}
			_, snap := stop(t, ctx, rc, in.ID, sess)
			path := filepath.Join(t.TempDir(), "sync.flv")
			if err := rtmptest.WriteFLV(path, snap); err != nil {
				t.Fatal(err)
			}
			offsets, err := rtmptest.SyncOffsets(ctx, path, testpattern.SyncEvery)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("beep minus flash per mark: %v", offsets)
			if len(offsets) < 3 {
				t.Fatalf("%d marks found in 9 s, want at least 3", len(offsets))
			}
			for i, o := range offsets {
				if o.Abs() > maxSyncOffset {
					t.Errorf("mark %d: beep %v after flash, want within ±%v", i, o, maxSyncOffset)
				}
			}
		})
	}
}
