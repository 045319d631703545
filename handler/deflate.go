package handler

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692) for outgoing messages. Connections that
// negotiated it get a message's compressed frame, built once per message
// however many connections get it, with no context takeover: every message
// is compressed on its own, so a connection keeps no compressor between
// messages. A flate writer is large (hundreds of KiB of tables), so writers
// are pooled and one is held only while a message is being compressed.

// MinDeflateSize is the payload size below which a message is not
// compressed: deflate's overhead outweighs what it saves.
const MinDeflateSize = 256

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // a valid level: no error
	return w
}}

// pooledWriter lends a flate writer to wsflate.Writer and gives it back to
// the pool when wsflate closes it.
type pooledWriter struct{ *flate.Writer }

func (p pooledWriter) Close() error {
	err := p.Writer.Close() // what it writes now is discarded by wsflate
	flateWriters.Put(p.Writer)
	return err
}

func pooledCompressor(w io.Writer) wsflate.Compressor {
	fw := flateWriters.Get().(*flate.Writer)
	fw.Reset(w)
	return pooledWriter{fw}
}

// deflateFrame compiles data as one final frame of type t with its payload
// compressed (RSV1 set, RFC 7692 section 7.2.1). It returns nil if the
// compressed frame would not be smaller than the plain one.
func deflateFrame(t MessageType, data []byte) []byte {
	var payload bytes.Buffer
	w := wsflate.NewWriter(&payload, pooledCompressor)
	_, err := w.Write(data)
	if err == nil {
		err = w.Flush()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil || payload.Len() >= len(data) {
		return nil
	}
	h := ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpCode(t), Length: int64(payload.Len())}
	frame, err := ws.CompileFrame(ws.Frame{Header: h, Payload: payload.Bytes()})
	if err != nil {
		return nil
	}
	return frame
}
