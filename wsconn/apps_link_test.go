package wsconn_test

import (
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// wsconn's internal tests serve handler.Channels at /ws, which they cannot
// import themselves: handler imports wsconn.
func init() {
	wsconn.NewTestChannels = func() (wsconn.Handler, error) {
		// No history: these tests compare pushes byte for byte.
		h, err := handler.NewChannels(handler.ChannelsConfig{Rules: []handler.ChannelRule{}})
		if err != nil {
			return nil, err
		}
		return testChannels{h}, nil
	}
}

// testChannels is handler.Channels with the counts wsconn's tests check.
type testChannels struct{ *handler.Channels }

func (c testChannels) Counts() wsconn.ChannelsCounts {
	s := c.Stats()
	return wsconn.ChannelsCounts{Published: s.Published, Delivered: s.Delivered, Dropped: s.Dropped,
		Rejected: s.Rejected, Subscriptions: s.Subscriptions}
}
