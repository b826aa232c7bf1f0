// Package lklog routes the LiveKit SDK's and pion's logs into log/slog at
// sensible levels. The SDK logs every signalling step and pion every ICE
// state change at info level; by default only warnings and errors pass.
package lklog

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	protologger "github.com/livekit/protocol/logger"
	"github.com/livekit/protocol/logger/zaputil"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// New adapts l to the logger interface of server-sdk-go and pion,
// dropping records below min.
func New(l *slog.Logger, min slog.Level) protologger.Logger {
	return sdkLogger{l: l, min: min}
}

var installOnce sync.Once

// Install replaces the SDK's process-wide default logger (stdlib log at
// info level) once per process; later calls do nothing. The per-room
// WithLogger option is not enough: the SDK hands its package logger to
// pion when it builds each peer connection. The SDK's setter is an
// unsynchronised global, so everyone in the process goes through here.
func Install(l *slog.Logger, min slog.Level) {
	installOnce.Do(func() { lksdk.SetLogger(New(l, min)) })
}

type sdkLogger struct {
	l    *slog.Logger
	min  slog.Level
	name string
}

func (s sdkLogger) log(level slog.Level, msg string, err error, kv []any) {
	if level < s.min {
		return
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	if s.name != "" {
		kv = append(kv, "logger", s.name)
	}
	if err != nil {
		kv = append(kv, "error", err)
	}
	s.l.Log(ctx, level, msg, kv...)
}

func (s sdkLogger) Debugw(msg string, kv ...any) { s.log(slog.LevelDebug, msg, nil, kv) }
func (s sdkLogger) Infow(msg string, kv ...any)  { s.log(slog.LevelInfo, msg, nil, kv) }
func (s sdkLogger) Warnw(msg string, err error, kv ...any) {
	s.log(slog.LevelWarn, msg, err, kv)
}
func (s sdkLogger) Errorw(msg string, err error, kv ...any) {
	s.log(slog.LevelError, msg, err, kv)
}

func (s sdkLogger) WithValues(kv ...any) protologger.Logger {
	s.l = s.l.With(kv...)
	return s
}

func (s sdkLogger) WithUnlikelyValues(kv ...any) protologger.UnlikelyLogger {
	return protologger.NewUnlikelyLogger(s, kv...)
}

func (s sdkLogger) WithName(name string) protologger.Logger {
	if s.name != "" {
		name = s.name + "." + name
	}
	s.name = name
	// pion warns about routine ICE progress ("Failed to ping without
	// candidate pairs") on every connection; its failures surface as SDK
	// errors anyway.
	if strings.HasPrefix(name, "pion") && s.min < slog.LevelError {
		s.min = slog.LevelError
	}
	return s
}

func (s sdkLogger) WithComponent(component string) protologger.Logger { return s.WithName(component) }
func (s sdkLogger) WithCallDepth(int) protologger.Logger              { return s }
func (s sdkLogger) WithItemSampler() protologger.Logger               { return s }
func (s sdkLogger) WithoutSampler() protologger.Logger                { return s }

func (s sdkLogger) WithDeferredValues() (protologger.Logger, protologger.DeferredFieldResolver) {
	return s, zaputil.NoOpDeferrer{}
}
