package handler_test

import (
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/handler"
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
	// An API caller gets its error back; only client requests that are
	// answered with an error count as rejected.
	s := h.Stats()
	fmt.Println(s.Published, s.Rejected, s.RejectedByCode[handler.CodeBadChannel])
	// Output:
	// 0 <nil>
	// handler: bad channel name
	// 1 0 0
}
