package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/bridge/httpapi"
	"github.com/roomcast/roomcast/config"
	"github.com/roomcast/roomcast/internal/livekitdev"
	"github.com/roomcast/roomcast/internal/rtmptest"
	"github.com/roomcast/roomcast/internal/testpattern"
)

// conformance is an http.RoundTripper that holds every request and answer
// to openapi.yaml: a field, status or endpoint the document does not
// describe is a test failure.
type conformance struct {
	t      *testing.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]bool // "operationId status"
}

func newConformance(t *testing.T) *conformance {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &conformance{t: t, router: router, seen: map[string]bool{}}
}

func (c *conformance) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	// The document's server is 127.0.0.1:8080; match on the path alone.
	probe := req.Clone(req.Context())
	probe.URL.Host, probe.Host = "127.0.0.1:8080", "127.0.0.1:8080"
	probe.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := c.router.FindRoute(probe)
	if err != nil {
		c.t.Errorf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return http.DefaultTransport.RoundTrip(req)
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		c.t.Errorf("%s %s: request does not match openapi.yaml: %s", req.Method, req.URL.Path, firstLine(err))
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return res, err
	}
	resBody, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(resBody)
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		c.t.Errorf("%s %s: answer %d does not match openapi.yaml: %s\n%s", req.Method, req.URL.Path, res.StatusCode, firstLine(err), resBody)
	}
	c.mu.Lock()
	c.seen[route.Operation.OperationID+" "+res.Status[:3]] = true
	c.mu.Unlock()
	return res, nil
}

// firstLine keeps kin-openapi's errors short: the rest is the schema.
func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

func init() {
	// LiveKit sends webhooks as application/webhook+json.
	openapi3filter.RegisterBodyDecoder("application/webhook+json", openapi3filter.JSONBodyDecoder)
}

// TestAPI walks every endpoint with a valid token, checking each request
// and answer against the OpenAPI document.
func TestAPI(t *testing.T) {
	lk := startLiveKit(t)
	publish(t, lk, "studio", "alice", testpattern.SourceOptions{Width: 320, Height: 240, BitrateKbps: 300})
	recv := newReceiver(t)
	rc := startRoomcast(t, lk, func(c *config.Config) {
		c.Destinations = map[string]config.Destination{"rec": {URL: recv.URL("live", "apikey-1")}}
		// The operator's hook sends every broadcast to "rec", whatever
		// the caller asked for.
		c.Hooks.Start = `{"outputs":[{"destination":"rec"}]}`
	})
	check := newConformance(t)
	rc.HTTP = &http.Client{Transport: check}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	in, err := rc.Start(ctx, bridge.StartRequest{Room: "studio", Identity: "alice", Outputs: []bridge.OutputRequest{{URL: "rtmp://127.0.0.1:1/live/refused"}}}, true)
	if err != nil || in.State != bridge.StateBroadcasting {
		t.Fatalf("start: %+v, %v", in, err)
	}
	if sess, err := recv.WaitSession(ctx); err != nil {
		t.Errorf("the hook's destination got no session: %v", err)
	} else if snap, err := sess.Wait(ctx, func(s *rtmptest.Snapshot) bool { return s.StreamName != "" }); err != nil || snap.StreamName != "apikey-1" {
		t.Errorf("the hook's destination got stream %q (%v)", snap.StreamName, err)
	}
	if list, err := rc.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("list: %d broadcasts, %v", len(list), err)
	}
	if got, err := rc.Get(ctx, in.ID); err != nil || got.Stats == nil {
		t.Errorf("get: %+v, %v", got, err)
	}
	st, err := rc.Server(ctx)
	if err != nil || st.ActiveBroadcasts != 1 || st.Passthrough != 1 || st.Available != -1 || st.Version == "" {
		t.Errorf("server: %+v, %v", st, err)
	}
	if _, err := rc.Health(ctx); err != nil {
		t.Errorf("health: %v", err)
	}
	if _, err := rc.Get(ctx, "bc_nosuch"); !isCode(err, bridge.CodeBroadcastNotFound) {
		t.Errorf("get of an unknown id: %v", err)
	}
	if _, err := rc.Start(ctx, bridge.StartRequest{Room: "studio", Identity: "alice", Outputs: []bridge.OutputRequest{{Destination: "rec"}}}, false); !isCode(err, bridge.CodeBroadcastExists) {
		t.Errorf("second start for alice: %v, want broadcast_exists", err)
	}
	for _, path := range []string{"/metrics", "/v1/openapi.yaml"} {
		res, err := rc.HTTP.Get(rc.addr + path)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %v %v", path, res.Status, err)
			continue
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(body), "apikey-1") {
			t.Errorf("GET %s shows the stream key", path)
		}
	}

	// Metadata, and a second destination added and removed while live.
	res, err := rc.Metadata(ctx, in.ID, httpapi.MetadataRequest{Handler: "onCuePoint", Data: map[string]any{"name": "ad", "type": "event"}})
	if err != nil || res.BroadcastID != in.ID || res.Timestamp <= 0 {
		t.Errorf("metadata: %+v, %v", res, err)
	}
	deep := map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": map[string]any{"e": map[string]any{"f": 1}}}}}}
	if _, err := rc.Metadata(ctx, in.ID, httpapi.MetadataRequest{Handler: "onMetaData", Data: map[string]any{"x": deep}}); !isCode(err, bridge.CodeInvalidMetadata) {
		t.Errorf("metadata of depth 7: %v, want invalid_metadata", err)
	}
	recv2 := newReceiver(t)
	out, err := rc.AddOutput(ctx, in.ID, bridge.OutputRequest{URL: recv2.URL("live", "second-key"), ConnectInfo: map[string]any{"auth": "x"}})
	if err != nil || out.ID != "out_2" || strings.Contains(out.URL, "second-key") {
		t.Fatalf("add output: %+v, %v", out, err)
	}
	sess2, err := recv2.WaitSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := sess2.Wait(ctx, func(s *rtmptest.Snapshot) bool { return len(s.Video()) > 0 }); err != nil || snap.Connect["auth"] != "x" {
		t.Errorf("added output: connect %v, %v", snap.Connect, err)
	}
	if _, err := rc.RemoveOutput(ctx, in.ID, "out_9"); !isCode(err, bridge.CodeOutputNotFound) {
		t.Errorf("remove of an unknown output: %v", err)
	}
	after, err := rc.RemoveOutput(ctx, in.ID, out.ID)
	if err != nil || len(after.Outputs) != 1 || after.State != bridge.StateBroadcasting {
		t.Errorf("remove output: %+v, %v", after, err)
	}
	if snap, err := sess2.WaitEnd(ctx); err != nil || snap.End != rtmptest.Clean {
		t.Errorf("removed output's session ended %v (%v), want clean", snap.End, err)
	}

	stopped, err := rc.Stop(ctx, in.ID)
	if err != nil || stopped.State != bridge.StateStopped {
		t.Errorf("stop: %+v, %v", stopped, err)
	}
	if _, err := rc.Metadata(ctx, in.ID, httpapi.MetadataRequest{Handler: "onTextData", Data: map[string]any{"text": "late"}}); !isCode(err, bridge.CodeBroadcastNotRunning) {
		t.Errorf("metadata after stop: %v, want broadcast_not_running", err)
	}
	for _, want := range []string{"start 201", "list 200", "get 200", "get 404", "start 409", "server 200", "stop 200",
		"metadata 200", "metadata 400", "metadata 409", "addOutput 201", "removeOutput 200", "removeOutput 404",
		"healthz 200", "readyz 200", "metrics 200", "openapi 200"} {
		if !check.seen[want] {
			t.Errorf("no %s answer was checked against openapi.yaml", want)
		}
	}
}

func isCode(err error, code int) bool {
	var e *bridge.Error
	return errors.As(err, &e) && e.Code == code
}

// TestAPIAuth: only a LiveKit token signed with the configured key pair,
// unexpired, with roomRecord, and for the right room gets in; everything
// else is refused with 401 or 403 and a body that says why.
func TestAPIAuth(t *testing.T) {
	lk := startLiveKit(t)
	rc := startRoomcast(t, lk, nil)
	lkCfg := rc.cfg.LiveKit
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// sign makes a token the way LiveKit's SDKs do, but with any expiry.
	sign := func(key, secret string, validFor time.Duration, grant *auth.VideoGrant) string {
		now := time.Now()
		claims := struct {
			jwt.RegisteredClaims
			auth.ClaimGrants
		}{
			RegisteredClaims: jwt.RegisteredClaims{Issuer: key, Subject: "operator", NotBefore: jwt.NewNumericDate(now.Add(-time.Hour)),
				ExpiresAt: jwt.NewNumericDate(now.Add(validFor))},
			ClaimGrants: auth.ClaimGrants{Video: grant},
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	studio, _ := httpapi.Token(lkCfg, "studio", time.Minute)
	start := bridge.StartRequest{Room: "studio", Identity: "nobody", Outputs: []bridge.OutputRequest{{URL: "rtmp://127.0.0.1:1/live/k"}}}
	for _, tc := range []struct {
		name       string
		token      string
		room       string // for start
		wantStatus int
		wantText   string
	}{
		{"missing", "", "studio", 401, "missing token"},
		{"not a JWT", "abc.def", "studio", 401, "not a valid JWT"},
		{"expired", sign(lkCfg.APIKey, lkCfg.APISecret, -2*time.Minute, &auth.VideoGrant{RoomRecord: true}), "studio", 401, "expired"},
		{"wrong secret", sign(lkCfg.APIKey, "not-the-secret-at-all-not-it", time.Minute, &auth.VideoGrant{RoomRecord: true}), "studio", 401, "signature"},
		{"unknown key", sign("otherkey", lkCfg.APISecret, time.Minute, &auth.VideoGrant{RoomRecord: true}), "studio", 401, "otherkey"},
		{"no roomRecord", sign(lkCfg.APIKey, lkCfg.APISecret, time.Minute, &auth.VideoGrant{RoomJoin: true, Room: "studio"}), "studio", 403, "roomRecord"},
		{"wrong room", studio, "backstage", 403, `not "backstage"`},
		{"right room", studio, "studio", 404, "room_not_found"}, // authorized; the room just does not exist
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &httpapi.Client{BaseURL: rc.addr, Token: tc.token, HTTP: &http.Client{Transport: newConformance(t)}}
			req := start
			req.Room = tc.room
			_, err := c.Start(ctx, req, true)
			var e *bridge.Error
			if !errors.As(err, &e) || e.HTTPStatus() != tc.wantStatus || !strings.Contains(e.Name+" "+e.Message, tc.wantText) {
				t.Fatalf("start answered %v, want %d mentioning %q", err, tc.wantStatus, tc.wantText)
			}
			if tc.wantStatus == 404 || tc.name == "wrong room" {
				return // authorized: list shows the token's room
			}
			if _, err := c.List(ctx); !errors.As(err, &e) || e.HTTPStatus() != tc.wantStatus {
				t.Errorf("list answered %v, want %d", err, tc.wantStatus)
			}
		})
	}
	if n := len(rc.svc.Manager.List()); n != 1 {
		t.Errorf("%d broadcasts exist, want only the authorized one", n)
	}

	// The CLI says the same and exits non-zero.
	expired := sign(lkCfg.APIKey, lkCfg.APISecret, -2*time.Minute, &auth.VideoGrant{RoomRecord: true})
	code, _, stderr := cli(t, &roomcast{addr: rc.addr, Client: &httpapi.Client{Token: expired}}, "list")
	if code == 0 || !strings.Contains(stderr, "unauthorized (4001)") || !strings.Contains(stderr, "expired") {
		t.Errorf("CLI with an expired token exited %d: %s", code, stderr)
	}
}

// TestWebhookJoinsRooms: LiveKit's room_started makes roomcast join rooms
// that match room.auto_join; a webhook without LiveKit's signature changes
// nothing.
func TestWebhookJoinsRooms(t *testing.T) {
	ln := listen(t)
	hook := "http://" + ln.Addr().String() + "/v1/webhooks/livekit"
	lk := startLiveKitWith(t, livekitdev.Options{WebhookURLs: []string{hook}})
	rc := startRoomcastOn(t, ln, lk, func(c *config.Config) { c.Room.AutoJoin = "show-*" }, testLog())
	rooms := lksdk.NewRoomServiceClient(lk.HTTPURL(), lk.APIKey(), lk.APISecret())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, name := range []string{"private-1", "show-1"} {
		if _, err := rooms.CreateRoom(ctx, &lkproto.CreateRoomRequest{Name: name, EmptyTimeout: 600}); err != nil {
			t.Fatal(err)
		}
	}
	// roomcast shows up in show-1 as a participant.
	viewer := joinMember(t, lk, "show-1", "viewer", nil)
	waitPresent(t, viewer, "roomcast")
	if joined := rc.svc.Control.Joined(); strings.Join(joined, ",") != "show-1" {
		t.Errorf("roomcast is in %v, want only show-1", joined)
	}

	// Forged: signed with another secret, or not signed at all.
	body := []byte(`{"event":"room_started","room":{"name":"show-forged"}}`)
	sum := sha256.Sum256(body)
	at := auth.NewAccessToken(lk.APIKey(), "a-different-secret-of-enough-length")
	at.SetValidFor(time.Minute).SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
	forged, _ := at.ToJWT()
	for name, token := range map[string]string{"wrong secret": forged, "unsigned": ""} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/webhook+json")
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		res, err := (&http.Client{Transport: newConformance(t)}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s webhook answered %s, want 401", name, res.Status)
		}
	}
	if joined := rc.svc.Control.Joined(); strings.Join(joined, ",") != "show-1" {
		t.Errorf("after forged webhooks roomcast is in %v, want only show-1", joined)
	}
}

// joinMember joins room as a participant that only exchanges data, with
// the given attributes.
func joinMember(t *testing.T, lk *livekitdev.Server, room, identity string, attrs map[string]string) *testpattern.Member {
	t.Helper()
	at := auth.NewAccessToken(lk.APIKey(), lk.APISecret())
	yes := true
	at.SetIdentity(identity).SetAttributes(attrs).SetValidFor(time.Hour).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room, CanSubscribe: &yes, CanPublishData: &yes})
	token, err := at.ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := testpattern.Join(ctx, lk.URL(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}
