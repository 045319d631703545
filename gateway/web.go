package gateway

import (
	_ "embed"

	"github.com/wsgate/wsgate/wsconn"
)

// The chat demo, served at GET / on the WebSocket port: go run . and open
// http://localhost:8080.
//
//go:embed web/index.html
var chatPage []byte

func demoPages() map[string]wsconn.Page {
	return map[string]wsconn.Page{"/": {ContentType: "text/html; charset=utf-8", Body: chatPage}}
}
