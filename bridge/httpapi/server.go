// Package httpapi serves roomcast's control API: JSON over HTTP onto the
// bridge's broadcast operations.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/roomcast/roomcast/bridge"
)

// maxBody bounds request bodies: a start request is a few hundred bytes.
const maxBody = 64 << 10

// maxWait bounds ?wait on start: track_wait plus time to reach a keyframe.
const maxWait = 11 * time.Minute

// New returns the API handler.
//
//	POST   /v1/broadcasts          start (add ?wait=true to answer once live or failed)
//	GET    /v1/broadcasts          list
//	GET    /v1/broadcasts/{id}     get
//	DELETE /v1/broadcasts/{id}     stop, answering once ended
//	GET    /healthz                the process is up
//	GET    /readyz                 the process takes new broadcasts
func New(m *bridge.Manager, log *slog.Logger) http.Handler {
	s := &server{m: m, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/broadcasts", s.start)
	mux.HandleFunc("GET /v1/broadcasts", s.list)
	mux.HandleFunc("GET /v1/broadcasts/{id}", s.get)
	mux.HandleFunc("DELETE /v1/broadcasts/{id}", s.stop)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: &bridge.Error{Code: bridge.CodeInvalidRequest, Name: "not_found",
			Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)}})
	})
	return mux
}

type server struct {
	m   *bridge.Manager
	log *slog.Logger
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

func (s *server) start(w http.ResponseWriter, r *http.Request) {
	var req bridge.StartRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
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
			writeError(w, &bridge.Error{Code: bridge.CodeInternal, Name: "internal_error",
				Message: "stopped waiting for broadcast " + in.ID + ": " + err.Error()})
			return
		}
		if in.State == bridge.StateFailed {
			writeJSON(w, in.Error.HTTPStatus(), ErrorBody{Error: in.Error, Broadcast: &in})
			return
		}
	}
	writeJSON(w, http.StatusCreated, in)
}

func (s *server) list(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, BroadcastList{Broadcasts: s.m.List()})
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	in, err := s.m.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *server) stop(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	in, err := s.m.Stop(ctx, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "activeBroadcasts": s.m.Active()})
}

// decode reads one JSON object, rejecting unknown fields, trailing data
// and oversize bodies with an error that says which.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return invalid("Content-Type is %q; send application/json", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return invalid("body is larger than %d bytes", maxBody)
		case errors.As(err, &syntax):
			return invalid("body is not valid JSON at byte %d: %v", syntax.Offset, err)
		case errors.As(err, &typ):
			return invalid("field %q must be %s, not %s", typ.Field, typ.Type, typ.Value)
		case errors.Is(err, io.EOF):
			return invalid("body is empty; send a JSON object")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return invalid("body is not valid JSON: it ends before the object does")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return invalid("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return invalid("body: %v", err)
	}
	if dec.More() {
		return invalid("body has data after the JSON object")
	}
	return nil
}

func invalid(format string, args ...any) *bridge.Error {
	return &bridge.Error{Code: bridge.CodeInvalidRequest, Name: "invalid_request", Message: fmt.Sprintf(format, args...)}
}

// writeError answers with err's code and the status that goes with it.
func writeError(w http.ResponseWriter, err error) {
	var e *bridge.Error
	if !errors.As(err, &e) {
		e = &bridge.Error{Code: bridge.CodeInternal, Name: "internal_error", Message: err.Error()}
	}
	writeJSON(w, e.HTTPStatus(), ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
