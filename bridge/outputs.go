package bridge

import (
	"fmt"
	"strings"
	"time"

	"github.com/roomcast/roomcast/egress"
)

// The operations on a running broadcast. Each goes to the broadcast's
// egress stream, which owns the outputs and the tag stream.

// running returns the broadcast's stream, or an error that says why there
// is none to act on.
func (m *Manager) running(id string) (*broadcast, *egress.Stream, error) {
	b, err := m.get(id)
	if err != nil {
		return nil, nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.state.Final() || b.state == StateStopping:
		return nil, nil, newError(CodeBroadcastNotRunning, "broadcast %s is %s", id, b.state)
	case b.stream == nil:
		return nil, nil, newError(CodeBroadcastNotRunning, "broadcast %s is still %s; try again once it is connected", id, b.state)
	}
	return b, b.stream, nil
}

// SendData sends onMetaData (merged with the stream's metadata),
// onCuePoint or onTextData into a broadcast, and returns the stream time
// it went out at.
func (m *Manager) SendData(id, handler string, data map[string]any) (time.Duration, error) {
	if err := egress.ValidateData(handler, data, m.cfg.MaxMetadataBytes); err != nil {
		return 0, newError(CodeInvalidMetadata, "%v", strings.TrimPrefix(err.Error(), "egress: "))
	}
	b, stream, err := m.running(id)
	if err != nil {
		return 0, err
	}
	if !b.metadataLimit.Allow() {
		return 0, newError(CodeRateLimited, "more than %g metadata messages per second (burst %d) for broadcast %s (broadcast.metadata_rate)",
			m.cfg.MetadataRate, m.cfg.MetadataBurst, id)
	}
	ts, err := stream.SendData(handler, data)
	if err != nil {
		return 0, toError(err)
	}
	return ts, nil
}

// AddOutput adds a destination to a running broadcast.
func (m *Manager) AddOutput(id string, o OutputRequest) (OutputInfo, error) {
	out, err := m.output("output", o)
	if err != nil {
		return OutputInfo{}, err
	}
	b, stream, err := m.running(id)
	if err != nil {
		return OutputInfo{}, err
	}
	out.ID = b.nextOutputID()
	if err := stream.AddOutput(out); err != nil {
		return OutputInfo{}, newError(CodeOutputConflict, "%v", strings.TrimPrefix(err.Error(), "egress: "))
	}
	m.log.Info("output added", "broadcast", id, "output", out.ID, "url", out.URL.String())
	return OutputInfo{ID: out.ID, URL: out.URL.String(), State: string(egress.OutputConnecting)}, nil
}

// RemoveOutput ends one destination of a broadcast; the others go on.
func (m *Manager) RemoveOutput(id, outputID string) (Info, error) {
	b, stream, err := m.running(id)
	if err != nil {
		return Info{}, err
	}
	known := false
	for _, o := range stream.Stats().Outputs {
		known = known || o.ID == outputID
	}
	if !known {
		return Info{}, newError(CodeOutputNotFound, "broadcast %s has no output %q", id, outputID)
	}
	if err := stream.RemoveOutput(outputID); err != nil {
		return Info{}, newError(CodeOutputConflict, "%v", strings.TrimPrefix(err.Error(), "egress: "))
	}
	m.log.Info("output removed", "broadcast", id, "output", outputID)
	in, _ := b.info()
	return in, nil
}

// nextOutputID numbers outputs in the order they were added; ids are
// never reused, so status readers can trust them.
func (b *broadcast) nextOutputID() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.outputCount++
	return fmt.Sprintf("out_%d", b.outputCount)
}
