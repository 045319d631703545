package handler

import (
	"slices"
	"testing"
)

func TestEcho(t *testing.T) {
	tests := []struct {
		name string
		typ  MessageType
		data string
	}{
		{name: "text", typ: Text, data: "hello"},
		{name: "empty text", typ: Text, data: ""},
		{name: "binary", typ: Binary, data: "\x00\xff\x01"},
		{name: "json is not interpreted", typ: Text, data: `{"op":"subscribe","channel":"a"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeConn()
			Echo{}.OnMessage(c, tt.typ, []byte(tt.data))
			want := []sentMsg{{typ: tt.typ, data: tt.data}}
			if !slices.Equal(c.sent, want) {
				t.Errorf("got sent %+v, want %+v", c.sent, want)
			}
		})
	}
}

func TestEchoAllocs(t *testing.T) {
	c := &fakeConn{id: lastConnID.Add(1), discard: true}
	var h Handler = Echo{}
	data := []byte("hello")
	if got := testing.AllocsPerRun(100, func() { h.OnMessage(c, Text, data) }); got != 0 {
		t.Errorf("got %v allocations per message, want 0", got)
	}
}
