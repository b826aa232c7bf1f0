package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/bridge/httpapi"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/avc"
	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// benchWindow is how long each step measures steady state.
const benchWindow = 10 * time.Second

// benchSteps are the concurrent broadcast counts tried, in order, until
// the machine saturates.
var benchSteps = []int{1, 2, 4, 8, 16, 24, 32, 40, 48, 64}

// BenchmarkPassthrough measures roomcast's cost and latency for 720p30
// H.264 passthrough + Opus→AAC broadcasts, raising the number of
// concurrent broadcasts until frames drop, and prints a table. roomcast
// runs as its own process so its CPU and memory are its own; one encoder
// feeds every room, so publisher cost does not grow with N.
func BenchmarkPassthrough(b *testing.B) {
	lk := startLiveKit(b)
	src := startSource(b, testpattern.SourceOptions{Width: 1280, Height: 720, FPS: 30, BitrateKbps: 2500, Logger: testLog()})
	recv := newReceiver(b)
	rc := startRoomcastProcess(b, lk)
	idleRSS, err := rssBytes(rc.pid)
	if err != nil {
		b.Fatal(err)
	}

	var rows []benchRow
	var sessions []*rtmptest.Session
	for _, n := range benchSteps {
		row := benchRow{n: n}
		// Add broadcasts up to n, timing each from request to the first
		// keyframe at the destination.
		for i := len(sessions); i < n; i++ {
			room := fmt.Sprintf("bench-%d", i+1)
			join(b, lk, src, room, "host")
			requested := time.Now()
			if _, err := rc.Start(context.Background(), bridge.StartRequest{
				Room: room, Identity: "host",
				Outputs: []bridge.OutputRequest{{URL: recv.URL("live", room)}},
			}, false); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			sess, err := recv.WaitSession(ctx)
			if err == nil {
				var snap *rtmptest.Snapshot
				snap, err = sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return firstKeyframe(s) != nil })
				if err == nil {
					row.start = append(row.start, firstKeyframe(snap).Time.Sub(requested))
				}
			}
			cancel()
			if err != nil {
				b.Fatalf("broadcast %d: %v", i+1, err)
			}
			sessions = append(sessions, sess)
		}

		meters := map[string]*cpuMeter{}
		for name, pid := range map[string]int{"roomcast": rc.pid, "livekit": lk.PID(), "test": os.Getpid()} {
			if meters[name], err = startCPU(pid); err != nil {
				b.Fatal(err)
			}
		}
		from := time.Now()
		timer := time.NewTimer(benchWindow)
		<-timer.C // the measurement window itself: steady state, nothing to wait for
		to := time.Now()
		row.cpu, _ = meters["roomcast"].percent()
		row.lkCPU, _ = meters["livekit"].percent()
		row.testCPU, _ = meters["test"].percent()
		rss, _ := rssBytes(rc.pid)
		row.rss = rss - idleRSS

		// Frames each destination received in the window, and their
		// latency from the publisher's WriteSample.
		sent := 0
		for _, f := range src.Frames() {
			if f.SentAt.After(from) && f.SentAt.Before(to) {
				sent++
			}
		}
		row.sent = sent * n
		for _, s := range sessions {
			for _, m := range s.Snapshot().Video() {
				if !isAVCFrame(m.Payload) || m.Time.Before(from) || m.Time.After(to) {
					continue
				}
				row.recv++
				if nalus, err := avc.SplitAVCC(m.Payload[5:], 4); err == nil {
					if at, ok := src.FrameSentAt(avc.VCLHash(nalus)); ok {
						row.latency = append(row.latency, m.Time.Sub(at))
					}
				}
			}
		}
		rows = append(rows, row)
		if row.saturated() {
			break
		}
	}
	printBenchTable(rows)
	if len(rows) > 0 {
		r := rows[0]
		b.ReportMetric(r.cpu, "cpu%/broadcast")
		b.ReportMetric(float64(r.rss)/(1<<20), "MB-rss/broadcast")
		b.ReportMetric(float64(percentile(r.start, 50).Milliseconds()), "ms-start")
		b.ReportMetric(float64(percentile(r.latency, 50).Microseconds())/1000, "ms-latency-p50")
	}
}

type benchRow struct {
	n                   int
	cpu, lkCPU, testCPU float64 // percent of one core
	rss                 int64   // roomcast RSS above idle
	start, latency      []time.Duration
	sent, recv          int // video frames in the window, over all broadcasts
}

// dropped reports frames lost on the way: more than 2% of those sent did
// not arrive in the window (the window's edges account for a frame or two).
func (r benchRow) dropped() bool { return r.recv < r.sent*98/100 }

// saturated reports a step the machine could not keep up with: frames
// dropped, or, since an overloaded pipeline queues before it drops,
// latency past its 100 ms target.
func (r benchRow) saturated() bool {
	return r.dropped() || percentile(r.latency, 50) > 100*time.Millisecond
}

func printBenchTable(rows []benchRow) {
	fmt.Printf("\nroomcast passthrough: H.264 720p30 2.5 Mb/s + Opus→AAC, %v windows, %d cores\n", benchWindow, runtimeCores())
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "N\troomcast CPU (% core)\tper broadcast\tRSS MB (over idle)\tper broadcast\tstart p50 ms\tstart max ms\tlatency p50 ms\tp99 ms\tframes recv/sent\tlivekit CPU\tpublisher+receivers CPU\t\n")
	for _, r := range rows {
		fmt.Fprintf(w, "%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.1f\t%d/%d\t%.1f\t%.1f\t\n",
			r.n, r.cpu, r.cpu/float64(r.n), float64(r.rss)/(1<<20), float64(r.rss)/(1<<20)/float64(r.n),
			percentile(r.start, 50).Milliseconds(), percentile(r.start, 100).Milliseconds(),
			float64(percentile(r.latency, 50).Microseconds())/1000, float64(percentile(r.latency, 99).Microseconds())/1000,
			r.recv, r.sent, r.lkCPU, r.testCPU)
	}
	w.Flush()
	switch last := rows[len(rows)-1]; {
	case last.dropped():
		fmt.Printf("saturated at N=%d: %d of %d frames arrived\n", last.n, last.recv, last.sent)
	case last.saturated():
		fmt.Printf("saturated at N=%d: frames queue, latency p50 %v\n", last.n, percentile(last.latency, 50).Round(time.Millisecond))
	default:
		fmt.Printf("not saturated up to N=%d (the largest step tried)\n", last.n)
	}
	fmt.Println("targets: start ≤ 1000 ms, latency p50 ≤ 100 ms, ≤ 5 % of a core per passthrough broadcast")
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s) - 1) * p / 100
	return s[i]
}

func firstKeyframe(s *rtmptest.Snapshot) *rtmptest.Message {
	for _, m := range s.Video() {
		if isAVCFrame(m.Payload) && m.Payload[0]>>4 == 1 {
			return &m
		}
	}
	return nil
}

func runtimeCores() int {
	n := 0
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
	}
	return n
}

// roomcastProcess is `roomcast serve` as its own process.
type roomcastProcess struct {
	*httpapi.Client
	pid int
}

func startRoomcastProcess(tb testing.TB, lk *livekitdev.Server) *roomcastProcess {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logFile, err := os.Create(filepath.Join(tb.TempDir(), "roomcast.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(roomcastBinary(tb), "serve", "--http-listen", addr, "--log-level", "warn",
		"--livekit-url", lk.URL(), "--livekit-api-key", lk.APIKey(), "--livekit-api-secret", lk.APISecret())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		logFile.Close()
	})

	// Wait for the API: the process has no other way to say it listens.
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		select {
		case err := <-exited:
			tb.Fatalf("roomcast serve exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("roomcast serve did not answer on %s", base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	token, err := httpapi.Token(config.LiveKit{APIKey: lk.APIKey(), APISecret: lk.APISecret()}, "", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return &roomcastProcess{Client: &httpapi.Client{BaseURL: base, Token: token}, pid: cmd.Process.Pid}
}
