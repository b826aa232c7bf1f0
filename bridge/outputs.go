package bridge

import "time"

// TEMPORARY until the egress side lands in this session.
func (m *Manager) SendData(id, handler string, data map[string]any) (time.Duration, error) {
	return 0, newError(CodeInternal, "metadata is not available yet")
}

func (m *Manager) AddOutput(id string, o OutputRequest) (OutputInfo, error) {
	return OutputInfo{}, newError(CodeInternal, "adding outputs is not available yet")
}

func (m *Manager) RemoveOutput(id, outputID string) (Info, error) {
	return Info{}, newError(CodeInternal, "removing outputs is not available yet")
}
