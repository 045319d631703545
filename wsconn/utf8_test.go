package wsconn

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidUTF8Prefix(t *testing.T) {
	tests := []struct {
		name string
		in   string
		done int // valid complete prefix
		ok   bool
	}{
		{"empty", "", 0, true},
		{"ascii", "hello", 5, true},
		{"2-byte", "caf\u00e9", 5, true},
		{"3-byte", "\u20ac", 3, true},
		{"4-byte", "\U0001f600", 4, true},
		{"max code point", "\U0010ffff", 4, true},
		{"mixed", "a\u00e9\u20ac\U0001f600z", 11, true},

		// Incomplete tails that more bytes can still complete.
		{"2-byte lead", "ab\xc3", 2, true},
		{"3-byte lead", "ab\xe2", 2, true},
		{"3-byte lead and 1", "ab\xe2\x82", 2, true},
		{"4-byte lead", "ab\xf0", 2, true},
		{"4-byte lead and 1", "ab\xf0\x9f", 2, true},
		{"4-byte lead and 2", "ab\xf0\x9f\x98", 2, true},
		{"E0 lowest second byte", "\xe0\xa0", 0, true},
		{"ED highest second byte", "\xed\x9f", 0, true},
		{"F0 lowest second byte", "\xf0\x90", 0, true},
		{"F4 highest second byte", "\xf4\x8f\xbf", 0, true},
		{"only a lead byte", "\xf4", 0, true},

		// Invalid, whatever follows.
		{"0xff", "ab\xffcd", 0, false},
		{"0xfe at the end", "ab\xfe", 0, false},
		{"lone continuation", "\x80", 0, false},
		{"continuation after ascii", "a\xbf", 0, false},
		{"C0 overlong", "\xc0\x80", 0, false},
		{"C0 alone at the end", "ab\xc0", 0, false},
		{"C1 alone at the end", "ab\xc1", 0, false},
		{"E0 80 overlong prefix", "ab\xe0\x80", 0, false},
		{"E0 9F overlong prefix", "\xe0\x9f", 0, false},
		{"ED A0 surrogate prefix", "ab\xed\xa0", 0, false},
		{"ED BF surrogate prefix", "\xed\xbf", 0, false},
		{"complete surrogate", "\xed\xa0\x80", 0, false},
		{"F0 80 overlong prefix", "\xf0\x80", 0, false},
		{"F0 8F overlong prefix", "\xf0\x8f\xbf", 0, false},
		{"F4 90 above U+10FFFF prefix", "ab\xf4\x90", 0, false},
		{"F4 90 80 80 above U+10FFFF", "\xf4\x90\x80\x80", 0, false},
		{"F5 lead", "ab\xf5", 0, false},
		{"F8 lead", "\xf8", 0, false},
		{"lead then ascii", "\xe2a", 0, false},
		{"lead and continuation then ascii", "\xe2\x82a", 0, false},
		{"4-byte lead and 1 then ascii", "\xf0\x9fa", 0, false},
		{"too many continuations", "\xc3\xa9\x80", 0, false},
		{"invalid then incomplete", "\xff\xe2\x82", 0, false},
		{"incomplete in the middle", "\xe2\x82abc", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done, ok := validUTF8Prefix([]byte(tt.in))
			if ok != tt.ok || (ok && done != tt.done) {
				t.Errorf("validUTF8Prefix(%q): got (%d, %v), want (%d, %v)", tt.in, done, ok, tt.done, tt.ok)
			}
		})
	}
}

// completable is an oracle for validUTF8Prefix written from RFC 3629
// rather than from the implementation: p is a valid prefix if it is valid,
// or if padding its incomplete end with the lowest or highest continuation
// byte makes it valid (only a second byte has a narrower range than
// 80..BF, and that range always contains 80 or BF).
func completable(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	for _, fill := range []byte{0x80, 0xbf} {
		for k := 1; k <= 3; k++ {
			q := append(append([]byte(nil), p...), bytes.Repeat([]byte{fill}, k)...)
			if utf8.Valid(q) {
				return true
			}
		}
	}
	return false
}

// TestValidUTF8PrefixExhaustive compares validUTF8Prefix with the oracle
// on every 1- and 2-byte input and on 3-byte inputs that start with a
// multi-byte lead, each after an ASCII prefix.
func TestValidUTF8PrefixExhaustive(t *testing.T) {
	check := func(p []byte) {
		t.Helper()
		in := append([]byte("ab"), p...)
		done, ok := validUTF8Prefix(in)
		if want := completable(in); ok != want {
			t.Fatalf("validUTF8Prefix(% x): got ok=%v, want %v", in, ok, want)
		}
		if ok && (!utf8.Valid(in[:done]) || len(in)-done > 3 || done < len(in) && utf8.FullRune(in[done:])) {
			t.Fatalf("validUTF8Prefix(% x): got done=%d, want the longest complete prefix", in, done)
		}
	}
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	// Second bytes at and around every range boundary of RFC 3629.
	seconds := []byte{0x00, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff}
	for a := 0xc0; a < 256; a++ {
		for _, b := range seconds {
			for c := range 256 {
				check([]byte{byte(a), byte(b), byte(c)})
			}
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"hello", 5, "hello"},
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"h\u00e9llo", 2, "h"}, // é is 2 bytes at 1..2
		{"h\u00e9llo", 3, "h\u00e9"},
		{"\u20ac\u20ac", 4, "\u20ac"}, // € is 3 bytes
		{"\u20ac\u20ac", 5, "\u20ac"},
		{"\u20ac\u20ac", 2, ""},
		{"\U0001f600x", 3, ""},
		{"\U0001f600x", 4, "\U0001f600"},
		{strings.Repeat("a", 200), maxCloseReason, strings.Repeat("a", 123)},
		{strings.Repeat("\u00e9", 100), maxCloseReason, strings.Repeat("\u00e9", 61)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%d", tt.in, tt.n), func(t *testing.T) {
			got := truncateUTF8(tt.in, tt.n)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("got %q, want valid UTF-8", got)
			}
		})
	}
}

// rfcValidCode is the test's own list of the close codes a peer may send:
// 1000-1003 and 1007-1011 from RFC 6455 section 7.4.1, 1012-1014 from the
// IANA registry, 3000-4999 for libraries and applications.
func rfcValidCode(c int) bool {
	return c >= 1000 && c <= 1003 || c >= 1007 && c <= 1014 || c >= 3000 && c <= 4999
}

// TestValidReceivedCode checks every code from 0 to 5000 against RFC 6455
// section 7.4 and the IANA registry.
func TestValidReceivedCode(t *testing.T) {
	for c := 0; c <= 5000; c++ {
		if got, want := validReceivedCode(StatusCode(c)), rfcValidCode(c); got != want {
			t.Errorf("validReceivedCode(%d): got %v, want %v", c, got, want)
		}
	}
	for _, c := range []int{1004, 1005, 1006, 1015} { // named in the RFC, never on the wire
		if validReceivedCode(StatusCode(c)) {
			t.Errorf("validReceivedCode(%d): got true, want false", c)
		}
	}
}
