// Package inflatetest is a small DEFLATE decoder (RFC 1951) for tests of
// permessage-deflate (RFC 7692). It inflates one message's raw deflate
// stream on its own, as a peer with no context takeover does, and reports
// the farthest LZ77 back-reference in it: what a test needs to prove that
// a stream fits a window smaller than 32 KiB (server_max_window_bits, RFC
// 7692 section 7.1.2.1). compress/flate cannot tell: its reader always
// keeps a 32 KiB window.
//
// It is written for clarity, not speed: codes are decoded a bit at a time.
// Only tests import it.
package inflatetest

import (
	"errors"
	"fmt"
)

// Result is what Inflate found in a stream.
type Result struct {
	Out         []byte // the inflated bytes
	MaxDistance int    // the farthest back-reference, in bytes; 0: none
	Matches     int    // how many back-references (length/distance pairs)
}

// ErrTruncated reports a stream that ends inside a block.
var ErrTruncated = errors.New("inflatetest: stream ends inside a block")

// Inflate decodes p, one message's payload as permessage-deflate sends it:
// a raw deflate stream whose trailing 0x00 0x00 0xff 0xff may have been
// removed (RFC 7692 section 7.2.1); Inflate appends it, as a receiver does
// (section 7.2.2). A back-reference to before the start of the message is
// an error: with no context takeover there is nothing before it.
func Inflate(p []byte) (Result, error) {
	r := bitReader{in: append(append([]byte(nil), p...), 0x00, 0x00, 0xff, 0xff)}
	var res Result
	for {
		final, err := r.bits(1)
		if err != nil {
			return res, err
		}
		typ, err := r.bits(2)
		if err != nil {
			return res, err
		}
		switch typ {
		case 0:
			err = r.stored(&res)
		case 1:
			err = r.codes(&res, fixedLit, fixedDist)
		case 2:
			var lit, dist *huffman
			if lit, dist, err = r.dynamicTables(); err == nil {
				err = r.codes(&res, lit, dist)
			}
		default:
			err = errors.New("inflatetest: reserved block type 3")
		}
		if err != nil {
			return res, err
		}
		// The message ends with a non-final block (section 7.2.1), at
		// the end of the input once the appended empty stored block is
		// read.
		if final == 1 || r.atEnd() {
			return res, nil
		}
	}
}

// bitReader reads a deflate stream's bits, least significant first
// (RFC 1951 section 3.1.1).
type bitReader struct {
	in    []byte
	pos   int    // next byte of in
	buf   uint32 // bits read from in but not yet consumed
	nbits uint
}

func (r *bitReader) bits(n uint) (int, error) {
	for r.nbits < n {
		if r.pos == len(r.in) {
			return 0, ErrTruncated
		}
		r.buf |= uint32(r.in[r.pos]) << r.nbits
		r.pos++
		r.nbits += 8
	}
	v := int(r.buf & (1<<n - 1))
	r.buf >>= n
	r.nbits -= n
	return v, nil
}

// atEnd reports whether only the padding of the last byte is left.
func (r *bitReader) atEnd() bool { return r.pos == len(r.in) && r.nbits < 8 }

// stored copies a stored block (section 3.2.4).
func (r *bitReader) stored(res *Result) error {
	r.buf, r.nbits = 0, 0 // skip to the byte boundary
	if len(r.in)-r.pos < 4 {
		return ErrTruncated
	}
	n := int(r.in[r.pos]) | int(r.in[r.pos+1])<<8
	if nn := int(r.in[r.pos+2]) | int(r.in[r.pos+3])<<8; n != ^nn&0xffff {
		return fmt.Errorf("inflatetest: stored block length %#04x, complement %#04x", n, nn)
	}
	r.pos += 4
	if len(r.in)-r.pos < n {
		return ErrTruncated
	}
	res.Out = append(res.Out, r.in[r.pos:r.pos+n]...)
	r.pos += n
	return nil
}

// Length and distance codes: base values and extra bits (section 3.2.5).
var (
	lengthBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// codes decodes a compressed block's literals and matches up to its end
// of block code.
func (r *bitReader) codes(res *Result, lit, dist *huffman) error {
	for {
		sym, err := r.decode(lit)
		switch {
		case err != nil:
			return err
		case sym < 256:
			res.Out = append(res.Out, byte(sym))
			continue
		case sym == 256:
			return nil
		case sym > 285:
			return fmt.Errorf("inflatetest: bad length code %d", sym)
		}
		extra, err := r.bits(lengthExtra[sym-257])
		if err != nil {
			return err
		}
		length := lengthBase[sym-257] + extra
		if sym, err = r.decode(dist); err != nil {
			return err
		}
		if sym > 29 {
			return fmt.Errorf("inflatetest: bad distance code %d", sym)
		}
		if extra, err = r.bits(distExtra[sym]); err != nil {
			return err
		}
		d := distBase[sym] + extra
		if d > len(res.Out) {
			return fmt.Errorf("inflatetest: distance %d reaches before the message (%d bytes so far)", d, len(res.Out))
		}
		res.Matches++
		res.MaxDistance = max(res.MaxDistance, d)
		for range length { // byte by byte: a match may overlap what it copies
			res.Out = append(res.Out, res.Out[len(res.Out)-d])
		}
	}
}

// codeLengthOrder is the order of the code length code lengths in a
// dynamic block's header (section 3.2.7).
var codeLengthOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamicTables reads a dynamic block's literal/length and distance codes
// (section 3.2.7).
func (r *bitReader) dynamicTables() (lit, dist *huffman, err error) {
	var hlit, hdist, hclen int
	for _, f := range []struct {
		v    *int
		n    uint
		base int
	}{{&hlit, 5, 257}, {&hdist, 5, 1}, {&hclen, 4, 4}} {
		v, err := r.bits(f.n)
		if err != nil {
			return nil, nil, err
		}
		*f.v = v + f.base
	}
	var clens [19]int
	for _, i := range codeLengthOrder[:hclen] {
		if clens[i], err = r.bits(3); err != nil {
			return nil, nil, err
		}
	}
	clcode, err := newHuffman(clens[:])
	if err != nil {
		return nil, nil, err
	}
	lens := make([]int, 0, hlit+hdist)
	for len(lens) < hlit+hdist {
		sym, err := r.decode(clcode)
		if err != nil {
			return nil, nil, err
		}
		if sym < 16 {
			lens = append(lens, sym)
			continue
		}
		rep, prev := 0, 0
		switch sym {
		case 16:
			if len(lens) == 0 {
				return nil, nil, errors.New("inflatetest: repeat with no length before it")
			}
			prev = lens[len(lens)-1]
			rep, err = r.bits(2)
			rep += 3
		case 17:
			rep, err = r.bits(3)
			rep += 3
		default:
			rep, err = r.bits(7)
			rep += 11
		}
		if err != nil {
			return nil, nil, err
		}
		if len(lens)+rep > hlit+hdist {
			return nil, nil, errors.New("inflatetest: code lengths overrun their count")
		}
		for range rep {
			lens = append(lens, prev)
		}
	}
	if lens[256] == 0 {
		return nil, nil, errors.New("inflatetest: no end of block code")
	}
	if lit, err = newHuffman(lens[:hlit]); err != nil {
		return nil, nil, err
	}
	if dist, err = newHuffman(lens[hlit:]); err != nil {
		return nil, nil, err
	}
	return lit, dist, nil
}

// huffman is a canonical Huffman code (section 3.2.2): how many codes
// there are of each length, and the symbols in code order.
type huffman struct {
	count  [16]int
	symbol []int
}

// newHuffman builds the code from each symbol's code length (0: unused).
func newHuffman(lengths []int) (*huffman, error) {
	h := &huffman{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1 // codes of the current length still available
	for l := 1; l < len(h.count); l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			return nil, errors.New("inflatetest: over-subscribed code lengths")
		}
	}
	var next [16]int // index in symbol of the first code of each length
	for l := 1; l < len(h.count)-1; l++ {
		next[l+1] = next[l] + h.count[l]
	}
	h.symbol = make([]int, next[15]+h.count[15])
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[next[l]] = sym
			next[l]++
		}
	}
	return h, nil
}

// decode reads one symbol of h. Huffman codes are packed starting with
// their most significant bit (section 3.1.1).
func (r *bitReader) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0 // first: the first code of length l
	for l := 1; l < len(h.count); l++ {
		b, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		n := h.count[l]
		if code-first < n {
			return h.symbol[index+code-first], nil
		}
		index += n
		first += n
		first <<= 1
		code <<= 1
	}
	return 0, errors.New("inflatetest: no such code")
}

// The fixed codes (section 3.2.6).
var fixedLit, fixedDist = func() (*huffman, *huffman) {
	lens := make([]int, 288)
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	lit, _ := newHuffman(lens)
	dlens := make([]int, 30)
	for i := range dlens {
		dlens[i] = 5
	}
	dist, _ := newHuffman(dlens)
	return lit, dist
}()
