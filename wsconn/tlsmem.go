package wsconn

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// Memory of an idle wss connection (docs/design.md invariant 3: no buffer
// held by an idle connection).
//
// crypto/tls keeps its input in three fields of tls.Conn: rawInput (the
// ciphertext read so far, a bytes.Buffer), input (the plaintext of the
// current record, a bytes.Reader over rawInput's memory) and hand (handshake
// messages, a bytes.Buffer). Once emptied they keep their capacity for the
// life of the connection: about 3.5 KiB after a TLS 1.3 handshake with a
// post-quantum key share, the largest record ever received (16 KiB) after a
// big message. crypto/tls has no call that lets them go, so the connection's
// owner resets them itself when it has read everything crypto/tls had (the
// next record simply allocates again). It finds the fields by name and type
// through reflect, once: if a Go release renames or retypes one of them,
// releasing stays off (the connections keep the buffers, nothing else
// changes) and TestTLSInputReleased fails, so the change is noticed.
//
// The fields are touched only by the goroutine that reads through
// crypto/tls (the connection's owner, one at a time), after its Read
// returned: crypto/tls's own writes never touch them.

// tlsInputLayout is where tls.Conn keeps its input buffers.
type tlsInputLayout struct {
	rawInput, input, hand uintptr
	ok                    bool
}

var tlsInput = findTLSInput()

func findTLSInput() tlsInputLayout {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		if !ok || f.Type != want || len(f.Index) != 1 {
			return 0, false
		}
		return f.Offset, true
	}
	buffer, reader := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	var l tlsInputLayout
	var ok1, ok2, ok3 bool
	l.rawInput, ok1 = field("rawInput", buffer)
	l.input, ok2 = field("input", reader)
	l.hand, ok3 = field("hand", buffer)
	l.ok = ok1 && ok2 && ok3
	return l
}

// tlsBuffers returns c's input buffers, or ok false if the layout is not
// known.
func tlsBuffers(c *tls.Conn) (rawInput *bytes.Buffer, input *bytes.Reader, hand *bytes.Buffer, ok bool) {
	l := tlsInput
	if !l.ok {
		return nil, nil, nil, false
	}
	p := unsafe.Pointer(c)
	return (*bytes.Buffer)(unsafe.Add(p, l.rawInput)),
		(*bytes.Reader)(unsafe.Add(p, l.input)),
		(*bytes.Buffer)(unsafe.Add(p, l.hand)), true
}

// releaseTLSInput drops c's input buffers if they hold no unread byte. Only
// the goroutine that calls c.Read may call it, between two Reads.
func releaseTLSInput(c *tls.Conn) {
	rawInput, input, hand, ok := tlsBuffers(c)
	if !ok || rawInput.Len() != 0 || input.Len() != 0 || hand.Len() != 0 {
		return
	}
	if rawInput.Cap() != 0 {
		*rawInput = bytes.Buffer{}
	}
	if hand.Cap() != 0 {
		*hand = bytes.Buffer{}
	}
	input.Reset(nil)
}
