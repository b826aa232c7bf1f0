package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// mediaBenchSteps are the concurrent broadcast counts tried for each mode,
// until frames drop. Transcodes cost tens of percent of a core each, so
// their steps are small.
var mediaBenchSteps = map[string][]int{
	"passthrough":     {1, 2, 4, 8, 16},
	"transcode":       {1, 2, 4, 6, 8, 10},
	"transcode-noise": {1, 2, 3, 4},
}

// BenchmarkMediaModes measures what one broadcast costs roomcast (its own
// process) in CPU and memory, for H.264 720p30 passthrough and for VP8
// 720p30 → H.264 720p30 3 Mb/s transcode (x264 veryfast), and how many
// of each this machine sustains without dropping frames: every
// destination must receive 98 % of 30 fps over the window. One publisher
// encoder feeds every room, so its cost does not grow with N. The moving
// ball is easy to encode; "transcode-noise" sends videotestsrc's snow, the
// encoder's worst case, so real cameras fall between the two.
func BenchmarkMediaModes(b *testing.B) {
	for _, mode := range []string{"passthrough", "transcode", "transcode-noise"} {
		b.Run(mode, func(b *testing.B) {
			codec, pattern, videoMode := "vp8", "ball", "transcode"
			switch mode {
			case "passthrough":
				codec, videoMode = "h264", "passthrough"
			case "transcode-noise":
				pattern = "snow"
			}
			lk := startLiveKit(b)
			src := startSource(b, testpattern.SourceOptions{Codec: codec, Pattern: pattern, Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2500, Logger: testLog()})
			recv := newReceiver(b)
			rc := startRoomcastProcess(b, lk)
			idleRSS, err := rssBytes(rc.pid)
			if err != nil {
				b.Fatal(err)
			}

			var rows []modeRow
			var sessions []*rtmptest.Session
			var ids []string
			for _, n := range mediaBenchSteps[mode] {
				for i := len(sessions); i < n; i++ {
					room := fmt.Sprintf("%s-%d", mode, i+1)
					join(b, lk, src, room, "host")
					in, err := rc.Start(context.Background(), bridge.StartRequest{
						Room: room, Identity: "host",
						Outputs: []bridge.OutputRequest{{URL: recv.URL("live", room)}},
						Video:   &bridge.VideoRequest{Mode: videoMode},
					}, false)
					if err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					sess, err := recv.WaitSession(ctx)
					if err == nil {
						_, err = sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return firstKeyframe(s) != nil })
					}
					cancel()
					if err != nil {
						b.Fatalf("broadcast %d: %v", i+1, err)
					}
					sessions, ids = append(sessions, sess), append(ids, in.ID)
				}
				meter, err := startCPU(rc.pid)
				if err != nil {
					b.Fatal(err)
				}
				from := time.Now()
				timer := time.NewTimer(benchWindow)
				<-timer.C // the measurement window itself: steady state, nothing to wait for
				to := time.Now()
				row := modeRow{n: n}
				row.cpu, _ = meter.percent()
				rss, _ := rssBytes(rc.pid)
				row.rss = rss - idleRSS
				row.minFPS = 1e9
				for _, s := range sessions {
					frames := 0
					for _, m := range s.Snapshot().Video() {
						if isAVCFrame(m.Payload) && !m.Time.Before(from) && !m.Time.After(to) {
							frames++
						}
					}
					row.minFPS = min(row.minFPS, float64(frames)/to.Sub(from).Seconds())
				}
				for _, id := range ids {
					if in, err := rc.Get(context.Background(), id); err == nil && in.Stats != nil {
						row.dropped += in.Stats.DroppedFrames
					}
				}
				rows = append(rows, row)
				if row.minFPS < 30*0.98 {
					break
				}
			}
			printModeTable(mode, rows)
			b.ReportMetric(rows[0].cpu, "cpu%/broadcast")
			b.ReportMetric(float64(rows[0].rss)/(1<<20), "MB-rss/broadcast")
			sustained := 0
			for _, r := range rows {
				if r.minFPS >= 30*0.98 {
					sustained = r.n
				}
			}
			b.ReportMetric(float64(sustained), "broadcasts-sustained")
		})
	}
}

type modeRow struct {
	n       int
	cpu     float64 // roomcast, percent of one core
	rss     int64   // roomcast RSS above idle
	minFPS  float64 // the slowest destination's received frame rate
	dropped uint64  // frames the transcoders dropped, from status
}

func printModeTable(mode string, rows []modeRow) {
	fmt.Printf("\nroomcast %s, 720p30 in, %v windows, %d cores\n", mode, benchWindow, runtimeCores())
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "N\troomcast CPU (% core)\tper broadcast\tRSS MB (over idle)\tper broadcast\tslowest dest fps\tdroppedFrames\t\n")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t\n", r.n, r.cpu, r.cpu/float64(r.n),
			float64(r.rss)/(1<<20), float64(r.rss)/(1<<20)/float64(r.n), r.minFPS, r.dropped)
	}
	w.Flush()
	fmt.Println("targets: transcode ≤ 40 % of a core per 720p30 stream, passthrough ≤ 5 %; sustained = every destination ≥ 98 % of 30 fps")
}

// BenchmarkAVSyncLong is TestAVSync over five minutes, passthrough and
// transcode at once: the flash and the beep stay within 40 ms at the start
// and at the end, and the offset does not drift.
func BenchmarkAVSyncLong(b *testing.B) {
	const length = 5 * time.Minute
	lk := startLiveKit(b)
	rc := startRoomcast(b, lk, nil)
	type run struct {
		name string
		id   string
		sess *rtmptest.Session
	}
	var runs []run
	for _, c := range []struct{ name, codec string }{{"passthrough", "h264"}, {"transcode", "vp8"}} {
		// One room each: two broadcasts in one room would both join as
		// the identity "roomcast", and the second would push the first out.
		publish(b, lk, c.name, "host", testpattern.SourceOptions{Codec: c.codec, SyncMarks: true, Width: 320, Height: 240, BitrateKbps: 500})
		recv := newReceiver(b)
		in, err := rc.Start(context.Background(), bridge.StartRequest{Room: c.name, Identity: "host",
			Outputs: []bridge.OutputRequest{{URL: recv.URL("live", "k")}},
			Video:   &bridge.VideoRequest{Width: 320, Height: 240}}, false)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sess, err := recv.WaitSession(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		runs = append(runs, run{c.name, in.ID, sess})
	}
	ctx, cancel := context.WithTimeout(context.Background(), length+2*time.Minute)
	defer cancel()
	for _, r := range runs {
		if _, err := r.sess.Wait(ctx, videoFor(length)); err != nil {
			b.Fatal(err)
		}
	}
	// Decoding five minutes twice takes a while on a loaded machine: the
	// analysis has its own time.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, r := range runs {
		if _, err := rc.Stop(ctx, r.id); err != nil {
			b.Fatal(err)
		}
		snap, err := r.sess.WaitEnd(ctx)
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(b.TempDir(), r.name+".flv")
		if err := rtmptest.WriteFLV(path, snap); err != nil {
			b.Fatal(err)
		}
		offsets, err := rtmptest.SyncOffsets(ctx, path, testpattern.SyncEvery)
		if err != nil {
			b.Fatal(err)
		}
		if want := int(length/testpattern.SyncEvery) - 10; len(offsets) < want {
			b.Fatalf("%s: %d marks in %v, want ≥ %d", r.name, len(offsets), length, want)
		}
		first, last := offsets[:5], offsets[len(offsets)-5:]
		worst, outside := time.Duration(0), 0
		for _, o := range offsets {
			worst = max(worst, o.Abs())
			if o.Abs() > maxSyncOffset {
				outside++
			}
		}
		fmt.Printf("\nA/V sync %s over %v: %d marks, %d past ±%v; first %v; last %v; worst |offset| %v\n",
			r.name, length, len(offsets), outside, maxSyncOffset, first, last, worst)
		for _, o := range append(first, last...) {
			if o.Abs() > maxSyncOffset {
				b.Errorf("%s: offset %v past ±%v (first %v, last %v)", r.name, o, maxSyncOffset, first, last)
			}
		}
		b.ReportMetric(float64(mean(first).Milliseconds()), "ms-offset-start-"+r.name)
		b.ReportMetric(float64(mean(last).Milliseconds()), "ms-offset-end-"+r.name)
		b.ReportMetric(float64(worst.Milliseconds()), "ms-offset-worst-"+r.name)
	}
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
