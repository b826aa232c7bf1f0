package egress

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrInvalidURL is wrapped by every error ParseURL returns.
var ErrInvalidURL = errors.New("invalid RTMP URL")

// redactedKey stands in for a stream key in everything roomcast shows.
const redactedKey = "****"

// URL is a validated RTMP or RTMPS destination. Its stream key is a secret:
// String hides it; only Secret returns the URL that goes on the wire.
type URL struct {
	raw string
	key string
	red string
}

// ParseURL validates an RTMP destination before anything connects to it:
// rtmp:// or rtmps://, a host, an application and a stream key
// (rtmp://host[:port]/app/key, the form YouTube and Twitch give out).
func ParseURL(s string) (URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse quotes the whole input, key included: say less.
		return URL{}, fmt.Errorf("%w: cannot parse it as a URL", ErrInvalidURL)
	}
	shown := u.Scheme + "://" + u.Host
	switch {
	case u.Scheme != "rtmp" && u.Scheme != "rtmps":
		return URL{}, fmt.Errorf("%w %q: scheme %q is not allowed, use rtmp:// or rtmps://", ErrInvalidURL, shown, u.Scheme)
	case u.Hostname() == "":
		return URL{}, fmt.Errorf("%w %q: no host", ErrInvalidURL, shown)
	case u.User != nil:
		return URL{}, fmt.Errorf("%w %q: user info in the URL is not supported", ErrInvalidURL, shown)
	}
	path := strings.Trim(u.EscapedPath(), "/")
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return URL{}, fmt.Errorf("%w %q: want rtmp://host/app/stream-key, the path %q has no application and stream key", ErrInvalidURL, shown, redactPath(path))
	}
	key := path[i+1:]
	if u.RawQuery != "" {
		// Some ingests put credentials in the query: treat it as key.
		key += "?" + u.RawQuery
	}
	return URL{
		raw: s,
		key: key,
		red: shown + "/" + path[:i] + "/" + redactedKey,
	}, nil
}

func redactPath(p string) string {
	if p == "" {
		return ""
	}
	return redactedKey
}

// String returns the URL with its stream key replaced by ****.
func (u URL) String() string { return u.red }

// Secret returns the full URL, stream key included, for the wire only.
func (u URL) Secret() string { return u.raw }

// Redact removes the URL's stream key from text such as a GStreamer error,
// which may quote the location it failed to reach.
func (u URL) Redact(text string) string {
	if u.raw == "" {
		return text
	}
	text = strings.ReplaceAll(text, u.raw, u.red)
	if u.key != "" {
		text = strings.ReplaceAll(text, u.key, redactedKey)
		if k, _, ok := strings.Cut(u.key, "?"); ok && k != "" {
			text = strings.ReplaceAll(text, k, redactedKey)
		}
	}
	return text
}

// endpoint splits the URL for the RTMP client: the address to dial (with
// the scheme's default port), whether it is RTMPS, the app and tcUrl for
// the connect command, and the stream name to publish (the key).
func (u URL) endpoint() (addr string, secure bool, app, tcURL, name string, err error) {
	p, err := url.Parse(u.raw)
	if err != nil {
		return "", false, "", "", "", fmt.Errorf("%w: cannot parse it as a URL", ErrInvalidURL)
	}
	secure = p.Scheme == "rtmps"
	port := p.Port()
	if port == "" {
		port = "1935"
		if secure {
			port = "443"
		}
	}
	path := strings.Trim(p.EscapedPath(), "/")
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "", false, "", "", "", fmt.Errorf("%w %q: no application and stream key", ErrInvalidURL, u.red)
	}
	app = path[:i]
	return net.JoinHostPort(p.Hostname(), port), secure, app, p.Scheme + "://" + p.Host + "/" + app, u.key, nil
}
