package wsproto

import (
	"encoding/json"
	"testing"
)

// TestCodes checks that every error code has one index and a message, and
// that other strings have neither.
func TestCodes(t *testing.T) {
	codes := Codes()
	if len(codes) != NumCodes {
		t.Fatalf("got %d codes, want NumCodes = %d", len(codes), NumCodes)
	}
	for i, code := range codes {
		if CodeIndex(code) != i || CodeAt(i) != code {
			t.Errorf("code %s: got index %d, CodeAt %q; want %d (listed twice?)", code, CodeIndex(code), CodeAt(i), i)
		}
		if ErrorMessage(code) == "" {
			t.Errorf("code %s has no message", code)
		}
	}
	for _, s := range []string{"", "bad_jsonx", "ack", "BAD_JSON"} {
		if i := CodeIndex(s); i != -1 || ErrorMessage(s) != "" {
			t.Errorf("%q: got index %d, message %q; want -1 and none", s, i, ErrorMessage(s))
		}
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		msg, op, id, code string
	}{
		{`{"op":"subscribe","channel":"a","id":"1"}`, OpSubscribe, `"1"`, ""},
		{` {"op":"publish","channel":"a","data":[1],"id":2}`, OpPublish, `2`, ""},
		{`{"op":"subscribe","id":null}`, OpSubscribe, ``, ""},
		{`{"op":1,"id":3}`, "", `3`, CodeBadJSON},                // a type error keeps the id
		{`{"op":"publish","id":{}}`, OpPublish, ``, CodeBadJSON}, // an object is no id
		{`[1]`, "", ``, CodeBadJSON},
		{``, "", ``, CodeBadJSON},
	}
	for _, tt := range tests {
		req, code := ParseRequest([]byte(tt.msg))
		if req.Op != tt.op || string(req.ID) != tt.id || code != tt.code {
			t.Errorf("ParseRequest(%q) = op %q id %q code %q; want %q %q %q", tt.msg, req.Op, req.ID, code, tt.op, tt.id, tt.code)
		}
	}
}

func TestParseRecover(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want *Position
		code string
	}{
		{`{"op":"subscribe","channel":"a","recover":{"offset":5,"epoch":"x"}}`, &Position{5, "x"}, ""},
		{`{"op":"subscribe","channel":"a","recover":null}`, nil, ""},
		{`{"op":"subscribe","channel":"a","recover":{"offset":-1}}`, nil, CodeBadJSON},
		{`{"op":"subscribe","channel":"a","recover":{"offset":18446744073709551616}}`, nil, CodeBadJSON},
		{`{"op":"subscribe","channel":"a","recover":"5"}`, nil, CodeBadJSON},
	} {
		req, code := ParseRequest([]byte(tt.msg))
		if code != tt.code || code == "" && (req.Recover == nil) != (tt.want == nil) || tt.want != nil && code == "" && *req.Recover != *tt.want {
			t.Errorf("ParseRequest(%s) = recover %+v code %q; want %+v %q", tt.msg, req.Recover, code, tt.want, tt.code)
		}
	}
}

func TestAppend(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{string(AppendPush(nil, "news", []byte(`{"a":1}`))), `{"channel":"news","data":{"a":1}}`},
		{string(AppendAck(nil, json.RawMessage(`"x"`), -1)), `{"op":"ack","id":"x"}`},
		{string(AppendAck(nil, json.RawMessage(`7`), 2)), `{"op":"ack","id":7,"delivered":2}`},
		{string(AppendPushAt(nil, "news", 7, []byte(`1`))), `{"channel":"news","offset":7,"data":1}`},
		{string(AppendPushAt(nil, "news", 0, []byte(`1`))), `{"channel":"news","data":1}`},
		{string(AppendAckWith(nil, json.RawMessage(`1`), Ack{Delivered: -1})), `{"op":"ack","id":1}`},
		{string(AppendAckWith(nil, json.RawMessage(`1`), Ack{Delivered: 2, Position: Position{5, "e1"}})), `{"op":"ack","id":1,"delivered":2,"offset":5,"epoch":"e1"}`},
		{string(AppendAckWith(nil, json.RawMessage(`1`), Ack{Delivered: -1, Position: Position{0, "e1"}, Recovery: RecoveryOK})), `{"op":"ack","id":1,"offset":0,"epoch":"e1","recovered":true}`},
		{string(AppendAckWith(nil, json.RawMessage(`1`), Ack{Delivered: -1, Recovery: ReasonHistoryOff})), `{"op":"ack","id":1,"recovered":false,"reason":"history_off"}`},
		{string(AppendHistory(nil, json.RawMessage(`"h"`), Position{3, "e"}, [][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`)})), `{"op":"ack","id":"h","offset":3,"epoch":"e","publications":[{"a":1},{"b":2}]}`},
		{string(AppendHistory(nil, json.RawMessage(`"h"`), Position{}, nil)), `{"op":"ack","id":"h","publications":[]}`},
		{string(AppendError(nil, nil, CodeNotSubscribed)), `{"op":"error","code":"not_subscribed","message":"not subscribed to this channel"}`},
	} {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
	if !ValidChannel("a.b:c@d/e-f_9", 128) || ValidChannel("", 128) || ValidChannel("a b", 128) || ValidChannel("abc", 2) {
		t.Error("ValidChannel: wrong answer")
	}
}
