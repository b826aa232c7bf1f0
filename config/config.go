// Package config holds roomcast's configuration: one typed struct, loaded by
// viper from a YAML file, ROOMCAST_* environment variables and flags, and
// validated with errors that name the key and the bad value.
//
// Config is plain data. Runtime state lives in the component that owns it.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is roomcast's whole configuration.
type Config struct {
	LiveKit      LiveKit                `mapstructure:"livekit"`
	HTTP         HTTP                   `mapstructure:"http"`
	Broadcast    Broadcast              `mapstructure:"broadcast"`
	Room         Room                   `mapstructure:"room"`
	Destinations map[string]Destination `mapstructure:"destinations"`
	Hooks        Hooks                  `mapstructure:"hooks"`
	Log          Log                    `mapstructure:"log"`
}

// LiveKit says which LiveKit server roomcast joins rooms on.
type LiveKit struct {
	URL       string `mapstructure:"url"`
	APIKey    string `mapstructure:"api_key"`
	APISecret string `mapstructure:"api_secret"`
}

// HTTP configures the control API.
type HTTP struct {
	// Listen is the control API's address. Loopback by default: the API
	// starts broadcasts to arbitrary URLs, so exposing it is a decision.
	Listen string `mapstructure:"listen"`
	// Auth requires a LiveKit access token (signed with the API key and
	// secret, with the roomRecord grant) on every API call but health,
	// readiness, metrics and webhooks, which carry their own signature.
	Auth bool `mapstructure:"auth"`
}

// Broadcast holds the defaults every broadcast starts from.
type Broadcast struct {
	// KeyframeInterval is how often roomcast asks the publisher for a
	// keyframe in passthrough. WebRTC encoders send keyframes only when
	// asked; YouTube wants at most 4 s and recommends 2 s, Twitch requires 2 s.
	KeyframeInterval time.Duration `mapstructure:"keyframe_interval"`
	// TrackWait is how long a broadcast waits for the participant's tracks
	// before it fails.
	TrackWait time.Duration `mapstructure:"track_wait"`
	// AudioSampleRate is the AAC output rate: 44100 or 48000.
	AudioSampleRate int `mapstructure:"audio_sample_rate"`
	// AudioBitrate is the AAC output bitrate in bits per second.
	AudioBitrate int `mapstructure:"audio_bitrate"`
	// MaxActive caps concurrent broadcasts on this process; 0 means no cap.
	MaxActive int `mapstructure:"max_active"`
	// MaxMetadataBytes bounds one metadata message (AMF0-encoded) and the
	// merged custom onMetaData keys of a broadcast.
	MaxMetadataBytes int `mapstructure:"max_metadata_bytes"`
	// MetadataRate and MetadataBurst bound metadata messages per
	// broadcast, from every door together (a token bucket).
	MetadataRate  float64 `mapstructure:"metadata_rate"`
	MetadataBurst int     `mapstructure:"metadata_burst"`
}

// Room configures the room protocol: how roomcast takes part in rooms and
// who may steer broadcasts from the data channel.
type Room struct {
	// Identity is roomcast's participant in every room it joins. It is
	// visible so that late joiners can read its attributes.
	Identity string `mapstructure:"identity"`
	// AutoJoin is a pattern (path.Match syntax, "*" for all) of room names
	// roomcast joins when a room_started webhook announces them. Empty
	// joins no room on its own.
	AutoJoin string `mapstructure:"auto_join"`
	// AuthorizedIdentities may control any broadcast in the room; by
	// default only the broadcasting participant controls its own.
	AuthorizedIdentities []string `mapstructure:"authorized_identities"`
	// AuthorizedAttribute, as key=value, authorizes every participant
	// whose attributes hold that pair (e.g. role=producer).
	AuthorizedAttribute string `mapstructure:"authorized_attribute"`
	// AllowedURLs are patterns (path.Match) that raw rtmp:// or rtmps://
	// URLs in room messages must match, tested against the URL without its
	// stream key (rtmp://host/app). Empty refuses raw URLs: room messages
	// can then only name destinations.
	AllowedURLs []string `mapstructure:"allowed_urls"`
	// MaxMessageBytes bounds one control message.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
	// MessageRate and MessageBurst bound control messages per participant
	// (a token bucket: MessageRate per second, bursts of MessageBurst).
	MessageRate  float64 `mapstructure:"message_rate"`
	MessageBurst int     `mapstructure:"message_burst"`
	// MaxBroadcasts caps concurrent broadcasts started from one room.
	MaxBroadcasts int `mapstructure:"max_broadcasts"`
}

// Destination is an operator-named output: rooms refer to it by name and
// never see its URL, whose last path element is the stream key.
type Destination struct {
	// URL is rtmp:// or rtmps://host/app/key. Prefer URLFile (a mounted
	// secret) or the environment (ROOMCAST_DESTINATIONS_<NAME>_URL, with
	// the name declared in the file) over writing keys into config files.
	URL     string `mapstructure:"url"`
	URLFile string `mapstructure:"url_file"`
}

// Hooks let the operator override what clients ask for.
type Hooks struct {
	// Start is a partial start request in JSON (the fields of POST
	// /v1/broadcasts, e.g. {"outputs": [{"destination": "archive"}]})
	// applied over every start request, from the API and from rooms alike:
	// objects merge, anything else replaces. JSON in a string, not YAML,
	// because viper lowercases map keys and metadata keys are case-sensitive.
	Start string `mapstructure:"start"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text or json
}

// Default returns the embedded default: a livekit-server started with
// --dev on this machine, and the API on loopback.
func Default() Config {
	return Config{
		LiveKit: LiveKit{
			URL:       "ws://127.0.0.1:7880",
			APIKey:    "devkey",
			APISecret: "secret",
		},
		HTTP: HTTP{Listen: "127.0.0.1:8080", Auth: true},
		Broadcast: Broadcast{
			KeyframeInterval: 2 * time.Second,
			TrackWait:        10 * time.Second,
			AudioSampleRate:  48000,
			AudioBitrate:     128000,
			MaxMetadataBytes: 64 << 10,
			MetadataRate:     10,
			MetadataBurst:    20,
		},
		Room: Room{
			Identity:        "roomcast",
			MaxMessageBytes: 16 << 10,
			MessageRate:     5,
			MessageBurst:    10,
			MaxBroadcasts:   4,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Flags are the command-line flags that override the file and environment.
// The name of each flag is its config key with "." and "_" written as "-".
func Flags() *pflag.FlagSet {
	d := Default()
	fs := pflag.NewFlagSet("roomcast", pflag.ContinueOnError)
	fs.String("config", "", "YAML config file")
	fs.String("livekit-url", d.LiveKit.URL, "LiveKit server URL (ws:// or wss://)")
	fs.String("livekit-api-key", d.LiveKit.APIKey, "LiveKit API key")
	fs.String("livekit-api-secret", d.LiveKit.APISecret, "LiveKit API secret")
	fs.String("http-listen", d.HTTP.Listen, "control API address")
	fs.Bool("http-auth", d.HTTP.Auth, "require LiveKit access tokens on the API")
	fs.String("room-auto-join", d.Room.AutoJoin, "join rooms whose name matches this pattern when they start (webhook)")
	fs.Duration("broadcast-keyframe-interval", d.Broadcast.KeyframeInterval, "keyframe request interval in passthrough")
	fs.Duration("broadcast-track-wait", d.Broadcast.TrackWait, "how long to wait for a participant's tracks")
	fs.Int("broadcast-max-active", d.Broadcast.MaxActive, "concurrent broadcast cap (0: none)")
	fs.String("log-level", d.Log.Level, "debug, info, warn or error")
	fs.String("log-format", d.Log.Format, "text or json")
	return fs
}

// Load reads the configuration: defaults, then the file (if path is not
// empty), then ROOMCAST_* environment variables (ROOMCAST_LIVEKIT_API_KEY for
// livekit.api_key), then flags that were set on fs. Unknown keys in the file
// are errors, so a typo does not silently fall back to a default.
func Load(path string, fs *pflag.FlagSet) (Config, error) {
	v := viper.New()
	setDefaults(v, Default())
	v.SetEnvPrefix("ROOMCAST")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config: read %s: %w", path, err)
		}
	}
	if fs != nil {
		var bindErr error
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "config" || !f.Changed {
				return
			}
			if err := v.BindPFlag(flagKey(f.Name), f); err != nil {
				bindErr = errors.Join(bindErr, err)
			}
		})
		if bindErr != nil {
			return Config{}, fmt.Errorf("config: flags: %w", bindErr)
		}
	}

	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// setDefaults registers every key, which also lets AutomaticEnv find
// environment variables for keys absent from the file.
func setDefaults(v *viper.Viper, d Config) {
	v.SetDefault("livekit.url", d.LiveKit.URL)
	v.SetDefault("livekit.api_key", d.LiveKit.APIKey)
	v.SetDefault("livekit.api_secret", d.LiveKit.APISecret)
	v.SetDefault("http.listen", d.HTTP.Listen)
	v.SetDefault("http.auth", d.HTTP.Auth)
	v.SetDefault("room.identity", d.Room.Identity)
	v.SetDefault("room.auto_join", d.Room.AutoJoin)
	v.SetDefault("room.authorized_identities", d.Room.AuthorizedIdentities)
	v.SetDefault("room.authorized_attribute", d.Room.AuthorizedAttribute)
	v.SetDefault("room.allowed_urls", d.Room.AllowedURLs)
	v.SetDefault("room.max_message_bytes", d.Room.MaxMessageBytes)
	v.SetDefault("room.message_rate", d.Room.MessageRate)
	v.SetDefault("room.message_burst", d.Room.MessageBurst)
	v.SetDefault("room.max_broadcasts", d.Room.MaxBroadcasts)
	v.SetDefault("hooks.start", d.Hooks.Start)
	v.SetDefault("broadcast.keyframe_interval", d.Broadcast.KeyframeInterval)
	v.SetDefault("broadcast.track_wait", d.Broadcast.TrackWait)
	v.SetDefault("broadcast.audio_sample_rate", d.Broadcast.AudioSampleRate)
	v.SetDefault("broadcast.audio_bitrate", d.Broadcast.AudioBitrate)
	v.SetDefault("broadcast.max_active", d.Broadcast.MaxActive)
	v.SetDefault("broadcast.max_metadata_bytes", d.Broadcast.MaxMetadataBytes)
	v.SetDefault("broadcast.metadata_rate", d.Broadcast.MetadataRate)
	v.SetDefault("broadcast.metadata_burst", d.Broadcast.MetadataBurst)
	v.SetDefault("log.level", d.Log.Level)
	v.SetDefault("log.format", d.Log.Format)
}

// flagKey maps a flag name such as "livekit-api-key" to its key
// "livekit.api_key": the first dash separates the section.
func flagKey(name string) string {
	section, rest, _ := strings.Cut(name, "-")
	return section + "." + strings.ReplaceAll(rest, "-", "_")
}

// FieldError says which key holds a bad value and what is allowed.
type FieldError struct {
	Key     string
	Value   any
	Allowed string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config: %s = %q: %s", e.Key, fmt.Sprint(e.Value), e.Allowed)
}

// Validate checks every field and reports all bad ones at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, value any, allowed string) {
		errs = append(errs, &FieldError{Key: key, Value: value, Allowed: allowed})
	}

	if u, err := url.Parse(c.LiveKit.URL); err != nil || u.Host == "" ||
		(u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
		bad("livekit.url", c.LiveKit.URL, "must be a ws://, wss://, http:// or https:// URL with a host")
	}
	if c.LiveKit.APIKey == "" {
		bad("livekit.api_key", "", "must not be empty")
	}
	if c.LiveKit.APISecret == "" {
		// The secret itself is never echoed back.
		bad("livekit.api_secret", "", "must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", c.HTTP.Listen, "must be host:port, e.g. 127.0.0.1:8080")
	}
	if k := c.Broadcast.KeyframeInterval; k < 500*time.Millisecond || k > 10*time.Second {
		bad("broadcast.keyframe_interval", k, "must be between 500ms and 10s (YouTube wants at most 4s, Twitch 2s)")
	}
	if w := c.Broadcast.TrackWait; w < time.Second || w > 10*time.Minute {
		bad("broadcast.track_wait", w, "must be between 1s and 10m")
	}
	if r := c.Broadcast.AudioSampleRate; r != 44100 && r != 48000 {
		bad("broadcast.audio_sample_rate", r, "must be 44100 or 48000")
	}
	if b := c.Broadcast.AudioBitrate; b < 32000 || b > 320000 {
		bad("broadcast.audio_bitrate", b, "must be between 32000 and 320000 bits per second")
	}
	if c.Broadcast.MaxActive < 0 {
		bad("broadcast.max_active", c.Broadcast.MaxActive, "must be 0 (no cap) or more")
	}
	if n := c.Broadcast.MaxMetadataBytes; n < 1024 || n > 1<<20 {
		bad("broadcast.max_metadata_bytes", n, "must be between 1024 and 1048576")
	}
	if c.Broadcast.MetadataRate <= 0 || c.Broadcast.MetadataBurst < 1 {
		bad("broadcast.metadata_rate", fmt.Sprintf("%v/s, burst %d", c.Broadcast.MetadataRate, c.Broadcast.MetadataBurst), "rate must be above 0 and metadata_burst at least 1")
	}
	if c.Room.Identity == "" {
		bad("room.identity", "", "must not be empty")
	}
	if _, err := path.Match(c.Room.AutoJoin, ""); err != nil {
		bad("room.auto_join", c.Room.AutoJoin, "must be a valid pattern (path.Match: *, ?, [a-z])")
	}
	for i, pattern := range c.Room.AllowedURLs {
		if _, err := path.Match(pattern, ""); err != nil || !(strings.HasPrefix(pattern, "rtmp://") || strings.HasPrefix(pattern, "rtmps://")) {
			bad(fmt.Sprintf("room.allowed_urls[%d]", i), pattern, "must be an rtmp:// or rtmps:// pattern (path.Match), e.g. rtmps://*.youtube.com/live2")
		}
	}
	if a := c.Room.AuthorizedAttribute; a != "" && !strings.Contains(a, "=") {
		bad("room.authorized_attribute", a, "must be key=value")
	}
	if n := c.Room.MaxMessageBytes; n < 1024 || n > 60<<10 {
		// LiveKit delivers reliable data packets up to about 60 KiB.
		bad("room.max_message_bytes", n, "must be between 1024 and 61440")
	}
	if c.Room.MessageRate <= 0 || c.Room.MessageBurst < 1 {
		bad("room.message_rate", fmt.Sprintf("%v/s, burst %d", c.Room.MessageRate, c.Room.MessageBurst), "rate must be above 0 and message_burst at least 1")
	}
	if c.Room.MaxBroadcasts < 0 {
		bad("room.max_broadcasts", c.Room.MaxBroadcasts, "must be 0 (no cap) or more")
	}
	for name, d := range c.Destinations {
		key := "destinations." + name
		switch {
		case (d.URL == "") == (d.URLFile == ""):
			bad(key, "", "needs exactly one of url or url_file")
		case d.URL != "":
			if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "rtmp" && u.Scheme != "rtmps") || u.Host == "" {
				// The URL holds a stream key: never echo it.
				bad(key+".url", "(not shown)", "must be an rtmp:// or rtmps:// URL with a host, app and stream key")
			}
		}
	}
	if h := c.Hooks.Start; h != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(h), &m); err != nil {
			bad("hooks.start", h, "must be a JSON object (a partial start request): "+err.Error())
		} else if m["room"] != nil || m["identity"] != nil {
			bad("hooks.start", h, "must not set room or identity")
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, "must be debug, info, warn or error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", c.Log.Format, "must be text or json")
	}
	return errors.Join(errs...)
}

// Location returns the destination's URL, reading URLFile at each call so
// that a rotated secret takes effect without a restart.
func (d Destination) Location() (string, error) {
	if d.URLFile == "" {
		return d.URL, nil
	}
	b, err := os.ReadFile(d.URLFile)
	if err != nil {
		return "", fmt.Errorf("read url_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
