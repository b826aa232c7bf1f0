// Package service wires roomcast together as `roomcast serve` runs it: the
// LiveKit adapter, the broadcast manager, the room protocol and the HTTP
// API. The end-to-end tests run the same wiring in process.
package service

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/roomcast/roomcast/bridge"
	"github.com/roomcast/roomcast/bridge/httpapi"
	"github.com/roomcast/roomcast/bridge/livekit"
	"github.com/roomcast/roomcast/config"
)

// Service is one roomcast process.
type Service struct {
	Manager *bridge.Manager
	Control *bridge.Control
	Handler http.Handler
	log     *slog.Logger
}

// New builds the service; nothing runs until Serve.
func New(cfg config.Config, log *slog.Logger) (*Service, error) {
	rooms := livekit.NewClient(cfg.LiveKit, cfg.Room.Identity, log)
	m, err := bridge.NewManager(cfg, rooms, log)
	if err != nil {
		return nil, err
	}
	ctl := bridge.NewControl(cfg.Room, m, rooms, log)
	return &Service{Manager: m, Control: ctl, Handler: httpapi.New(cfg, m, ctl, log), log: log}, nil
}

// Serve answers the API on ln until ctx ends. Then it stops every
// broadcast (each RTMP session ends cleanly), reports their final status
// into their rooms, leaves the rooms and closes the API.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info("shutting down: stopping broadcasts")
	s.Manager.Close()
	s.Control.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
