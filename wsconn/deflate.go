package wsconn

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// Inflating compressed messages (permessage-deflate, RFC 7692). A message
// is assembled compressed, as it arrives, within MaxMessageSize; when it is
// complete it is inflated into a pooled buffer, and inflating stops at
// MaxMessageSize: a small message that inflates to gigabytes (a zip bomb)
// costs at most that, and is answered 1009. Flate readers (tens of KiB) are
// pooled; a connection holds one only while inflating. Their window is
// always 32 KiB, so they read a client's stream whatever window it used.
//
// Outgoing, a prepared message is compressed once per variant (below the
// inflater), and a connection picks the variant that fits the window it
// negotiated (deflatedFrame); the negotiation itself is in negotiate.go.

var flateReaders sync.Pool // io.ReadCloser from flate.NewReader, also flate.Resetter

// pooledReader gives its flate reader back to the pool when wsflate closes
// it.
type pooledReader struct{ io.ReadCloser }

func (p pooledReader) Close() error {
	err := p.ReadCloser.Close()
	flateReaders.Put(p.ReadCloser)
	return err
}

func pooledDecompressor(r io.Reader) wsflate.Decompressor {
	if fr, ok := flateReaders.Get().(io.ReadCloser); ok {
		if err := fr.(flate.Resetter).Reset(r, nil); err == nil {
			return pooledReader{fr}
		}
	}
	return pooledReader{flate.NewReader(r)}
}

// deliverInflated inflates a complete compressed message and hands it to
// the handler.
func (c *conn) deliverInflated(st *inState, compressed []byte) {
	limit := c.srv.cfg.MaxMessageSize
	out := getBuffer(int(min(limit+1, int64(4*len(compressed)+512))))
	defer func() { putBuffer(out) }()
	out.b = out.b[:0]
	r := wsflate.NewReader(bytes.NewReader(compressed), pooledDecompressor)
	defer r.Close()
	var chunk [4096]byte
	for {
		n, err := r.Read(chunk[:])
		if int64(len(out.b)+n) > limit {
			c.srv.stats.tooBig.Add(1)
			c.fail(StatusMessageTooBig, "message too big", ErrMessageTooBig)
			return
		}
		if len(out.b)+n > cap(out.b) {
			grown := getBuffer(int(min(limit, int64(2*cap(out.b)+n))))
			grown.b = append(grown.b[:0], out.b...)
			putBuffer(out)
			out = grown
		}
		out.b = append(out.b, chunk[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			c.fail(StatusInvalidFramePayloadData, "bad compressed data", err)
			return
		}
	}
	if st.msgOp == ws.OpText && !utf8.Valid(out.b) {
		c.fail(StatusInvalidFramePayloadData, "invalid UTF-8 in text message", ErrInvalidUTF8)
		return
	}
	c.deliver(st.msgOp, out.b, true)
}

// deflatedFrame returns m's compressed frame for c, or nil to send m
// plain (c did not negotiate compression, or m is small or does not
// compress). A connection that asked for a window below 32 KiB gets the
// Huffman-only variant, which has no back-reference (RFC 7692 section
// 7.1.2.1); the others the full one. Each variant is compressed once for
// every connection that gets it (docs/design.md invariant 7).
func (c *conn) deflatedFrame(m *PreparedMessage) []byte {
	switch s := c.state.Load(); {
	case s&stDeflate == 0:
		return nil
	case s&stDeflateHuffman != 0:
		return m.HuffmanOnlyFrame()
	}
	return m.DeflatedFrame()
}

// Compressing outgoing messages (permessage-deflate, RFC 7692).
// Connections that negotiated it get a message's compressed frame, built
// once per message and variant however many connections get it, with no
// context takeover: every message is compressed on its own, so a
// connection keeps no compressor between messages. A flate writer is large (hundreds of KiB of
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
