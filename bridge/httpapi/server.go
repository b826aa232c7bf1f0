// Package httpapi serves roomcast's control API: JSON over HTTP onto the
// bridge's broadcast operations. openapi.yaml in this directory documents
// it, and a test holds the document and the handlers to each other.
package httpapi

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/livekit/protocol/webhook"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/config"
)

// maxBody bounds request bodies: a start request is a few hundred bytes,
// metadata at most the metadata limit.
const maxBody = 64 << 10

// maxWait bounds ?wait on start: track_wait plus time to reach a keyframe.
const maxWait = 11 * time.Minute

// OpenAPI is the API's OpenAPI 3 document, served at /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Version is reported by /v1/server; the build sets it with -ldflags.
var Version = "dev"

// New returns the API handler. Every /v1 endpoint but the webhook and the
// OpenAPI document takes a LiveKit access token when cfg.HTTP.Auth is on.
func New(cfg config.Config, m *bridge.Manager, ctl *bridge.Control, log *slog.Logger) http.Handler {
	s := &server{cfg: cfg, m: m, ctl: ctl, log: log, started: time.Now(), metrics: newMetrics(m)}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, rt.h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: &bridge.Error{Code: bridge.CodeInvalidRequest, Name: "not_found",
			Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)}})
	})
	return mux
}

// route is one documented endpoint; openapi.yaml lists the same set.
type route struct {
	pattern string // "METHOD /path/{param}"
	h       http.Handler
}

func (s *server) routes() []route {
	return []route{
		{"POST /v1/broadcasts", http.HandlerFunc(s.start)},
		{"GET /v1/broadcasts", http.HandlerFunc(s.list)},
		{"GET /v1/broadcasts/{id}", http.HandlerFunc(s.get)},
		{"DELETE /v1/broadcasts/{id}", http.HandlerFunc(s.stop)},
		{"POST /v1/broadcasts/{id}/metadata", http.HandlerFunc(s.metadata)},
		{"POST /v1/broadcasts/{id}/outputs", http.HandlerFunc(s.addOutput)},
		{"DELETE /v1/broadcasts/{id}/outputs/{outputId}", http.HandlerFunc(s.removeOutput)},
		{"GET /v1/server", http.HandlerFunc(s.server)},
		{"POST /v1/webhooks/livekit", http.HandlerFunc(s.webhook)},
		{"GET /v1/openapi.yaml", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(OpenAPI)
		})},
		{"GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})},
		{"GET /readyz", http.HandlerFunc(s.ready)},
		{"GET /metrics", s.metrics.handler()},
	}
}

type server struct {
	cfg     config.Config
	m       *bridge.Manager
	ctl     *bridge.Control
	log     *slog.Logger
	started time.Time
	metrics *metrics
}

// BroadcastList is the body of GET /v1/broadcasts.
type BroadcastList struct {
	Broadcasts []bridge.Info `json:"broadcasts"`
}

// ErrorBody is the body of every error answer. Broadcast is set when a
// started broadcast failed while the request waited for it.
type ErrorBody struct {
	Error     *bridge.Error `json:"error"`
	Broadcast *bridge.Info  `json:"broadcast,omitempty"`
}

// MetadataRequest is the body of POST /v1/broadcasts/{id}/metadata.
type MetadataRequest struct {
	Handler string         `json:"handler"`
	Data    map[string]any `json:"data"`
}

// MetadataResult says at which stream time the message went out.
type MetadataResult struct {
	BroadcastID string `json:"broadcastId"`
	Timestamp   int64  `json:"timestamp"` // milliseconds of stream time
}

// ServerStats is the body of GET /v1/server, what an operator (or a load
// balancer) needs to place work: nanoStream's checkServer.
type ServerStats struct {
	Version          string   `json:"version"`
	UptimeSeconds    float64  `json:"uptimeSeconds"`
	ActiveBroadcasts int      `json:"activeBroadcasts"`
	Passthrough      int      `json:"passthrough"`
	Transcoding      int      `json:"transcoding"`
	MaxActive        int      `json:"maxActive"` // 0: no cap
	Available        int      `json:"available"` // broadcasts it still takes; -1: no cap
	Load             float64  `json:"load"`      // 1-minute load average per core
	Rooms            []string `json:"rooms"`     // rooms roomcast takes part in
}

func (s *server) start(w http.ResponseWriter, r *http.Request) {
	scope, err := s.token(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req bridge.StartRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if !scope.allows(req.Room) {
		writeError(w, scope.forbidden(req.Room))
		return
	}
	in, err := s.m.Start(req)
	if err != nil {
		writeError(w, err)
		return
	}
	if r.URL.Query().Get("wait") == "true" {
		ctx, cancel := context.WithTimeout(r.Context(), maxWait)
		defer cancel()
		in, err = s.m.Wait(ctx, in.ID, func(in bridge.Info) bool { return in.State == bridge.StateBroadcasting })
		if err != nil {
			writeError(w, bridge.NewError(bridge.CodeInternal, "stopped waiting for broadcast %s: %v", in.ID, err))
			return
		}
		if in.State == bridge.StateFailed {
			writeJSON(w, in.Error.HTTPStatus(), ErrorBody{Error: in.Error, Broadcast: &in})
			return
		}
	}
	writeJSON(w, http.StatusCreated, in)
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	scope, err := s.token(r)
	if err != nil {
		writeError(w, err)
		return
	}
	list := []bridge.Info{}
	for _, in := range s.m.List() {
		if scope.allows(in.Room) {
			list = append(list, in)
		}
	}
	writeJSON(w, http.StatusOK, BroadcastList{Broadcasts: list})
}

// broadcast finds {id} and checks the token may act on its room.
func (s *server) broadcast(r *http.Request) (bridge.Info, error) {
	scope, err := s.token(r)
	if err != nil {
		return bridge.Info{}, err
	}
	in, err := s.m.Get(r.PathValue("id"))
	if err != nil {
		return in, err
	}
	if !scope.allows(in.Room) {
		return in, scope.forbidden(in.Room)
	}
	return in, nil
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	in, err := s.broadcast(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	if _, err := s.broadcast(r); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	in, err := s.m.Stop(ctx, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *server) metadata(w http.ResponseWriter, r *http.Request) {
	in, err := s.broadcast(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req MetadataRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Handler == "" || req.Data == nil {
		writeError(w, bridge.NewError(bridge.CodeInvalidRequest, `fields "handler" (onMetaData, onCuePoint or onTextData) and "data" (an object) are required`))
		return
	}
	ts, err := s.m.SendData(in.ID, req.Handler, req.Data)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MetadataResult{BroadcastID: in.ID, Timestamp: ts.Milliseconds()})
}

func (s *server) addOutput(w http.ResponseWriter, r *http.Request) {
	in, err := s.broadcast(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req bridge.OutputRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	out, err := s.m.AddOutput(in.ID, req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *server) removeOutput(w http.ResponseWriter, r *http.Request) {
	in, err := s.broadcast(r)
	if err != nil {
		writeError(w, err)
		return
	}
	in, err = s.m.RemoveOutput(in.ID, r.PathValue("outputId"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *server) server(w http.ResponseWriter, r *http.Request) {
	if _, err := s.token(r); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.stats())
}

func (s *server) stats() ServerStats {
	st := ServerStats{
		Version:       Version,
		UptimeSeconds: time.Since(s.started).Seconds(),
		MaxActive:     s.cfg.Broadcast.MaxActive,
		Available:     -1,
		Load:          loadPerCore(),
		Rooms:         s.ctl.Joined(),
	}
	for _, in := range s.m.List() {
		if in.State.Final() {
			continue
		}
		st.ActiveBroadcasts++
		if in.Stats != nil && in.Stats.Transcoding {
			st.Transcoding++
		} else {
			st.Passthrough++
		}
	}
	if st.MaxActive > 0 {
		st.Available = max(0, st.MaxActive-st.ActiveBroadcasts)
	}
	return st
}

// ready says whether this process takes new broadcasts: a load balancer
// or Kubernetes sends work elsewhere when it answers 503.
func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	st := s.stats()
	if st.Available == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "full", "activeBroadcasts": st.ActiveBroadcasts})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "activeBroadcasts": st.ActiveBroadcasts})
}

// webhook takes LiveKit's room events, signed with the API key and secret:
// roomcast joins rooms that match room.auto_join when they start, so the
// room protocol works without any API call.
func (s *server) webhook(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	ev, err := webhook.ReceiveWebhookEvent(r, keyProvider{s.cfg.LiveKit})
	if err != nil {
		s.log.Warn("webhook rejected", "err", err)
		writeError(w, bridge.NewError(bridge.CodeUnauthorized, "webhook rejected: %v (it must be signed with the configured LiveKit API key and secret)", err))
		return
	}
	room := ev.GetRoom().GetName()
	switch ev.GetEvent() {
	case webhook.EventRoomStarted:
		if s.ctl.AutoJoins(room) {
			s.log.Info("room started: joining", "room", room)
			s.ctl.Join(room)
		}
	case webhook.EventRoomFinished:
		s.ctl.Leave(room)
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// decode reads the JSON body into v with the rules every door shares.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return bridge.NewError(bridge.CodeInvalidRequest, "Content-Type is %q; send application/json", ct)
	}
	if err := bridge.DecodeJSON(http.MaxBytesReader(w, r.Body, maxBody), maxBody, v); err != nil {
		var e *bridge.Error
		if errors.As(err, &e) {
			e.Message = "body: " + e.Message
		}
		return err
	}
	return nil
}
