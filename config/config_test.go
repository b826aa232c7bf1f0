package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load with nothing set = %+v, want Default() %+v", c, Default())
	}
}

func TestSampleConfigLoads(t *testing.T) {
	// The sample config documents every option; it must stay loadable.
	c, err := Load(filepath.Join("..", "deploy", "roomcast.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Broadcast.KeyframeInterval != 2*time.Second {
		t.Errorf("keyframe_interval = %v, want 2s", c.Broadcast.KeyframeInterval)
	}
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, "livekit:\n  url: ws://file:7880\nbroadcast:\n  track_wait: 20s\n  max_active: 3\n")
	t.Setenv("ROOMCAST_BROADCAST_TRACK_WAIT", "30s")
	t.Setenv("ROOMCAST_LOG_LEVEL", "debug")

	fs := Flags()
	if err := fs.Parse([]string{"--broadcast-track-wait=40s", "--livekit-api-key=flagkey"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"file over default", c.LiveKit.URL, "ws://file:7880"},
		{"file only", c.Broadcast.MaxActive, 3},
		{"env over default", c.Log.Level, "debug"},
		{"flag over env and file", c.Broadcast.TrackWait, 40 * time.Second},
		{"flag over default", c.LiveKit.APIKey, "flagkey"},
		{"untouched default", c.HTTP.Listen, "127.0.0.1:8080"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings the error must contain
	}{
		{"unknown key", "broadcast:\n  keyframe_intervall: 2s\n", []string{"keyframe_intervall"}},
		{"bad url scheme", "livekit:\n  url: rtmp://x\n", []string{"livekit.url", "rtmp://x", "ws://"}},
		{"keyframe too long", "broadcast:\n  keyframe_interval: 20s\n", []string{"broadcast.keyframe_interval", "20s", "10s"}},
		{"sample rate", "broadcast:\n  audio_sample_rate: 32000\n", []string{"broadcast.audio_sample_rate", "32000", "44100 or 48000"}},
		{"empty secret", "livekit:\n  api_secret: \"\"\n", []string{"livekit.api_secret", "must not be empty"}},
		{"bad listen", "http:\n  listen: nocolon\n", []string{"http.listen", "nocolon"}},
		{"two errors at once", "log:\n  level: loud\n  format: xml\n", []string{"log.level", "loud", "log.format", "xml"}},
		{"not yaml", "{{{", []string{"config: read"}},
		{"allowed url not rtmp", "room:\n  allowed_urls: [\"http://x/*\"]\n", []string{"room.allowed_urls[0]", "rtmp://"}},
		{"attribute without value", "room:\n  authorized_attribute: producer\n", []string{"room.authorized_attribute", "key=value"}},
		{"zero message rate", "room:\n  message_rate: 0\n", []string{"room.message_rate"}},
		{"hook not JSON", "hooks:\n  start: \"{outputs\"\n", []string{"hooks.start", "JSON object"}},
		{"hook sets the room", "hooks:\n  start: '{\"room\":\"x\"}'\n", []string{"hooks.start", "must not set room"}},
		{"destination without url", "destinations:\n  yt:\n    url: \"\"\n", []string{"destinations.yt", "exactly one of url or url_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.yaml), nil)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	path := writeFile(t, "livekit:\n  api_secret: hunter2-secret\n  url: ftp://nope\n")
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("want an error for the URL")
	}
	if strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("error leaks the secret: %v", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "roomcast.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDestinations(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "yt")
	if err := os.WriteFile(secret, []byte("rtmps://a.rtmps.youtube.com/live2/filekey\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "destinations:\n  YouTube:\n    url_file: "+secret+"\n  twitch:\n    url: \"\"\n")
	t.Setenv("ROOMCAST_DESTINATIONS_TWITCH_URL", "rtmp://live.twitch.tv/app/envkey")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"youtube": "rtmps://a.rtmps.youtube.com/live2/filekey", "twitch": "rtmp://live.twitch.tv/app/envkey"} {
		loc, err := c.Destinations[name].Location()
		if err != nil || loc != want {
			t.Errorf("destination %s = %q (%v), want %q", name, loc, err, want)
		}
	}

	_, err = Load(writeFile(t, "destinations:\n  bad:\n    url: http://host/app/leakykey\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "destinations.bad.url") || strings.Contains(err.Error(), "leakykey") {
		t.Errorf("bad destination: %v, want an error naming the key without the stream key", err)
	}
}
