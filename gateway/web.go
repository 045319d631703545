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

// The JavaScript client, for browsers and Node: GET /wsgate.js, and its
// TypeScript declarations.
//
//go:embed web/wsgate.js
var clientJS []byte

//go:embed web/wsgate.d.ts
var clientDTS []byte

func demoPages() map[string]wsconn.Page {
	return map[string]wsconn.Page{
		"/":            {ContentType: "text/html; charset=utf-8", Body: chatPage},
		"/wsgate.js":   {ContentType: "text/javascript; charset=utf-8", Body: clientJS},
		"/wsgate.d.ts": {ContentType: "application/typescript; charset=utf-8", Body: clientDTS},
	}
}
