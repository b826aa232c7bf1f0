package egress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestTagSplitterAnyBoundaries(t *testing.T) {
	tags := []Tag{
		{Type: TagScript, Timestamp: 0, Data: []byte("meta")},
		{Type: TagVideo, Timestamp: 0, Data: []byte{0x17, 0, 0, 0, 0, 1, 2}},
		{Type: TagAudio, Timestamp: 21, Data: []byte{0xaf, 1, 9, 9}},
		{Type: TagVideo, Timestamp: 0x01020304, Data: []byte{0x27, 1, 0, 0, 0}},
	}
	stream := []byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
	for _, tag := range tags {
		stream = tag.AppendTo(stream)
	}
	for _, chunk := range []int{1, 3, 7, 16, len(stream)} {
		var s tagSplitter
		var got []Tag
		for i := 0; i < len(stream); i += chunk {
			end := min(i+chunk, len(stream))
			err := s.write(stream[i:end], func(tag Tag) {
				tag.Data = bytes.Clone(tag.Data)
				got = append(got, tag)
			})
			if err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
		}
		if len(got) != len(tags) {
			t.Fatalf("chunk %d: got %d tags, want %d", chunk, len(got), len(tags))
		}
		for i := range tags {
			if got[i].Type != tags[i].Type || got[i].Timestamp != tags[i].Timestamp || !bytes.Equal(got[i].Data, tags[i].Data) {
				t.Errorf("chunk %d tag %d: got %+v, want %+v", chunk, i, got[i], tags[i])
			}
		}
	}
}

func TestTagKinds(t *testing.T) {
	for _, tc := range []struct {
		name               string
		tag                Tag
		key, header, media bool
	}{
		{"avc keyframe", Tag{Type: TagVideo, Data: []byte{0x17, 1}}, true, false, true},
		{"avc inter", Tag{Type: TagVideo, Data: []byte{0x27, 1}}, false, false, true},
		{"avc sequence header", Tag{Type: TagVideo, Data: []byte{0x17, 0}}, false, true, false},
		{"aac sequence header", Tag{Type: TagAudio, Data: []byte{0xaf, 0}}, false, true, false},
		{"aac frame", Tag{Type: TagAudio, Data: []byte{0xaf, 1}}, false, false, true},
		{"script", Tag{Type: TagScript, Data: []byte{2}}, false, false, false},
	} {
		if got := tc.tag.IsKeyframe(); got != tc.key {
			t.Errorf("%s: IsKeyframe = %v", tc.name, got)
		}
		if got := tc.tag.IsSequenceHeader(); got != tc.header {
			t.Errorf("%s: IsSequenceHeader = %v", tc.name, got)
		}
		if got := tc.tag.IsMedia(); got != tc.media {
			t.Errorf("%s: IsMedia = %v", tc.name, got)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in       string
		redacted string // "" means the URL must be rejected
		errHas   string
	}{
		{"rtmp://a.rtmp.youtube.com/live2/abcd-efgh-1234", "rtmp://a.rtmp.youtube.com/live2/****", ""},
		{"rtmps://live.twitch.tv:443/app/live_1_secret", "rtmps://live.twitch.tv:443/app/****", ""},
		{"rtmp://127.0.0.1:1935/live/key?auth=secret", "rtmp://127.0.0.1:1935/live/****", ""},
		{"rtmp://host/a/b/key", "rtmp://host/a/b/****", ""},
		{"http://host/live/secretkey", "", `scheme "http" is not allowed`},
		{"srt://host/live/secretkey", "", "use rtmp:// or rtmps://"},
		{"rtmp://host/live", "", "no application and stream key"},
		{"rtmp://host/live/", "", "no application and stream key"},
		{"rtmp:///live/secretkey", "", "no host"},
		{"rtmp://user:secretkey@host/live/k", "", "user info"},
		{"rtmp://ho st/live/secretkey", "", "cannot parse"},
	} {
		u, err := ParseURL(tc.in)
		if tc.redacted == "" {
			if err == nil {
				t.Errorf("ParseURL(%q) succeeded, want an error", tc.in)
				continue
			}
			if !errors.Is(err, ErrInvalidURL) || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("ParseURL(%q) = %v, want ErrInvalidURL mentioning %q", tc.in, err, tc.errHas)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURL(%q) error leaks the key: %v", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if u.String() != tc.redacted || u.Secret() != tc.in {
			t.Errorf("ParseURL(%q) = %q / %q", tc.in, u.String(), u.Secret())
		}
		msg := u.Redact("could not connect to " + tc.in + " (stream " + tc.in[strings.LastIndexByte(tc.in, '/')+1:] + ")")
		if strings.Contains(msg, "secret") || strings.Contains(msg, "abcd-efgh") {
			t.Errorf("Redact leaks the key: %q", msg)
		}
	}
}
