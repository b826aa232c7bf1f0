package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeControl(t *testing.T) {
	const limit = 1024
	for _, tc := range []struct {
		name      string
		msg       string
		wantType  string
		wantCode  int    // 0: valid
		wantReqID string // echoed back even on error
		wantText  string // in the error message
	}{
		{"start", `{"v":1,"type":"start","requestId":"r1","outputs":[{"destination":"yt"}]}`, TypeStart, 0, "r1", ""},
		{"start without version", `{"type":"start","requestId":"r1"}`, TypeStart, 0, "r1", ""},
		{"stop own", `{"type":"stop","requestId":"r2"}`, TypeStop, 0, "r2", ""},
		{"stop by id", `{"type":"stop","requestId":"r2","broadcastId":"bc_1"}`, TypeStop, 0, "r2", ""},
		{"metadata", `{"type":"metadata","requestId":"m","handler":"onCuePoint","data":{"name":"ad"}}`, TypeMetadata, 0, "m", ""},
		{"add output", `{"type":"addOutput","requestId":"a","output":{"destination":"tw"}}`, TypeAddOutput, 0, "a", ""},
		{"remove output", `{"type":"removeOutput","requestId":"d","outputId":"out_2"}`, TypeRemoveOutput, 0, "d", ""},

		{"malformed", `{"type":"stop","requestId":"x1",`, "", CodeInvalidRequest, "x1", "not valid JSON"},
		{"malformed, id unreadable", `{"type":`, "", CodeInvalidRequest, "", "not valid JSON"},
		{"not an object", `[1,2]`, "", CodeInvalidRequest, "", "must be an object"},
		{"unknown type", `{"type":"explode","requestId":"x2"}`, "", CodeUnknownType, "x2", `"explode"`},
		{"unknown field", `{"type":"stop","requestId":"x3","force":true}`, TypeStop, CodeInvalidRequest, "x3", `unknown field "force"`},
		{"field of another type", `{"type":"stop","requestId":"x4","outputId":"out_1"}`, TypeStop, CodeInvalidRequest, "x4", `unknown field "outputId"`},
		{"missing type", `{"requestId":"x5"}`, "", CodeInvalidRequest, "x5", `"type" is required`},
		{"missing requestId", `{"type":"stop"}`, "", CodeInvalidRequest, "", `"requestId" is required`},
		{"requestId too long", `{"type":"stop","requestId":"` + strings.Repeat("x", 65) + `"}`, "", CodeInvalidRequest, "", "at most 64"},
		{"wrong field type", `{"type":"start","requestId":"x6","outputs":"rtmp://a/b/c"}`, TypeStart, CodeInvalidRequest, "x6", `"outputs" must be an array`},
		{"room in start", `{"type":"start","requestId":"x7","room":"other"}`, TypeStart, CodeInvalidRequest, "x7", `"room" is not allowed`},
		{"missing handler", `{"type":"metadata","requestId":"x8","data":{}}`, TypeMetadata, CodeInvalidRequest, "x8", `"handler" is required`},
		{"missing data", `{"type":"metadata","requestId":"x9","handler":"onCuePoint"}`, TypeMetadata, CodeInvalidRequest, "x9", `"data" is required`},
		{"data not an object", `{"type":"metadata","requestId":"x10","handler":"onCuePoint","data":[1]}`, TypeMetadata, CodeInvalidRequest, "x10", `"data" must be an object`},
		{"missing output", `{"type":"addOutput","requestId":"x11"}`, TypeAddOutput, CodeInvalidRequest, "x11", `"output" is required`},
		{"missing outputId", `{"type":"removeOutput","requestId":"x12"}`, TypeRemoveOutput, CodeInvalidRequest, "x12", `"outputId" is required`},
		{"future version", `{"v":2,"type":"stop","requestId":"x13"}`, "", CodeUnsupportedVer, "x13", "version 1"},
		{"trailing data", `{"type":"stop","requestId":"x14"} {}`, TypeStop, CodeInvalidRequest, "x14", "after the JSON object"},
		{"oversize", `{"requestId":"big","type":"metadata","handler":"onTextData","data":{"text":"` + strings.Repeat("a", limit) + `"}}`, "", CodeMessageTooLarge, "big", "limit is 1024"},
		{"nested requestId is not the id", `{"type":"start","outputs":[{"requestId":"no"}]}`, "", CodeInvalidRequest, "", `"requestId" is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := DecodeControl([]byte(tc.msg), limit)
			if msg.RequestID != tc.wantReqID {
				t.Errorf("requestId = %q, want %q", msg.RequestID, tc.wantReqID)
			}
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				if msg.Type != tc.wantType {
					t.Errorf("type = %q, want %q", msg.Type, tc.wantType)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want code %d", tc.wantCode)
			}
			if err.Code != tc.wantCode || err.Name != codeNames[tc.wantCode] {
				t.Errorf("error %d %s, want %d %s", err.Code, err.Name, tc.wantCode, codeNames[tc.wantCode])
			}
			if !strings.Contains(err.Message, tc.wantText) {
				t.Errorf("message %q does not say %q", err.Message, tc.wantText)
			}
		})
	}
}

func TestDecodeControlFields(t *testing.T) {
	msg, err := DecodeControl([]byte(`{"type":"metadata","requestId":"1","broadcastId":"bc_9","handler":"onCuePoint","data":{"name":"ad","time":1.5}}`), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if msg.BroadcastID != "bc_9" || msg.Handler != "onCuePoint" || msg.Data["name"] != "ad" || msg.Data["time"] != 1.5 {
		t.Errorf("decoded %+v", msg)
	}
	msg, err = DecodeControl([]byte(`{"type":"start","requestId":"2","identity":"alice","outputs":[{"destination":"yt"},{"url":"rtmp://h/app/key"}]}`), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Start.Identity != "alice" || len(msg.Start.Outputs) != 2 || msg.Start.Outputs[0].Destination != "yt" || msg.Start.Outputs[1].URL != "rtmp://h/app/key" {
		t.Errorf("decoded start %+v", msg.Start)
	}
}

// FuzzDecodeControl: whatever a participant sends, the decoder returns a
// message or an *Error with a known code, never panics, and its answer
// marshals to valid JSON (it goes back into the room).
func FuzzDecodeControl(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"type":"start","requestId":"r1","outputs":[{"destination":"yt"}],"identity":"a"}`,
		`{"type":"stop","requestId":"r2","broadcastId":"bc_1"}`,
		`{"type":"metadata","requestId":"m","handler":"onCuePoint","data":{"name":"ad","parameters":{"a":[1,2,{"b":null}]}}}`,
		`{"type":"addOutput","requestId":"a","output":{"url":"rtmp://h/a/k"}}`,
		`{"type":"removeOutput","requestId":"d","outputId":"out_2"}`,
		`{"type":"stop","requestId":"x1",`,
		`{"requestId":{"requestId":"deep"},"type":"stop"}`,
		`[[[[[[[[[[]]]]]]]]]]`,
		`{"type":"start","requestId":"\ud800"}`,
		"{\"type\":\"stop\",\"requestId\":\"\xff\"}",
		`null`, ``, `"requestId"`, `{"v":1e400}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := DecodeControl(data, 4096)
		if err != nil {
			if _, ok := codeNames[err.Code]; !ok || err.Message == "" {
				t.Fatalf("error without a known code or message: %+v", err)
			}
		} else if msg.RequestID == "" || msg.Type == "" {
			t.Fatalf("accepted a message without requestId or type: %q", data)
		}
		if len(msg.RequestID) > maxRequestID {
			t.Fatalf("requestId of %d bytes echoed", len(msg.RequestID))
		}
		out, jerr := json.Marshal(Status{V: ProtocolVersion, Type: TypeError, RequestID: msg.RequestID, Error: err})
		if jerr != nil || !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("answer does not marshal: %v", jerr)
		}
	})
}
