// Package avc holds small H.264 helpers shared by the test publisher and the
// tests: splitting access units into NAL units and fingerprinting the coded
// picture so that the same frame can be recognised after it crossed WebRTC,
// GStreamer and FLV.
package avc

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// NAL unit types used by roomcast (ITU-T H.264 table 7-1).
const (
	TypeSlice = 1  // coded slice of a non-IDR picture
	TypeIDR   = 5  // coded slice of an IDR picture
	TypeSEI   = 6  // supplemental enhancement information
	TypeSPS   = 7  // sequence parameter set
	TypePPS   = 8  // picture parameter set
	TypeAUD   = 9  // access unit delimiter
	TypeFill  = 12 // filler data
)

// SplitAnnexB splits an Annex-B byte stream (NAL units separated by 00 00 01
// or 00 00 00 01 start codes) into NAL units without their start codes.
// The returned slices alias b. Bytes before the first start code are ignored.
func SplitAnnexB(b []byte) [][]byte {
	var nalus [][]byte
	start := -1 // start of the current NAL unit, -1 before the first start code
	i := 0
	for i+2 < len(b) {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			i++
			continue
		}
		if start >= 0 {
			nalus = appendNAL(nalus, b[start:i])
		}
		i += 3
		start = i
	}
	if start >= 0 {
		nalus = appendNAL(nalus, b[start:])
	}
	return nalus
}

// appendNAL appends nal without the zero bytes that belong to the next start
// code (the 4-byte form) or pad the stream (trailing_zero_8bits).
func appendNAL(nalus [][]byte, nal []byte) [][]byte {
	for len(nal) > 0 && nal[len(nal)-1] == 0 {
		nal = nal[:len(nal)-1]
	}
	if len(nal) == 0 {
		return nalus
	}
	return append(nalus, nal)
}

// SplitAVCC splits an AVCC sample (each NAL unit prefixed by its big-endian
// length in lengthSize bytes, as in MP4 and FLV) into NAL units. The returned
// slices alias b.
func SplitAVCC(b []byte, lengthSize int) ([][]byte, error) {
	if lengthSize != 1 && lengthSize != 2 && lengthSize != 4 {
		return nil, fmt.Errorf("avc: NAL length size %d, want 1, 2 or 4", lengthSize)
	}
	var nalus [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < lengthSize {
			return nil, fmt.Errorf("avc: truncated NAL length at offset %d of %d", off, len(b))
		}
		var n int
		switch lengthSize {
		case 1:
			n = int(b[off])
		case 2:
			n = int(binary.BigEndian.Uint16(b[off:]))
		case 4:
			n = int(binary.BigEndian.Uint32(b[off:]))
		}
		off += lengthSize
		if n > len(b)-off {
			return nil, fmt.Errorf("avc: NAL of %d bytes at offset %d overruns sample of %d bytes", n, off, len(b))
		}
		if n > 0 {
			nalus = append(nalus, b[off:off+n])
		}
		off += n
	}
	return nalus, nil
}

// NALType returns the nal_unit_type of a NAL unit, or 0 for an empty one.
func NALType(nal []byte) uint8 {
	if len(nal) == 0 {
		return 0
	}
	return nal[0] & 0x1f
}

// IsKeyframe reports whether the access unit holds an IDR slice.
func IsKeyframe(nalus [][]byte) bool {
	for _, nal := range nalus {
		if NALType(nal) == TypeIDR {
			return true
		}
	}
	return false
}

// IsVCL reports whether a NAL unit carries coded picture data (types 1..5).
func IsVCL(nal []byte) bool {
	t := NALType(nal)
	return t >= TypeSlice && t <= TypeIDR
}

// VCLHash fingerprints an access unit by hashing only its VCL NAL units, in
// order. Parameter sets, SEI and delimiters are left out because the path
// through the bridge may move or drop them (h264parse puts SPS/PPS into the
// FLV sequence header); the coded slices themselves pass through unchanged.
func VCLHash(nalus [][]byte) [32]byte {
	h := sha256.New()
	for _, nal := range nalus {
		if IsVCL(nal) {
			h.Write(nal)
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
