package wsconn

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// deflateAccepted is the answer to an acceptable offer without
// server_max_window_bits.
const deflateAccepted = "permessage-deflate;server_no_context_takeover;client_no_context_takeover"

// Autobahn|Testsuite's permessage-deflate offers (cases 13.1 to 13.7):
// client_no_context_takeover and client_max_window_bits always, then what
// each case asks of the server.
const (
	abOffer   = "permessage-deflate; client_no_context_takeover; client_max_window_bits"
	abOfferNC = abOffer + "; server_no_context_takeover"
)

// negotiateCases are offers (the Sec-WebSocket-Extensions headers of one
// request) and what the server must answer (RFC 7692 section 7.1): the
// response and the window the server then compresses within, or "" to
// decline every offer. Shared by TestNegotiateDeflate (in memory) and
// TestConformanceCompressionWindow (on the wire).
var negotiateCases = []struct {
	name   string
	offers []string
	want   string
	bits   uint8 // the server's window; 15 unless server_max_window_bits says less
}{
	// Accepted as they are.
	{"plain", []string{"permessage-deflate"}, deflateAccepted, 15},
	{"both no context takeover", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, deflateAccepted, 15},
	{"client window without value", []string{"permessage-deflate; client_max_window_bits"}, deflateAccepted, 15},
	{"client window 8", []string{"permessage-deflate; client_max_window_bits=8"}, deflateAccepted, 15},
	{"client window 15", []string{"permessage-deflate; client_max_window_bits=15"}, deflateAccepted, 15},
	{"client window quoted", []string{`permessage-deflate; client_max_window_bits="10"`}, deflateAccepted, 15},
	{"server window 15", []string{"permessage-deflate; server_max_window_bits=15"}, deflateAccepted + ";server_max_window_bits=15", 15},
	{"server window 14", []string{"permessage-deflate; server_max_window_bits=14"}, deflateAccepted + ";server_max_window_bits=14", 14},
	{"server window 9", []string{"permessage-deflate; server_max_window_bits=9"}, deflateAccepted + ";server_max_window_bits=9", 9},
	{"server window 8", []string{"permessage-deflate; server_max_window_bits=8"}, deflateAccepted + ";server_max_window_bits=8", 8},
	{"server window quoted", []string{`permessage-deflate; server_max_window_bits="12"`}, deflateAccepted + ";server_max_window_bits=12", 12},
	{"both windows", []string{"permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"}, deflateAccepted + ";server_max_window_bits=10", 10},
	{"Autobahn 13.1", []string{abOffer}, deflateAccepted, 15},
	{"Autobahn 13.2", []string{abOfferNC}, deflateAccepted, 15},
	{"Autobahn 13.3 window 8", []string{abOffer + "; server_max_window_bits=8"}, deflateAccepted + ";server_max_window_bits=8", 8},
	{"Autobahn 13.3 window 9", []string{abOffer + "; server_max_window_bits=9"}, deflateAccepted + ";server_max_window_bits=9", 9},
	{"Autobahn 13.4", []string{abOffer + "; server_max_window_bits=15"}, deflateAccepted + ";server_max_window_bits=15", 15},
	{"Autobahn 13.5 window 8", []string{abOfferNC + "; server_max_window_bits=8"}, deflateAccepted + ";server_max_window_bits=8", 8},
	{"Autobahn 13.5 window 9", []string{abOfferNC + "; server_max_window_bits=9"}, deflateAccepted + ";server_max_window_bits=9", 9},
	{"Autobahn 13.6", []string{abOfferNC + "; server_max_window_bits=15"}, deflateAccepted + ";server_max_window_bits=15", 15},
	{"Autobahn 13.7", []string{abOfferNC + "; server_max_window_bits=9, " + abOfferNC + ", " + abOffer}, deflateAccepted + ";server_max_window_bits=9", 9},
	{"window 9 without client_no_context_takeover", []string{"permessage-deflate; client_max_window_bits; server_max_window_bits=9"}, deflateAccepted + ";server_max_window_bits=9", 9},

	// The first acceptable offer is taken, from any header.
	{"bad then good", []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=10"}, deflateAccepted + ";server_max_window_bits=10", 10},
	{"window then plain", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, deflateAccepted + ";server_max_window_bits=10", 10},
	{"plain then window", []string{"permessage-deflate, permessage-deflate; server_max_window_bits=10"}, deflateAccepted, 15},
	{"another extension first", []string{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=15"}, deflateAccepted, 15},
	{"unknown then good", []string{"permessage-deflate; unknown_param, permessage-deflate"}, deflateAccepted, 15},
	{"bad header then good header", []string{"permessage-deflate; server_max_window_bits=16", "permessage-deflate; server_max_window_bits=9"}, deflateAccepted + ";server_max_window_bits=9", 9},

	// Declined (RFC 7692 section 7: bad value, duplicate, unknown).
	{"another extension only", []string{"x-webkit-deflate-frame"}, "", 0},
	{"server window without value", []string{"permessage-deflate; server_max_window_bits"}, "", 0},
	{"server window 7", []string{"permessage-deflate; server_max_window_bits=7"}, "", 0},
	{"server window 16", []string{"permessage-deflate; server_max_window_bits=16"}, "", 0},
	{"server window 0", []string{"permessage-deflate; server_max_window_bits=0"}, "", 0},
	{"server window leading zero", []string{"permessage-deflate; server_max_window_bits=09"}, "", 0},
	{"server window sign", []string{"permessage-deflate; server_max_window_bits=+9"}, "", 0},
	{"server window x", []string{"permessage-deflate; server_max_window_bits=x"}, "", 0},
	{"server window empty quoted", []string{`permessage-deflate; server_max_window_bits=""`}, "", 0},
	{"server window twice", []string{"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9"}, "", 0},
	{"client window 7", []string{"permessage-deflate; client_max_window_bits=7"}, "", 0},
	{"client window 16", []string{"permessage-deflate; client_max_window_bits=16"}, "", 0},
	{"client window x", []string{"permessage-deflate; client_max_window_bits=x"}, "", 0},
	{"client window empty quoted", []string{`permessage-deflate; client_max_window_bits=""`}, "", 0},
	{"client window twice without value", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits"}, "", 0},
	{"client window twice", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, "", 0},
	{"server no context takeover with value", []string{"permessage-deflate; server_no_context_takeover=1"}, "", 0},
	{"client no context takeover with value", []string{`permessage-deflate; client_no_context_takeover=""`}, "", 0},
	{"server no context takeover twice", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, "", 0},
	{"client no context takeover twice", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, "", 0},
	{"unknown parameter", []string{"permessage-deflate; unknown_param"}, "", 0},
	{"parameter names are exact", []string{"permessage-deflate; Server_Max_Window_Bits=9"}, "", 0},
}

// TestNegotiateDeflate runs each offer through gobwas/ws's Upgrader in
// memory with the server's negotiation, and checks the answer it writes
// and the window the connection would compress within.
func TestNegotiateDeflate(t *testing.T) {
	for _, tt := range negotiateCases {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			for _, o := range tt.offers {
				headers = append(headers, "Sec-WebSocket-Extensions: "+o)
			}
			n := &deflateNegotiation{}
			u := ws.Upgrader{Negotiate: n.negotiate}
			io := &hsIO{r: sliceReader{b: []byte(upgradeRequest("/echo", testKey, headers...))}}
			if _, err := u.Upgrade(io); err != nil {
				t.Fatalf("got upgrade error %v, want none", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(io.out)), nil)
			if err != nil {
				t.Fatalf("got unreadable response %q: %v", io.out, err)
			}
			if got := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", "); got != tt.want {
				t.Fatalf("got Sec-WebSocket-Extensions %q, want %q", got, tt.want)
			}
			if n.accepted != (tt.want != "") {
				t.Fatalf("got accepted %v, want %v", n.accepted, tt.want != "")
			}
			if n.accepted && n.windowBits != tt.bits {
				t.Fatalf("got server window bits %d, want %d", n.windowBits, tt.bits)
			}
		})
	}
}
