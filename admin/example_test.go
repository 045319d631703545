package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wsgate/wsgate/admin"
	"github.com/wsgate/wsgate/handler"
	"github.com/wsgate/wsgate/wsconn"
)

// Example serves the admin port next to a WebSocket server with a channels
// hub, and publishes to a channel nobody is subscribed to.
func Example() {
	channels, _ := handler.NewChannels(handler.ChannelsConfig{})
	ws, _ := wsconn.New(wsconn.Config{Addr: "127.0.0.1:0", Routes: map[string]wsconn.Handler{"/ws": channels}})
	if err := ws.Start(); err != nil {
		panic(err)
	}
	defer ws.Shutdown(context.Background())
	adm, err := admin.New(admin.Config{
		Addr:     "127.0.0.1:0",
		APIKey:   "an-example-key-not-for-production",
		WS:       ws,
		Channels: channels,
	})
	if err != nil {
		panic(err)
	}
	if err := adm.Start(); err != nil {
		panic(err)
	}
	defer adm.Shutdown(context.Background())
	base := "http://" + adm.Addr().String()

	req, _ := http.NewRequest("POST", base+"/api/publish", strings.NewReader(`{"channel":"news","data":"hi"}`))
	req.Header.Set("Authorization", "Bearer an-example-key-not-for-production")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	var published struct {
		Delivered int    `json:"delivered"`
		Offset    uint64 `json:"offset"` // the publication's place in the channel's history
		Epoch     string `json:"epoch"`  // random, per history
	}
	err = json.NewDecoder(resp.Body).Decode(&published)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, err, published.Delivered, published.Offset, published.Epoch != "")

	resp, err = http.Get(base + "/readyz")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.StatusCode, " ", string(body))
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// 200 <nil> 0 1 true
	// 200 ready
}
