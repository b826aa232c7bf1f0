// Package config holds roomcast's configuration: one typed struct, loaded by
// viper from a YAML file, ROOMCAST_* environment variables and flags, and
// validated with errors that name the key and the bad value.
//
// Config is plain data. Runtime state lives in the component that owns it.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is roomcast's whole configuration.
type Config struct {
	LiveKit   LiveKit   `mapstructure:"livekit"`
	HTTP      HTTP      `mapstructure:"http"`
	Broadcast Broadcast `mapstructure:"broadcast"`
	Log       Log       `mapstructure:"log"`
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
		HTTP: HTTP{Listen: "127.0.0.1:8080"},
		Broadcast: Broadcast{
			KeyframeInterval: 2 * time.Second,
			TrackWait:        10 * time.Second,
			AudioSampleRate:  48000,
			AudioBitrate:     128000,
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
	v.SetDefault("broadcast.keyframe_interval", d.Broadcast.KeyframeInterval)
	v.SetDefault("broadcast.track_wait", d.Broadcast.TrackWait)
	v.SetDefault("broadcast.audio_sample_rate", d.Broadcast.AudioSampleRate)
	v.SetDefault("broadcast.audio_bitrate", d.Broadcast.AudioBitrate)
	v.SetDefault("broadcast.max_active", d.Broadcast.MaxActive)
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
