package wsconn

import (
	"encoding/json"
	"errors"
)

// The applications these tests serve. Package handler imports this one, so
// tests in package wsconn cannot import it: echoHandler is handler.Echo
// again, and the publish/subscribe hub of the /ws protocol is
// handler.Channels itself, which apps_link_test.go, in package wsconn_test,
// hands over through NewTestChannels.

// echoHandler sends every message back to its sender unchanged, as
// handler.Echo does.
type echoHandler struct{ Base }

func (echoHandler) OnMessage(c Conn, t MessageType, data []byte) {
	_ = c.Send(t, data)
}

// channelsHandler is what the tests use of handler.Channels: a Handler,
// Publish from outside any connection, and some of its statistics.
type channelsHandler interface {
	Handler
	Publish(channel string, data json.RawMessage) (int, error)
	Counts() ChannelsCounts
}

// ChannelsCounts are the handler.ChannelsStats fields the tests check.
type ChannelsCounts struct {
	Published, Delivered, Dropped, Rejected uint64
	Subscriptions                           int64
}

// NewTestChannels returns a handler.Channels with the default config and
// a Counts method. It is set by package wsconn_test (apps_link_test.go)
// before any test runs.
var NewTestChannels func() (Handler, error)

// newChannels returns a new handler.Channels with the default config.
func newChannels() (channelsHandler, error) {
	if NewTestChannels == nil {
		return nil, errors.New("NewTestChannels is not set: apps_link_test.go is missing")
	}
	h, err := NewTestChannels()
	if err != nil {
		return nil, err
	}
	ch, ok := h.(channelsHandler)
	if !ok {
		return nil, errors.New("NewTestChannels returned a Handler without Publish or Counts")
	}
	return ch, nil
}
