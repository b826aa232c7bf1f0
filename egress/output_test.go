package egress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/nginxrtmp"
	"github.com/roomcast/roomcast/internal/rtmptest"
)

// waitStats polls the stream's stats until cond holds: the stream offers
// no event for "n frames muxed", and polling a condition is not a sleep.
func waitStats(t *testing.T, ctx context.Context, s *Stream, cond func(Stats) bool) Stats {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("stats never got there: %+v", st)
		}
	}
}

// TestNginxRTMP: the Go RTMP client publishes to a real nginx-rtmp (which
// reads the chunk header's stream id the way the specification writes it)
// and ffprobe reads H.264 and AAC back from its recording.
func TestNginxRTMP(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	srv, err := nginxrtmp.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	video, audio := testTracks(t)
	s, err := New(Options{Outputs: []Output{{ID: "nginx", URL: mustURL(t, srv.URL("live", "nginxkey")),
		ConnectInfo: map[string]any{"token": "t", "n": 1.0}}}}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, ctx, s)
	waitStats(t, ctx, s, func(st Stats) bool {
		return len(st.Outputs) == 1 && st.Outputs[0].State == OutputLive && st.Outputs[0].Frames >= 200
	})
	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if st := s.Stats().Outputs[0]; st.State != OutputEnded || st.Bytes == 0 {
		t.Errorf("output %+v, want ended with bytes counted", st)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	probe, err := rtmptest.Probe(ctx, srv.RecordingPath("nginxkey"))
	if err != nil {
		t.Fatal(err)
	}
	v, ok := probe.Stream("video")
	if !ok || v.CodecName != "h264" || v.Width != 320 || v.Height != 240 {
		t.Errorf("recording video %+v, want h264 320x240", v)
	}
	if a, ok := probe.Stream("audio"); !ok || a.CodecName != "aac" || a.SampleRate != 48000 {
		t.Errorf("recording audio %+v, want aac 48000 Hz", a)
	}
	pk := probe.StreamPackets("video")
	if len(pk) < 60 || !pk[0].Keyframe {
		t.Errorf("recording has %d video packets, first keyframe %v", len(pk), len(pk) > 0 && pk[0].Keyframe)
	}
	if fps, err := probe.MeasuredFrameRate(); err != nil || fps < 27 || fps > 33 {
		t.Errorf("recording frame rate %.1f (%v), want about 30", fps, err)
	}
}

// TestRTMPS: rtmps:// goes over TLS, the certificate checked, with
// everything a session needs arriving through it.
func TestRTMPS(t *testing.T) {
	recv := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	addr, roots := tlsProxy(t, recv.Addr())
	video, audio := testTracks(t)
	s, err := New(Options{Outputs: []Output{{ID: "tls", URL: mustURL(t, "rtmps://"+addr+"/live/tlskey")}}}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	s.tlsConfig = &tls.Config{RootCAs: roots}
	r := start(t, ctx, s)
	sess, err := recv.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sess.Wait(ctx, videoPast(1000))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sessionStart(snap), ","); got != "onMetaData,avc-header,aac-header,keyframe" {
		t.Errorf("session starts %s", got)
	}
	if tc := snap.Connect["tcUrl"]; tc != "rtmps://"+addr+"/live" {
		t.Errorf("tcUrl %v", tc)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if snap, _ := sess.WaitEnd(ctx); snap.End != rtmptest.Clean {
		t.Errorf("session ended %v, want clean", snap.End)
	}
}

// tlsProxy listens with TLS on a loopback port and forwards every
// connection to target, as a TLS-terminating ingest front does. It returns
// its address and a pool that trusts its certificate.
func tlsProxy(t *testing.T, target string) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "roomcast test ingest"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return ln.Addr().String(), roots
}

// TestAddRemoveOutput: outputs come and go while the stream runs. A new
// one starts like any session: merged onMetaData, sequence headers, then
// a keyframe; a removed one ends cleanly; the last one cannot be removed.
func TestAddRemoveOutput(t *testing.T) {
	r1 := newReceiver(t)
	r2 := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	video, audio := testTracks(t)
	s, err := New(Options{
		Outputs:          []Output{{ID: "a", URL: mustURL(t, r1.URL("live", "key-a"))}},
		Metadata:         map[string]any{"title": "Show"},
		KeyframeInterval: 20 * time.Second, // the added output's keyframe must come from its request
	}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddOutput(Output{ID: "early", URL: mustURL(t, r2.URL("live", "x"))}); err != errNotRunning {
		t.Errorf("AddOutput before Run = %v, want %v", err, errNotRunning)
	}
	r := start(t, ctx, s)
	sa, err := r1.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Wait(ctx, videoPast(1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SendData(HandlerMetaData, map[string]any{"chapter": "Two"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return len(sn.DataNamed("onMetaData")) == 2 }); err != nil {
		t.Fatal(err)
	}

	added := time.Now()
	if err := r.AddOutput(Output{ID: "b", URL: mustURL(t, r2.URL("live", "key-b")), ConnectInfo: map[string]any{"n": 1.0}}); err != nil {
		t.Fatal(err)
	}
	sb, err := r2.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sb.Wait(ctx, func(sn *rtmptest.Snapshot) bool { return slices.Contains(sessionStart(sn), "keyframe") })
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sessionStart(snap), ","); got != "onMetaData,avc-header,aac-header,keyframe" {
		t.Errorf("added session starts %s", got)
	}
	if wait := snap.Video()[len(snap.Video())-1].Time.Sub(added); wait > 2*time.Second {
		t.Errorf("added output's first keyframe came %v after AddOutput", wait)
	}
	if f := metaFields(t, snap.DataNamed("onMetaData")[0]); f["title"] != "Show" || f["chapter"] != "Two" || f["width"] != 320.0 {
		t.Errorf("added session's onMetaData %v, want the merged one", f)
	}
	if snap.Connect["n"] != 1.0 {
		t.Errorf("added session's connect %v lacks its field", snap.Connect)
	}

	for _, tc := range []struct {
		err  error
		want string
	}{
		{r.AddOutput(Output{ID: "b", URL: mustURL(t, r2.URL("live", "key-c"))}), "already has an output with that id"},
		{r.AddOutput(Output{ID: "c", URL: mustURL(t, r2.URL("live", "key-c")), ConnectInfo: map[string]any{"o": map[string]any{}}}), "connectInfo.o"},
		{r.RemoveOutput("zzz"), "no such output"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", tc.err, tc.want)
		}
	}

	if err := r.RemoveOutput("a"); err != nil {
		t.Fatal(err)
	}
	if snap, err := sa.WaitEnd(ctx); err != nil || snap.End != rtmptest.Clean {
		t.Errorf("removed session ended %v (%v), want clean", snap.End, err)
	}
	last := sb.Snapshot().Video()
	if _, err := sb.Wait(ctx, videoPast(last[len(last)-1].Timestamp+1000)); err != nil {
		t.Fatalf("the stream did not go on after a removal: %v", err)
	}
	if err := r.RemoveOutput("b"); err == nil || !strings.Contains(err.Error(), "last one sending; stop the broadcast instead") {
		t.Errorf("removing the last output = %v", err)
	}
	if st := r.Stats().Outputs; len(st) != 1 || st[0].ID != "b" || st[0].State != OutputLive {
		t.Errorf("outputs %+v, want only b, live", st)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if snap, _ := sb.WaitEnd(ctx); snap.End != rtmptest.Clean {
		t.Errorf("b ended %v, want clean", snap.End)
	}
}

// TestOutputLimit: a stream takes at most MaxOutputs outputs, at New and
// at AddOutput.
func TestOutputLimit(t *testing.T) {
	recv := newReceiver(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var outs []Output
	for i := range MaxOutputs {
		outs = append(outs, Output{ID: fmt.Sprint("o", i), URL: mustURL(t, recv.URL("live", fmt.Sprint("key", i)))})
	}
	video, audio := testTracks(t)
	if _, err := New(Options{Outputs: append(outs, Output{ID: "x", URL: outs[0].URL})}, video, audio); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("exceed the limit of %d", MaxOutputs)) {
		t.Errorf("New with %d outputs = %v", MaxOutputs+1, err)
	}
	s, err := New(Options{Outputs: outs}, video, audio)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, ctx, s)
	for range MaxOutputs {
		sess, err := recv.WaitSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Stop only once media flows: a muxer stopped before its first
		// frame takes drainTimeout to give up.
		if _, err := sess.Wait(ctx, videoPast(100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.AddOutput(Output{ID: "x", URL: outs[0].URL}); err == nil || !strings.Contains(err.Error(), "the limit") {
		t.Errorf("AddOutput beyond the limit = %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}
