package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/roomcast/roomcast/bridge"
)

// Client calls the control API; the CLI verbs are thin wrappers over it.
// Errors the server reports come back as *bridge.Error.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Token   string // LiveKit access token with roomRecord; see Token
	HTTP    *http.Client
}

// Start starts a broadcast. With wait, it returns once the broadcast is
// live, or its error if it failed first.
func (c *Client) Start(ctx context.Context, req bridge.StartRequest, wait bool) (bridge.Info, error) {
	path := "/v1/broadcasts"
	if wait {
		path += "?wait=true"
	}
	var in bridge.Info
	return in, c.do(ctx, http.MethodPost, path, req, &in)
}

// List returns every broadcast the server knows.
func (c *Client) List(ctx context.Context) ([]bridge.Info, error) {
	var l BroadcastList
	err := c.do(ctx, http.MethodGet, "/v1/broadcasts", nil, &l)
	return l.Broadcasts, err
}

// Get returns one broadcast.
func (c *Client) Get(ctx context.Context, id string) (bridge.Info, error) {
	var in bridge.Info
	return in, c.do(ctx, http.MethodGet, "/v1/broadcasts/"+url.PathEscape(id), nil, &in)
}

// Stop stops a broadcast and returns it as it ended.
func (c *Client) Stop(ctx context.Context, id string) (bridge.Info, error) {
	var in bridge.Info
	return in, c.do(ctx, http.MethodDelete, "/v1/broadcasts/"+url.PathEscape(id), nil, &in)
}

// Metadata sends onMetaData, onCuePoint or onTextData into a broadcast.
func (c *Client) Metadata(ctx context.Context, id string, req MetadataRequest) (MetadataResult, error) {
	var res MetadataResult
	return res, c.do(ctx, http.MethodPost, "/v1/broadcasts/"+url.PathEscape(id)+"/metadata", req, &res)
}

// AddOutput adds a destination to a running broadcast.
func (c *Client) AddOutput(ctx context.Context, id string, req bridge.OutputRequest) (bridge.OutputInfo, error) {
	var out bridge.OutputInfo
	return out, c.do(ctx, http.MethodPost, "/v1/broadcasts/"+url.PathEscape(id)+"/outputs", req, &out)
}

// RemoveOutput ends one destination of a broadcast; the others go on.
func (c *Client) RemoveOutput(ctx context.Context, id, outputID string) (bridge.Info, error) {
	var in bridge.Info
	return in, c.do(ctx, http.MethodDelete, "/v1/broadcasts/"+url.PathEscape(id)+"/outputs/"+url.PathEscape(outputID), nil, &in)
}

// Server returns the server's load and capacity.
func (c *Client) Server(ctx context.Context) (ServerStats, error) {
	var st ServerStats
	return st, c.do(ctx, http.MethodGet, "/v1/server", nil, &st)
}

// Health returns the answers of /healthz and /readyz.
func (c *Client) Health(ctx context.Context) (map[string]any, error) {
	health := map[string]any{}
	var live, ready map[string]any
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, &live); err != nil {
		return nil, err
	}
	health["healthz"] = live
	err := c.do(ctx, http.MethodGet, "/readyz", nil, &ready)
	health["readyz"] = ready
	return health, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("roomcast API at %s: %w", c.BaseURL, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("roomcast API at %s: %w", c.BaseURL, err)
	}
	if res.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
			return eb.Error
		}
		return fmt.Errorf("roomcast API at %s: %s: %s", c.BaseURL, res.Status, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}
