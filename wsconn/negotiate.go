package wsconn

import (
	"strconv"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// Negotiating permessage-deflate (RFC 7692 section 7.1). gobwas/ws's
// Upgrader splits the Sec-WebSocket-Extensions headers into offers and
// calls deflateNegotiation.negotiate with each, in order; the first
// acceptable permessage-deflate offer is accepted and later ones are
// ignored (RFC 6455 section 9.1: offers come in order of preference).
//
// wsflate.Extension.Negotiate is not used: it declines every offer with
// server_max_window_bits, even 15, which its compressor could honour; it
// lets client_max_window_bits through twice when the first has no value;
// and a malformed offer is an error, which gobwas answers with 500, where
// RFC 7692 section 5 has the server decline it and consider the next.
//
// What the server answers, and why:
//   - server_no_context_takeover and client_no_context_takeover, always:
//     no compression state is kept between messages either way, so a
//     connection holds no flate window while idle (docs/design.md invariant
//     3). A server may answer client_no_context_takeover whether or not
//     the client offered it (section 7.1.1.2), and server_no_context_takeover
//     is ours to declare (section 7.1.1.1).
//   - server_max_window_bits=N when the offer has it (N is 8 to 15), and
//     only then: section 7.1.2.1 makes the server answer it to accept the
//     offer, with N or less. For 15 the ordinary compressor fits (its
//     window is 32 KiB); below, the connection gets Huffman-only frames
//     (PreparedMessage.HuffmanOnlyFrame), which have no
//     back-reference at all and so fit any window.
//   - client_max_window_bits, never: the server inflates with
//     compress/flate, whose window is always 32 KiB, so it reads whatever
//     window the client uses, and asking for a smaller one would save no
//     memory here. Section 7.1.2.2 lets a server omit it (and forbids it
//     when the offer lacks it); the offer's value, a hint of the client's
//     window, needs no answer.

// maxWindowBits is deflate's largest LZ77 window, 32 KiB (RFC 1951).
const maxWindowBits = 15

// deflateNegotiation negotiates permessage-deflate for one handshake.
type deflateNegotiation struct {
	accepted   bool
	windowBits uint8 // the server's window, 8 to 15, once accepted
}

// negotiate answers one extension offer: with the response to send if it
// accepts it, or an empty option to decline it. It never fails the
// handshake.
func (n *deflateNegotiation) negotiate(opt httphead.Option) (httphead.Option, error) {
	if n.accepted || string(opt.Name) != wsflate.ExtensionName {
		return httphead.Option{}, nil
	}
	bits, ok := acceptDeflate(opt.Parameters)
	if !ok {
		return httphead.Option{}, nil
	}
	n.accepted = true
	n.windowBits = maxWindowBits
	if bits != 0 {
		n.windowBits = bits
	}
	return deflateResponses[bits], nil
}

// deflateParams are the parameters an offer may have (RFC 7692 section
// 7.1), by their index in seen bits.
var deflateParams = [...]string{
	"server_no_context_takeover",
	"client_no_context_takeover",
	"server_max_window_bits",
	"client_max_window_bits",
}

// acceptDeflate checks one permessage-deflate offer's parameters. It
// returns ok false for an offer the server must decline (RFC 7692 section
// 7): an unknown parameter, one given twice, or a bad value. serverBits is
// the offer's server_max_window_bits, or 0 if it has none.
//
// A parameter without a value has val nil; one with an empty quoted value
// ("") has val empty but not nil, and is a bad value for all four.
func acceptDeflate(params httphead.Parameters) (serverBits uint8, ok bool) {
	var seen uint8
	ok = true
	params.ForEach(func(key, val []byte) bool {
		i := paramIndex(key)
		if i < 0 || seen&(1<<i) != 0 {
			ok = false
			return false
		}
		seen |= 1 << i
		switch deflateParams[i] {
		case "server_no_context_takeover", "client_no_context_takeover":
			ok = val == nil // section 7.1.1: no value
		case "server_max_window_bits":
			serverBits, ok = windowBitsValue(val) // section 7.1.2.1: a value is required
		case "client_max_window_bits":
			if val != nil { // section 7.1.2.2: a value is optional
				_, ok = windowBitsValue(val)
			}
		}
		return ok
	})
	return serverBits, ok
}

func paramIndex(key []byte) int {
	for i, p := range deflateParams {
		if string(key) == p {
			return i
		}
	}
	return -1
}

// windowBitsValue parses a window bits value: a decimal integer from 8 to
// 15 without leading zeros (RFC 7692 sections 7.1.2.1 and 7.1.2.2; a
// quoted value arrives unquoted).
func windowBitsValue(v []byte) (uint8, bool) {
	switch {
	case len(v) == 1 && (v[0] == '8' || v[0] == '9'):
		return v[0] - '0', true
	case len(v) == 2 && v[0] == '1' && '0' <= v[1] && v[1] <= '5':
		return 10 + v[1] - '0', true
	}
	return 0, false
}

// deflateResponses are the answers to an accepted offer, by the offer's
// server_max_window_bits (0: none). They are shared and never modified.
var deflateResponses = func() (r [maxWindowBits + 1]httphead.Option) {
	for bits := range r {
		if bits != 0 && bits < 8 {
			continue
		}
		opt := httphead.Option{Name: []byte(wsflate.ExtensionName)}
		opt.Parameters.Set([]byte("server_no_context_takeover"), nil)
		opt.Parameters.Set([]byte("client_no_context_takeover"), nil)
		if bits != 0 {
			opt.Parameters.Set([]byte("server_max_window_bits"), []byte(strconv.Itoa(bits)))
		}
		r[bits] = opt
	}
	return r
}()
