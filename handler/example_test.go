package handler_test

import (
	"encoding/json"
	"fmt"

	"wsgate/handler"
)

// ExampleChannels_Publish publishes from outside any connection, as an HTTP
// API would.
func ExampleChannels_Publish() {
	h, err := handler.NewChannels(handler.ChannelsConfig{})
	if err != nil {
		panic(err)
	}
	n, err := h.Publish("news", json.RawMessage(`{"title":"hello"}`))
	fmt.Println(n, err)
	_, err = h.Publish("bad channel", json.RawMessage(`1`))
	fmt.Println(err)
	fmt.Printf("%+v\n", h.Stats())
	// Output:
	// 0 <nil>
	// handler: bad channel name
	// {Published:1 Delivered:0 Dropped:0 Rejected:0 Subscriptions:0 Channels:0 Remote:0 BrokerFailures:0}
}
