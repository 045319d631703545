package wsconn

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
// and variant however many connections get it, with no context takeover:
// every message is compressed on its own, so a connection keeps no
// compressor between messages. A flate writer is large (hundreds of KiB of
// tables, whatever the level), so writers are pooled and one is held only
// while a message is being compressed.
//
// There are two variants. The full one (flate.BestSpeed) refers back up
// to 32 KiB, the largest LZ77 window, which every peer accepts unless it
// asked for a smaller one with server_max_window_bits (RFC 7692 section
// 7.1.2.1). For those the Huffman-only one (flate.HuffmanOnly) codes
// literals alone: a stream with no back-references fits any window, from
// 2^8 up.

// MinDeflateSize is the payload size below which a message is not
// compressed: deflate's overhead outweighs what it saves.
const MinDeflateSize = 256

// Writer pools, one per level: flate.Writer.Reset keeps a writer's level.
var (
	fullWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed) // a valid level: no error
		return w
	}}
	huffmanWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.HuffmanOnly) // a valid level: no error
		return w
	}}
)

// pooledWriter lends a flate writer to wsflate.Writer and gives it back to
// its pool when wsflate closes it.
type pooledWriter struct {
	*flate.Writer
	pool *sync.Pool
}

func (p pooledWriter) Close() error {
	err := p.Writer.Close() // what it writes now is discarded by wsflate
	p.pool.Put(p.Writer)
	return err
}

// compressorFrom returns a wsflate compressor constructor that takes its
// writers from pool.
func compressorFrom(pool *sync.Pool) func(io.Writer) wsflate.Compressor {
	return func(w io.Writer) wsflate.Compressor {
		fw := pool.Get().(*flate.Writer)
		fw.Reset(w)
		return pooledWriter{fw, pool}
	}
}

var (
	fullCompressor    = compressorFrom(&fullWriters)
	huffmanCompressor = compressorFrom(&huffmanWriters)
)

// deflateFrame compiles data as one final frame of type t with its payload
// compressed by compressor (RSV1 set, RFC 7692 section 7.2.1). It returns
// nil if the compressed frame would not be smaller than the plain one.
func deflateFrame(t MessageType, data []byte, compressor func(io.Writer) wsflate.Compressor) []byte {
	var payload bytes.Buffer
	w := wsflate.NewWriter(&payload, compressor)
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
