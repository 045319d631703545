package inflatetest

import (
	"bytes"
	"compress/flate"
	"math/rand/v2"
	"strings"
	"testing"
)

// deflate compresses data at level as permessage-deflate sends it: a sync
// flush, its trailing 0x00 0x00 0xff 0xff removed.
func deflate(t *testing.T, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// letters is n pseudo-random lowercase letters: compressible by Huffman
// coding, with no repeats for LZ77 to find.
func letters(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rng.IntN(26))
	}
	return b
}

// TestInflate checks the decoder against compress/flate's encoder at every
// block type it writes (stored, fixed and dynamic Huffman, Huffman-only),
// and that it sees the back-references: 2 KiB of letters said twice are a
// match at distance 2,048 for LZ77, none for Huffman-only.
func TestInflate(t *testing.T) {
	twice := bytes.Repeat(letters(2048, 1), 2)
	random := make([]byte, 5000)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name    string
		data    []byte
		level   int
		minDist int // want MaxDistance at least this
		maxDist int // and at most this (0: no back-references at all)
	}{
		{"empty", nil, flate.BestSpeed, 0, 0},
		{"short (fixed codes)", []byte("hello"), flate.BestSpeed, 0, 0},
		{"incompressible (stored)", random, flate.BestSpeed, 0, 32768},
		{"stored level", twice, flate.NoCompression, 0, 0},
		{"repeat at 2048, best speed", twice, flate.BestSpeed, 2048, 2048},
		{"repeat at 2048, best compression", twice, flate.BestCompression, 2048, 32768},
		{"repeat at 2048, Huffman-only", twice, flate.HuffmanOnly, 0, 0},
		{"runs, best speed", []byte(strings.Repeat("ab", 5000)), flate.BestSpeed, 1, 32768},
		{"100 KiB, best speed", bytes.Repeat(letters(20000, 3), 5), flate.BestSpeed, 20000, 32768},
		{"100 KiB, Huffman-only", bytes.Repeat(letters(20000, 3), 5), flate.HuffmanOnly, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Inflate(deflate(t, tt.data, tt.level))
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !bytes.Equal(res.Out, tt.data) {
				t.Fatalf("got %d bytes %.40q, want the %d bytes compressed %.40q", len(res.Out), res.Out, len(tt.data), tt.data)
			}
			if res.MaxDistance < tt.minDist || res.MaxDistance > tt.maxDist {
				t.Fatalf("got farthest back-reference %d, want %d to %d", res.MaxDistance, tt.minDist, tt.maxDist)
			}
			if (res.Matches == 0) != (res.MaxDistance == 0) {
				t.Fatalf("got %d matches with farthest distance %d", res.Matches, res.MaxDistance)
			}
		})
	}
}

// TestInflateErrors: what is not one message's deflate stream is refused.
func TestInflateErrors(t *testing.T) {
	ok := deflate(t, []byte(strings.Repeat("abc", 100)), flate.BestSpeed)
	tests := []struct {
		name string
		p    []byte
	}{
		{"distance before the message", fixedBlockReaching(2)},
		{"reserved block type", []byte{0x07}},
		{"stored length complement", []byte{0x00, 0x01, 0x00, 0x00, 0x00, 'x'}},
		{"truncated", ok[:len(ok)/2]},
	}
	if res, err := Inflate(fixedBlockReaching(1)); err != nil || string(res.Out) != "aaaa" || res.MaxDistance != 1 {
		t.Fatalf("got %q, farthest %d, %v; want \"aaaa\", 1, no error (the block the cases below break)", res.Out, res.MaxDistance, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res, err := Inflate(tt.p); err == nil {
				t.Fatalf("got %q and no error, want an error", res.Out)
			}
		})
	}
}

// fixedBlockReaching is a final fixed-code block (RFC 1951 section 3.2.6):
// the literal 'a', then a match of length 3 at distance dist (1 to 4),
// then the end of the block. Beyond 1 it reaches before the message.
func fixedBlockReaching(dist int) []byte {
	var w struct {
		out   []byte
		nbits uint
	}
	put := func(v int, n uint) { // least significant bit first
		for i := range n {
			if w.nbits%8 == 0 {
				w.out = append(w.out, 0)
			}
			w.out[len(w.out)-1] |= byte(v>>i&1) << (w.nbits % 8)
			w.nbits++
		}
	}
	code := func(c int, n uint) { // most significant bit first
		for i := int(n) - 1; i >= 0; i-- {
			put(c>>i&1, 1)
		}
	}
	put(1, 1)         // BFINAL
	put(1, 2)         // BTYPE 01: fixed codes
	code(0x30+'a', 8) // literal 'a': codes 0x30 up for literals 0-143
	code(1, 7)        // length 3: symbol 257, codes 0 up for 256-279
	code(dist-1, 5)   // distance codes 0 to 3 are distances 1 to 4
	code(0, 7)        // end of block: symbol 256
	return w.out
}
