package wsconn

import "unicode/utf8"

// UTF-8 validation that fails fast (RFC 6455 section 8.1): text arrives in
// pieces (fragments, partial reads), and a sequence that can no longer
// become valid is rejected at once, not when the message ends.

// validUTF8Prefix checks that p is valid UTF-8 except possibly for an
// incomplete character at its end that more bytes could still complete.
// It returns the length of the part that is complete and valid (the
// incomplete tail, at most 3 bytes, is p[done:]), and ok=false if p holds a
// byte sequence that no continuation can make valid.
func validUTF8Prefix(p []byte) (done int, ok bool) {
	cut := len(p)
	// Find where a trailing incomplete character would start: at most 3
	// bytes back, at a lead byte whose sequence runs past the end.
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		b := p[i]
		if b < 0x80 {
			break // ASCII: nothing incomplete
		}
		if b >= 0xC0 {
			if i+seqLen(b) > len(p) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return 0, false
	}
	return cut, validIncomplete(p[cut:])
}

// seqLen is the length of the sequence a lead byte starts (1 for bytes that
// cannot start one, which utf8.Valid then rejects).
func seqLen(b byte) int {
	switch {
	case b >= 0xC2 && b <= 0xDF:
		return 2
	case b >= 0xE0 && b <= 0xEF:
		return 3
	case b >= 0xF0 && b <= 0xF4:
		return 4
	}
	return 1
}

// validIncomplete reports whether t (0 to 3 bytes, shorter than its
// sequence) can still be completed into a valid character, applying the
// second-byte ranges of RFC 3629 that exclude overlong forms, surrogates
// and code points above U+10FFFF.
func validIncomplete(t []byte) bool {
	if len(t) == 0 {
		return true
	}
	lo, hi := byte(0x80), byte(0xBF)
	switch t[0] {
	case 0xE0:
		lo = 0xA0
	case 0xED:
		hi = 0x9F
	case 0xF0:
		lo = 0x90
	case 0xF4:
		hi = 0x8F
	}
	if seqLen(t[0]) == 1 {
		return false
	}
	for i, b := range t[1:] {
		if i == 0 && (b < lo || b > hi) {
			return false
		}
		if b < 0x80 || b > 0xBF {
			return false
		}
	}
	return true
}
