package avc

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

var (
	sps   = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda}
	pps   = []byte{0x68, 0xce, 0x3c, 0x80}
	aud   = []byte{0x09, 0xf0}
	sei   = []byte{0x06, 0x05, 0x01, 0x80}
	idr   = []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff}
	slice = []byte{0x41, 0x9a, 0x00, 0x00, 0x03, 0x01, 0x7f}
)

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestSplitAnnexB(t *testing.T) {
	sc3 := []byte{0, 0, 1}
	sc4 := []byte{0, 0, 0, 1}
	tests := []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"empty", nil, nil},
		{"no start code", []byte{0x65, 0x01, 0x02}, nil},
		{"start code only", sc4, nil},
		{"one nal 4-byte", join(sc4, idr), [][]byte{idr}},
		{"one nal 3-byte", join(sc3, slice), [][]byte{slice}},
		{"keyframe au", join(sc4, aud, sc4, sps, sc4, pps, sc3, idr), [][]byte{aud, sps, pps, idr}},
		{"mixed start codes", join(sc3, sei, sc4, slice), [][]byte{sei, slice}},
		{"leading garbage", join([]byte{0xff, 0xee}, sc4, slice), [][]byte{slice}},
		{"trailing zero bytes", join(sc4, idr, []byte{0, 0}), [][]byte{idr}},
		{"empty nal between start codes", join(sc4, sc4, slice), [][]byte{slice}},
		{"emulation prevention kept", join(sc4, slice, sc4, idr), [][]byte{slice, idr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitAnnexB(tt.in)
			if !equalNALs(got, tt.want) {
				t.Errorf("SplitAnnexB(% x) = % x, want % x", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitAVCC(t *testing.T) {
	tests := []struct {
		name       string
		in         []byte
		lengthSize int
		want       [][]byte
		wantErr    bool
	}{
		{"empty", nil, 4, nil, false},
		{"one nal", join([]byte{0, 0, 0, 6}, idr), 4, [][]byte{idr}, false},
		{"two nals", join([]byte{0, 0, 0, 4}, sei, []byte{0, 0, 0, 7}, slice), 4, [][]byte{sei, slice}, false},
		{"length size 2", join([]byte{0, 5}, sps, []byte{0, 4}, pps), 2, [][]byte{sps, pps}, false},
		{"length size 1", join([]byte{2}, aud), 1, [][]byte{aud}, false},
		{"zero length skipped", join([]byte{0, 0, 0, 0}, []byte{0, 0, 0, 6}, idr), 4, [][]byte{idr}, false},
		{"overrun", join([]byte{0, 0, 0, 9}, idr), 4, nil, true},
		{"truncated length", []byte{0, 0}, 4, nil, true},
		{"bad length size", join([]byte{0, 0, 6}, idr), 3, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitAVCC(tt.in, tt.lengthSize)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SplitAVCC error = %v, wantErr %v", err, tt.wantErr)
			}
			if !equalNALs(got, tt.want) {
				t.Errorf("SplitAVCC = % x, want % x", got, tt.want)
			}
		})
	}
}

func TestNALTypeAndKeyframe(t *testing.T) {
	tests := []struct {
		name     string
		nalus    [][]byte
		types    []uint8
		keyframe bool
	}{
		{"none", nil, nil, false},
		{"empty nal", [][]byte{{}}, []uint8{0}, false},
		{"idr au", [][]byte{sps, pps, idr}, []uint8{TypeSPS, TypePPS, TypeIDR}, true},
		{"p frame", [][]byte{aud, slice}, []uint8{TypeAUD, TypeSlice}, false},
		{"parameter sets alone", [][]byte{sps, pps}, []uint8{TypeSPS, TypePPS}, false},
		{"forbidden and ref bits ignored", [][]byte{{0xe5}}, []uint8{TypeIDR}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, nal := range tt.nalus {
				if got := NALType(nal); got != tt.types[i] {
					t.Errorf("NALType(% x) = %d, want %d", nal, got, tt.types[i])
				}
			}
			if got := IsKeyframe(tt.nalus); got != tt.keyframe {
				t.Errorf("IsKeyframe = %v, want %v", got, tt.keyframe)
			}
		})
	}
}

func TestVCLHash(t *testing.T) {
	// The same access unit as the encoder writes it (Annex-B with AUD and
	// parameter sets) and as it leaves an FLV tag (AVCC, parameter sets moved
	// to the sequence header) must hash the same.
	annexB := SplitAnnexB(join([]byte{0, 0, 0, 1}, aud, []byte{0, 0, 0, 1}, sps, []byte{0, 0, 0, 1}, pps, []byte{0, 0, 1}, idr))
	avcc, err := SplitAVCC(join([]byte{0, 0, 0, 4}, sei, []byte{0, 0, 0, 6}, idr), 4)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		a, b  [][]byte
		equal bool
	}{
		{"annex-b vs avcc", annexB, avcc, true},
		{"non-vcl ignored", [][]byte{sps, slice}, [][]byte{slice, aud}, true},
		{"different slices", [][]byte{idr}, [][]byte{slice}, false},
		{"order matters", [][]byte{idr, slice}, [][]byte{slice, idr}, false},
		{"no vcl equals empty", [][]byte{sps, pps}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VCLHash(tt.a) == VCLHash(tt.b); got != tt.equal {
				t.Errorf("VCLHash equal = %v, want %v", got, tt.equal)
			}
		})
	}
	if got, want := VCLHash([][]byte{sps, idr, slice}), sha256.Sum256(join(idr, slice)); got != want {
		t.Errorf("VCLHash = %x, want sha256 of the VCL bytes %x", got, want)
	}
}

func equalNALs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
