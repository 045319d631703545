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
// pooled; a connection holds one only while inflating.

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
func (c *Conn) deliverInflated(st *inState, compressed []byte) {
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
			c.fail(ws.StatusMessageTooBig, "message too big", ErrMessageTooBig)
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
			c.fail(ws.StatusInvalidFramePayloadData, "bad compressed data", err)
			return
		}
	}
	if st.msgOp == ws.OpText && !utf8.Valid(out.b) {
		c.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message", ErrInvalidUTF8)
		return
	}
	c.deliver(st.msgOp, out.b, true)
}
