package handler

import (
	"slices"
	"testing"

	"github.com/wsgate/wsgate/wsconn"
)

func TestEcho(t *testing.T) {
	tests := []struct {
		name string
		typ  wsconn.MessageType
		data string
	}{
		{name: "text", typ: wsconn.Text, data: "hello"},
		{name: "empty text", typ: wsconn.Text, data: ""},
		{name: "binary", typ: wsconn.Binary, data: "\x00\xff\x01"},
		{name: "json is not interpreted", typ: wsconn.Text, data: `{"op":"subscribe","channel":"a"}`},
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
	var h wsconn.Handler = Echo{}
	data := []byte("hello")
	if got := testing.AllocsPerRun(100, func() { h.OnMessage(c, wsconn.Text, data) }); got != 0 {
		t.Errorf("got %v allocations per message, want 0", got)
	}
}
