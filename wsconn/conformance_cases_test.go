package wsconn

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The case tables of the conformance suite (conformance_test.go), one
// function per Autobahn section.

// confText returns n bytes of valid UTF-8 mixing 1- to 4-byte characters.
func confText(n int) string {
	const unit = "a\u00e9\u20ac\U0001f600 " // 1+2+3+4+1 bytes
	s := strings.Repeat(unit, n/len(unit)+1)
	i := n
	for !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + strings.Repeat("x", n-i)
}

// confMsg is a message of kind "text" or "binary" with n bytes, and its
// echo.
func confMsg(kind string, n int) (cframe, sframe) {
	if kind == "text" {
		s := confText(n)
		return textFrame(s), textEcho(s)
	}
	p := pattern(n)
	return binFrame(p), binEcho(p)
}

// confFragments splits p into fragments of size bytes of a message of
// type op (one empty frame if p is empty).
func confFragments(op ws.OpCode, p []byte, size int) []cframe {
	frames := []cframe{{op: op, payload: p[:min(size, len(p))]}}
	for i := size; i < len(p); i += size {
		frames = append(frames, cframe{op: ws.OpContinuation, payload: p[i:min(i+size, len(p))]})
	}
	for i := range frames[:len(frames)-1] {
		frames[i].more = true
	}
	return frames
}

// confVariants is one case sent each way in wires, as name/wire.
func confVariants(tc confCase, wires []confWire) []confCase {
	var out []confCase
	for _, w := range wires {
		v := tc
		v.name, v.wire = tc.name+"/"+w.name, w
		out = append(out, v)
	}
	return out
}

// echoCase is a case that must be answered with want and stay open.
func echoCase(name string, want []sframe, frames ...cframe) confCase {
	return confCase{name: name, frames: frames, want: want}
}

// failCase is a case the server must fail with code after answering want.
func failCase(name string, code StatusCode, want []sframe, frames ...cframe) confCase {
	return confCase{name: name, frames: frames, want: want, code: code}
}

func (tc confCase) via(w confWire) confCase { tc.wire = w; return tc }
func (tc confCase) fast() confCase          { tc.failFast = true; return tc }

// Section 1: framing.
func confFramingCases() []confCase {
	var cases []confCase
	for k, kind := range []string{"text", "binary"} {
		for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
			f, e := confMsg(kind, n)
			cases = append(cases, confVariants(echoCase(fmt.Sprintf("1.%d.%d %s %d bytes", k+1, i+1, kind, n), []sframe{e}, f), confWires)...)
		}
		f, e := confMsg(kind, 65536)
		cases = append(cases, echoCase(fmt.Sprintf("1.%d.8 %s 65536 bytes in chops of 997", k+1, kind), []sframe{e}, f).via(confChopped))
		f, e = confMsg(kind, mib)
		cases = append(cases, confVariants(echoCase(fmt.Sprintf("1.%d.9 %s 1 MiB, the limit", k+1, kind), []sframe{e}, f), confWires)...)
	}
	// Non-minimal length encodings. RFC 6455 section 5.2 says the minimal
	// number of bytes MUST be used to encode the length, but unlike for
	// the mask or the RSV bits it gives the receiver no duty to fail the
	// connection; the server accepts them, as gobwas/ws's reader does, and
	// these cases pin that down.
	text125, bin126, text65535 := confText(125), pattern(126), confText(65535)
	for _, tc := range []confCase{
		echoCase("1.3.1 text 0 bytes in a 16-bit length", []sframe{textEcho("")}, cframe{op: ws.OpText, len16: true}),
		echoCase("1.3.2 text 125 bytes in a 16-bit length", []sframe{textEcho(text125)}, cframe{op: ws.OpText, len16: true, payload: []byte(text125)}),
		echoCase("1.3.3 binary 0 bytes in a 64-bit length", []sframe{binEcho([]byte{})}, cframe{op: ws.OpBinary, len64: true}),
		echoCase("1.3.4 binary 126 bytes in a 64-bit length", []sframe{binEcho(bin126)}, cframe{op: ws.OpBinary, len64: true, payload: bin126}),
		echoCase("1.3.5 text 65535 bytes in a 64-bit length", []sframe{textEcho(text65535)}, cframe{op: ws.OpText, len64: true, payload: []byte(text65535)}),
		echoCase("1.3.6 ping 5 bytes in a 16-bit length", []sframe{pongOf("hello")}, cframe{op: ws.OpPing, len16: true, payload: []byte("hello")}),
		echoCase("1.3.7 fragments in 16-bit and 64-bit lengths", []sframe{textEcho("abcd")},
			cframe{op: ws.OpText, more: true, len16: true, payload: []byte("ab")}, cframe{op: ws.OpContinuation, len64: true, payload: []byte("cd")}),
		{name: "1.3.8 close in a 64-bit length", frames: []cframe{{op: ws.OpClose, len64: true, payload: closePayload(1000, "")}}, code: 1000, echo: true},
		failCase("1.3.9 64-bit length with the most significant bit set", StatusProtocolError, nil,
			cframe{raw: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}}),
	} {
		cases = append(cases, confVariants(tc, []confWire{confOneWrite, confChopped})...)
	}
	// Section 5.3: a client must mask every frame.
	return append(cases,
		failCase("1.4.1 unmasked text", StatusProtocolError, nil, cframe{op: ws.OpText, unmasked: true, payload: []byte("x")}),
		failCase("1.4.2 unmasked binary after an echo", StatusProtocolError, []sframe{textEcho("ok")},
			textFrame("ok"), cframe{op: ws.OpBinary, unmasked: true, payload: []byte{1}}),
		failCase("1.4.3 unmasked ping", StatusProtocolError, nil, cframe{op: ws.OpPing, unmasked: true}),
		failCase("1.4.4 unmasked continuation", StatusProtocolError, nil,
			textFrame("a").notFinal(), cframe{op: ws.OpContinuation, unmasked: true, payload: []byte("b")}),
		failCase("1.4.5 unmasked close", StatusProtocolError, nil, cframe{op: ws.OpClose, unmasked: true, payload: closePayload(1000, "")}),
	)
}

// Section 2: pings and pongs (RFC 6455 section 5.5.2, 5.5.3).
func confPingCases() []confCase {
	bin := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	b125, b126 := []byte(strings.Repeat("\xfe", 125)), []byte(strings.Repeat("\xfe", 126))
	var pings []cframe
	var pongs []sframe
	for i := range 10 {
		s := fmt.Sprintf("payload-%d", i)
		pings, pongs = append(pings, pingFrame(s)), append(pongs, pongOf(s))
	}
	return []confCase{
		echoCase("2.1 ping without payload", []sframe{pongOf("")}, pingFrame("")),
		echoCase("2.2 ping with a small text payload", []sframe{pongOf("Hello, world!")}, pingFrame("Hello, world!")),
		echoCase("2.3 ping with a small binary payload", []sframe{{ws.OpPong, bin}}, cframe{op: ws.OpPing, payload: bin}),
		echoCase("2.4 ping with 125 bytes of binary payload", []sframe{{ws.OpPong, b125}}, cframe{op: ws.OpPing, payload: b125}),
		failCase("2.5 ping with 126 bytes of binary payload", StatusProtocolError, nil, cframe{op: ws.OpPing, payload: b126}),
		echoCase("2.6 ping with 125 bytes octet-wise", []sframe{{ws.OpPong, b125}}, cframe{op: ws.OpPing, payload: b125}).via(confOctetWise),
		echoCase("2.7 unsolicited pong without payload", nil, pongFrame("")),
		echoCase("2.8 unsolicited pong with payload", nil, pongFrame("unsolicited pong payload")),
		echoCase("2.9 unsolicited pong, then ping", []sframe{pongOf("ping payload")}, pongFrame("unsolicited pong payload"), pingFrame("ping payload")),
		echoCase("2.10 10 pings", pongs, pings...),
		echoCase("2.11 10 pings octet-wise", pongs, pings...).via(confOctetWise),
		{name: "2.12 pong after close is ignored", frames: []cframe{closeWith(1000, ""), pongFrame("late")}, code: 1000, echo: true},
		failCase("2.13 ping with 126 bytes in a 64-bit length", StatusProtocolError, nil, cframe{op: ws.OpPing, len64: true, payload: b126}),
		failCase("2.14 pong with 126 bytes", StatusProtocolError, nil, cframe{op: ws.OpPong, payload: b126}),
		echoCase("2.15 unsolicited pong with 125 bytes", nil, cframe{op: ws.OpPong, payload: b125}),
		echoCase("2.16 ping with 125 bytes, pause mid-frame", []sframe{{ws.OpPong, b125}}, cframe{op: ws.OpPing, payload: b125}).via(confPause),
		echoCase("2.17 pings between messages, answered in order",
			[]sframe{textEcho("1"), pongOf("a"), binEcho([]byte("2")), pongOf("b"), textEcho("3")},
			textFrame("1"), pingFrame("a"), binFrame([]byte("2")), pingFrame("b"), textFrame("3")),
		// Fragmented pings and pongs are 5.1 and 5.2.
	}
}

// Section 3: reserved bits. rsv holds RSV1..RSV3 as in Autobahn's
// numbering: 4 is RSV1, 2 RSV2, 1 RSV3.
func confRSVCases() []confCase {
	const small = "Hello, world!"
	bad := func(op ws.OpCode, rsv byte, p string) cframe { return cframe{op: op, rsv: rsv, payload: []byte(p)} }
	echo := []sframe{textEcho(small)}
	cases := []confCase{
		failCase("3.1 text with RSV=1", StatusProtocolError, nil, bad(ws.OpText, 1, small)),
		failCase("3.2 text with RSV=2 after an echo, then ping", StatusProtocolError, echo, textFrame(small), bad(ws.OpText, 2, small), pingFrame("")),
		failCase("3.3 text with RSV=3 after an echo, then ping, frame-wise", StatusProtocolError, echo, textFrame(small), bad(ws.OpText, 3, small), pingFrame("")).via(confFrameWise),
		failCase("3.4 text with RSV=4 after an echo, then ping, octet-wise", StatusProtocolError, echo, textFrame(small), bad(ws.OpText, 4, small), pingFrame("")).via(confOctetWise),
		failCase("3.5 binary with RSV=5", StatusProtocolError, nil, cframe{op: ws.OpBinary, rsv: 5, payload: []byte{0, 0xff, 0xfe}}),
		failCase("3.6 ping with RSV=6", StatusProtocolError, nil, bad(ws.OpPing, 6, small)),
		failCase("3.7 close with RSV=7", StatusProtocolError, nil, cframe{op: ws.OpClose, rsv: 7, payload: closePayload(1000, "")}),
	}
	ops := []struct {
		name  string
		frame func(rsv byte) cframe
	}{
		{"text", func(rsv byte) cframe { return bad(ws.OpText, rsv, "x") }},
		{"binary", func(rsv byte) cframe { return cframe{op: ws.OpBinary, rsv: rsv, payload: []byte{1, 2}} }},
		{"ping", func(rsv byte) cframe { return bad(ws.OpPing, rsv, "p") }},
		{"pong", func(rsv byte) cframe { return bad(ws.OpPong, rsv, "p") }},
		{"close", func(rsv byte) cframe { return cframe{op: ws.OpClose, rsv: rsv, payload: closePayload(1000, "")} }},
		{"empty text", func(rsv byte) cframe { return cframe{op: ws.OpText, rsv: rsv} }},
	}
	n := 0
	for rsv := byte(1); rsv <= 7; rsv++ {
		for _, op := range ops {
			n++
			cases = append(cases, failCase(fmt.Sprintf("3.8.%d %s with RSV=%d after an echo", n, op.name, rsv), StatusProtocolError,
				[]sframe{textEcho("before")}, textFrame("before"), op.frame(rsv), textFrame("after")))
		}
		cases = append(cases, failCase(fmt.Sprintf("3.9.%d continuation with RSV=%d after an echo", rsv, rsv), StatusProtocolError,
			[]sframe{textEcho("before")}, textFrame("before"), textFrame("a").notFinal(), cframe{op: ws.OpContinuation, rsv: rsv, payload: []byte("b")}))
	}
	return cases
}

// Section 4: reserved opcodes, 3-7 (data) and 0xB-0xF (control).
func confOpcodeCases() []confCase {
	const small = "Hello, world!"
	echo := []sframe{textEcho(small)}
	var cases []confCase
	for s, ops := range [][]ws.OpCode{{3, 4, 5, 6, 7}, {0xb, 0xc, 0xd, 0xe, 0xf}} {
		kind := []string{"non-control", "control"}[s]
		for i, op := range ops {
			// Autobahn's: empty alone, then with a payload alone, then
			// after a valid message and followed by a ping.
			var tc confCase
			switch i {
			case 0:
				tc = failCase("", StatusProtocolError, nil, cframe{op: op})
			case 1:
				tc = failCase("", StatusProtocolError, nil, cframe{op: op, payload: []byte("reserved")})
			default:
				tc = failCase("", StatusProtocolError, echo, textFrame(small), cframe{op: op, payload: []byte("reserved")}, pingFrame(""))
			}
			tc.name = fmt.Sprintf("4.%d.%d reserved %s opcode %d", s+1, i+1, kind, op)
			cases = append(cases, tc)
		}
		for i, op := range ops {
			cases = append(cases,
				failCase(fmt.Sprintf("4.%d.%d opcode %d alone with a payload", s+1, 6+i, op), StatusProtocolError, nil, cframe{op: op, payload: []byte("x")}),
				failCase(fmt.Sprintf("4.%d.%d opcode %d after a valid message", s+1, 11+i, op), StatusProtocolError,
					[]sframe{binEcho([]byte{7})}, binFrame([]byte{7}), cframe{op: op}),
				failCase(fmt.Sprintf("4.%d.%d opcode %d between fragments", s+1, 16+i, op), StatusProtocolError, nil,
					textFrame("a").notFinal(), cframe{op: op, payload: []byte("x")}, contFrame("b")),
				failCase(fmt.Sprintf("4.%d.%d opcode %d frame-wise", s+1, 21+i, op), StatusProtocolError,
					[]sframe{textEcho("ok")}, textFrame("ok"), cframe{op: op, payload: []byte("x")}).via(confFrameWise),
			)
		}
	}
	return cases
}

// Section 5: fragmentation (RFC 6455 section 5.4).
func confFragmentCases() []confCase {
	two := []cframe{textFrame("fragment1").notFinal(), contFrame("fragment2")}
	twoEcho := []sframe{textEcho("fragment1fragment2")}
	withPing := []cframe{textFrame("fragment1").notFinal(), pingFrame("pongme!"), contFrame("fragment2")}
	withPingEcho := []sframe{pongOf("pongme!"), textEcho("fragment1fragment2")}
	contFin := []cframe{contFrame("non-continuation payload"), textFrame("Hello, world!")}
	contMore := []cframe{contFrame("non-continuation payload").notFinal(), textFrame("Hello, world!")}
	five := []cframe{textFrame("fragment1").notFinal(), contFrame("fragment2").notFinal(), pingFrame("pongme 1!"),
		contFrame("fragment3").notFinal(), contFrame("fragment4").notFinal(), pingFrame("pongme 2!"), contFrame("fragment5")}
	fiveEcho := []sframe{pongOf("pongme 1!"), pongOf("pongme 2!"), textEcho("fragment1fragment2fragment3fragment4fragment5")}
	proto := StatusProtocolError
	cases := []confCase{
		failCase("5.1 ping in 2 fragments", proto, nil, pingFrame("fragment1").notFinal(), contFrame("fragment2")),
		failCase("5.2 pong in 2 fragments", proto, nil, pongFrame("fragment1").notFinal(), contFrame("fragment2")),
		echoCase("5.3 text in 2 fragments", twoEcho, two...),
		echoCase("5.4 text in 2 fragments, octet-wise", twoEcho, two...).via(confOctetWise),
		echoCase("5.5 text in 2 fragments, frame-wise", twoEcho, two...).via(confFrameWise),
		echoCase("5.6 text in 2 fragments with a ping between", withPingEcho, withPing...),
		echoCase("5.7 text in 2 fragments with a ping between, octet-wise", withPingEcho, withPing...).via(confOctetWise),
		echoCase("5.8 text in 2 fragments with a ping between, frame-wise", withPingEcho, withPing...).via(confFrameWise),
		failCase("5.9 final continuation with nothing to continue", proto, nil, contFin...),
		failCase("5.10 final continuation with nothing to continue, octet-wise", proto, nil, contFin...).via(confOctetWise),
		failCase("5.11 final continuation with nothing to continue, frame-wise", proto, nil, contFin...).via(confFrameWise),
		failCase("5.12 continuation with nothing to continue", proto, nil, contMore...),
		failCase("5.13 continuation with nothing to continue, octet-wise", proto, nil, contMore...).via(confOctetWise),
		failCase("5.14 continuation with nothing to continue, frame-wise", proto, nil, contMore...).via(confFrameWise),
		failCase("5.15 2 fragments, then a continuation with nothing to continue", proto, twoEcho,
			textFrame("fragment1").notFinal(), contFrame("fragment2"), contFrame("fragment3").notFinal(), textFrame("fragment4")),
		failCase("5.16 continuation with nothing to continue, then 2 fragments, twice", proto, nil,
			contFrame("fragment1").notFinal(), textFrame("fragment2").notFinal(), contFrame("fragment3"),
			contFrame("fragment1").notFinal(), textFrame("fragment2").notFinal(), contFrame("fragment3")),
		failCase("5.17 final continuation with nothing to continue, then 2 fragments, twice", proto, nil,
			contFrame("fragment1"), textFrame("fragment2").notFinal(), contFrame("fragment3"),
			contFrame("fragment1"), textFrame("fragment2").notFinal(), contFrame("fragment3")),
		failCase("5.18 text in 2 fragments both with opcode text", proto, nil, textFrame("fragment1").notFinal(), textFrame("fragment2")),
		echoCase("5.19 text in 5 fragments with 2 pings between, frame-wise", fiveEcho, five...).via(confFrameWise),
		echoCase("5.20 text in 5 fragments with 2 pings between, octet-wise", fiveEcho, five...).via(confOctetWise),
		failCase("5.21 binary started, then text", proto, nil, binFrame([]byte{1}).notFinal(), textFrame("x")),
		failCase("5.22 binary started, then a final binary", proto, nil, binFrame([]byte{1}).notFinal(), binFrame([]byte{2})),
		failCase("5.23 text started, then a binary fragment", proto, nil, textFrame("a").notFinal(), binFrame([]byte("b")).notFinal()),
		failCase("5.24 text started, then an empty text", proto, nil, textFrame("a").notFinal(), textFrame("")),
		echoCase("5.25 pong between fragments is ignored", []sframe{binEcho([]byte{1, 2})}, binFrame([]byte{1}).notFinal(), pongFrame("x"), contFrame("\x02")),
		echoCase("5.26 pings and pongs between every fragment", []sframe{pongOf("1"), pongOf("2"), textEcho("abc")},
			textFrame("a").notFinal(), pingFrame("1"), pongFrame("x"), contFrame("b").notFinal(), pongFrame(""), pingFrame("2"), contFrame("c")),
		echoCase("5.27 empty first fragment", []sframe{textEcho("ab")}, textFrame("").notFinal(), contFrame("ab")),
		echoCase("5.28 empty middle fragment", []sframe{textEcho("ab")}, textFrame("a").notFinal(), contFrame("").notFinal(), contFrame("b")),
		echoCase("5.29 empty last fragment", []sframe{binEcho([]byte("ab"))}, binFrame([]byte("ab")).notFinal(), contFrame("")),
		echoCase("5.30 text in 3 empty fragments", []sframe{textEcho("")}, textFrame("").notFinal(), contFrame("").notFinal(), contFrame("")),
		echoCase("5.31 binary in 3 empty fragments", []sframe{binEcho([]byte{})}, binFrame(nil).notFinal(), contFrame("").notFinal(), contFrame("")),
	}
	n := 31
	for _, k := range []int{2, 3, 5, 10, 100} {
		txt, bin := confText(1000), pattern(1000)
		n++
		cases = append(cases, echoCase(fmt.Sprintf("5.%d text in %d fragments", n, k), []sframe{textEcho(txt)}, manyFragments(ws.OpText, []byte(txt), k)...))
		n++
		cases = append(cases, echoCase(fmt.Sprintf("5.%d binary in %d fragments", n, k), []sframe{binEcho(bin)}, manyFragments(ws.OpBinary, bin, k)...))
	}
	txt, bin := confText(2000), pattern(2000)
	small := Config{MaxMessageSize: 256}
	tooBig := StatusMessageTooBig
	return append(cases,
		echoCase("5.42 text in 2000 1-byte fragments", []sframe{textEcho(txt)}, confFragments(ws.OpText, []byte(txt), 1)...),
		echoCase("5.43 binary in 2000 1-byte fragments", []sframe{binEcho(bin)}, confFragments(ws.OpBinary, bin, 1)...),
		echoCase("5.44 binary in 1-byte fragments, octet-wise", []sframe{binEcho(bin[:40])}, confFragments(ws.OpBinary, bin[:40], 1)...).via(confOctetWise),
		// MaxMessageSize 256: the fragments of a message add up.
		confCase{name: "5.45 fragments adding up to MaxMessageSize", cfg: small,
			frames: confFragments(ws.OpBinary, pattern(256), 100), want: []sframe{binEcho(pattern(256))}},
		confCase{name: "5.46 fragments passing MaxMessageSize", cfg: small, code: tooBig,
			frames: confFragments(ws.OpBinary, pattern(257), 100)},
		confCase{name: "5.47 text fragments passing MaxMessageSize, pings between", cfg: small, code: tooBig,
			frames: []cframe{textFrame(confText(200)).notFinal(), pingFrame("p"), contFrame(confText(57))}, want: []sframe{pongOf("p")}},
		confCase{name: "5.48 MaxMessageSize passed on a header, before its payload", cfg: small, code: tooBig, failFast: true,
			frames: []cframe{binFrame(pattern(200)).notFinal(), {op: ws.OpContinuation, declare: 57}}},
		confCase{name: "5.49 fragments passing MaxMessageSize, frame-wise", cfg: small, code: tooBig,
			frames: confFragments(ws.OpText, []byte(confText(300)), 64), wire: confFrameWise},
	)
}

// confU8 is one payload of the UTF-8 section: Markus Kuhn's UTF-8 decoder
// stress test, as Autobahn 6.5-6.23 arrange it, and this suite's own.
type confU8 struct {
	name  string
	s     string
	valid bool
}

// confU8Table is the table, by Autobahn subsection.
func confU8Table() [][]confU8 {
	kosme := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
	var prefixes []confU8
	for i := 1; i <= len(kosme); i++ {
		prefixes = append(prefixes, confU8{fmt.Sprintf("first %d bytes of kosme", i), kosme[:i], utf8.ValidString(kosme[:i])})
	}
	var cont []byte
	for b := 0x80; b <= 0xbf; b++ {
		cont = append(cont, byte(b))
	}
	var lonely [5]string
	for i, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		for b := r[0]; b <= r[1]; b++ {
			lonely[i] += string([]byte{byte(b), ' '})
		}
	}
	incomplete := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	var missing []confU8
	for _, s := range incomplete {
		missing = append(missing, confU8{fmt.Sprintf("last continuation byte missing % x", s), s, false})
	}
	var nonchars []confU8
	for plane := rune(0); plane <= 0x10; plane++ {
		for _, low := range []rune{0xfffe, 0xffff} {
			r := plane<<16 | low
			nonchars = append(nonchars, confU8{fmt.Sprintf("noncharacter U+%04X", r), string(r), true})
		}
	}
	surrogates := []string{"\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"}
	var single, paired []confU8
	for _, s := range surrogates {
		single = append(single, confU8{fmt.Sprintf("surrogate % x", s), s, false})
	}
	for _, hi := range surrogates[:4] {
		for _, lo := range []string{surrogates[4], surrogates[6]} {
			paired = append(paired, confU8{fmt.Sprintf("surrogate pair % x % x", hi, lo), hi + lo, false})
		}
	}
	return [][]confU8{
		5: {{"kosme", kosme, true}, {"U+10000", "\U00010000", true}, {"U+10FFFF", "\U0010ffff", true},
			{"CJK", "\u65e5\u672c\u8a9e", true}, {"mixed scripts", "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!! \u0395\u03bb \u05e2\u05d1 \U0001f600", true}},
		6: prefixes,
		7: {{"U+0000", "\x00", true}, {"U+0080", "\xc2\x80", true}, {"U+0800", "\xe0\xa0\x80", true}, {"U+10000", "\xf0\x90\x80\x80", true}},
		8: {{"5-byte U+200000", "\xf8\x88\x80\x80\x80", false}, {"6-byte U+4000000", "\xfc\x84\x80\x80\x80\x80", false}},
		9: {{"U+007F", "\x7f", true}, {"U+07FF", "\xdf\xbf", true}, {"U+FFFF", "\xef\xbf\xbf", true}, {"U+10FFFF", "\xf4\x8f\xbf\xbf", true}},
		10: {{"4-byte U+1FFFFF", "\xf7\xbf\xbf\xbf", false}, {"5-byte U+3FFFFFF", "\xfb\xbf\xbf\xbf\xbf", false},
			{"6-byte U+7FFFFFFF", "\xfd\xbf\xbf\xbf\xbf\xbf", false}},
		11: {{"U+D7FF", "\xed\x9f\xbf", true}, {"U+E000", "\xee\x80\x80", true}, {"U+FFFD", "\xef\xbf\xbd", true},
			{"U+10FFFF", "\xf4\x8f\xbf\xbf", true}, {"U+110000", "\xf4\x90\x80\x80", false}},
		12: {{"80", "\x80", false}, {"bf", "\xbf", false}, {"80 bf", "\x80\xbf", false}, {"80 bf 80", "\x80\xbf\x80", false},
			{"80 bf 80 bf", "\x80\xbf\x80\xbf", false}, {"80 bf 80 bf 80", "\x80\xbf\x80\xbf\x80", false},
			{"80 bf 80 bf 80 bf", "\x80\xbf\x80\xbf\x80\xbf", false}, {"all 64 continuation bytes", string(cont), false}},
		13: {{"2-byte leads each before a space", lonely[0], false}, {"3-byte leads each before a space", lonely[1], false},
			{"4-byte leads each before a space", lonely[2], false}, {"5-byte leads each before a space", lonely[3], false},
			{"6-byte leads each before a space", lonely[4], false}},
		14: missing,
		15: {{"all of 6.14 concatenated", strings.Join(incomplete, ""), false}},
		16: {{"fe", "\xfe", false}, {"ff", "\xff", false}, {"fe fe ff ff", "\xfe\xfe\xff\xff", false}},
		17: {{"overlong slash in 2 bytes", "\xc0\xaf", false}, {"overlong slash in 3 bytes", "\xe0\x80\xaf", false},
			{"overlong slash in 4 bytes", "\xf0\x80\x80\xaf", false}, {"overlong slash in 5 bytes", "\xf8\x80\x80\x80\xaf", false},
			{"overlong slash in 6 bytes", "\xfc\x80\x80\x80\x80\xaf", false}},
		18: {{"maximum overlong in 2 bytes", "\xc1\xbf", false}, {"maximum overlong in 3 bytes", "\xe0\x9f\xbf", false},
			{"maximum overlong in 4 bytes", "\xf0\x8f\xbf\xbf", false}, {"maximum overlong in 5 bytes", "\xf8\x87\xbf\xbf\xbf", false},
			{"maximum overlong in 6 bytes", "\xfc\x83\xbf\xbf\xbf\xbf", false}},
		19: {{"overlong NUL in 2 bytes", "\xc0\x80", false}, {"overlong NUL in 3 bytes", "\xe0\x80\x80", false},
			{"overlong NUL in 4 bytes", "\xf0\x80\x80\x80", false}, {"overlong NUL in 5 bytes", "\xf8\x80\x80\x80\x80", false},
			{"overlong NUL in 6 bytes", "\xfc\x80\x80\x80\x80\x80", false}},
		20: single,
		21: paired,
		22: nonchars,
		23: {{"U+FFFD", "\ufffd", true}, {"byte order mark", "\ufeff", true}, {"interlinear annotations", "\ufff9\ufffa\ufffb", true},
			{"U+FFFC", "\ufffc", true}, {"line and paragraph separators", "\u2028\u2029", true}, {"NUL inside text", "a\x00b", true},
			{"noncharacters U+FDD0 and U+FDEF", "\ufdd0\ufdef", true}},
	}
}

// Section 6: UTF-8 in text messages (RFC 6455 section 8.1, RFC 3629).
// Every payload of confU8Table is sent whole and in 1-byte fragments; an
// invalid one that no continuation could make valid is also sent as a
// first fragment alone, which must fail without the rest (fail fast).
func confUTF8Cases() []confCase {
	const (
		hello = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
		kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
		p1    = kosme
		p2    = "\xf4\x90\x80\x80" // U+110000, beyond Unicode
		p3    = "edited"
	)
	bad := kosme + "\xed\xa0\x80" + p3
	inval := StatusInvalidFramePayloadData
	var perRune []cframe
	for i, r := range hello {
		perRune = append(perRune, cframe{op: ws.OpContinuation, more: true, payload: []byte(string(r))})
		if i == 0 {
			perRune[0].op = ws.OpText
		}
	}
	perRune[len(perRune)-1].more = false
	// 6.4.3 and 6.4.4: one frame announcing all three parts, of which only
	// the first two (6.4.4: and one more byte) are sent, in chops.
	whole := cframe{op: ws.OpText, declare: int64(len(p1 + p2 + p3)), payload: []byte(p1 + p2)}
	h := len(whole.encode()) - len(whole.payload)
	cases := []confCase{
		echoCase("6.1.1 empty text", []sframe{textEcho("")}, textFrame("")),
		echoCase("6.1.2 text in 3 empty fragments", []sframe{textEcho("")}, textFrame("").notFinal(), contFrame("").notFinal(), contFrame("")),
		echoCase("6.1.3 text with empty first and last fragments", []sframe{textEcho("middle frame payload")},
			textFrame("").notFinal(), contFrame("middle frame payload").notFinal(), contFrame("")),
		echoCase("6.2.1 valid text in one frame", []sframe{textEcho(hello)}, textFrame(hello)),
		echoCase("6.2.2 valid text fragmented on code points", []sframe{textEcho(hello)}, perRune...),
		echoCase("6.2.3 valid text in 1-byte fragments", []sframe{textEcho(hello)}, confFragments(ws.OpText, []byte(hello), 1)...),
		echoCase("6.2.4 kosme in 1-byte fragments", []sframe{textEcho(kosme)}, confFragments(ws.OpText, []byte(kosme), 1)...),
		failCase("6.3.1 invalid text in one frame", inval, nil, textFrame(bad)),
		failCase("6.3.2 invalid text in 1-byte fragments", inval, nil, confFragments(ws.OpText, []byte(bad), 1)...),
		failCase("6.4.1 code point beyond U+10FFFF in the 2nd of 3 fragments, the 3rd never sent", inval, nil,
			textFrame(p1).notFinal(), contFrame(p2).notFinal()).via(confFrameWise).fast(),
		failCase("6.4.2 lead byte ending the 2nd fragment, made invalid by the 3rd, not final", inval, []sframe{pongOf("alive")},
			textFrame(p1).notFinal(), contFrame(p2[:1]).notFinal(), pingFrame("alive"), contFrame(p2[1:]+p3).notFinal()).via(confFrameWise).fast(),
		failCase("6.4.3 code point beyond U+10FFFF in the 2nd chop of one frame, the 3rd never sent", inval, nil,
			splitFrame(whole, h+len(p1))...).via(confFrameWise).fast(),
		failCase("6.4.4 lead byte ending the 2nd chop of one frame, made invalid by the 3rd", inval, nil,
			splitFrame(whole, h+len(p1), h+len(p1)+1, h+len(p1)+2)[:3]...).via(confFrameWise).fast(),
	}
	for sec, group := range confU8Table() {
		for i, u := range group {
			name := fmt.Sprintf("6.%d.%d %s", sec, i+1, u.name)
			p := []byte(u.s)
			if u.valid {
				cases = append(cases,
					echoCase(name+"/whole", []sframe{textEcho(u.s)}, textFrame(u.s)),
					echoCase(name+"/1-byte fragments", []sframe{textEcho(u.s)}, confFragments(ws.OpText, p, 1)...))
				continue
			}
			cases = append(cases,
				failCase(name+"/whole", inval, nil, textFrame(u.s)),
				failCase(name+"/1-byte fragments", inval, nil, confFragments(ws.OpText, p, 1)...))
			if !completable(p) {
				cases = append(cases, failCase(name+"/fail fast", inval, nil, textFrame(u.s).notFinal()).fast())
			}
		}
	}
	// Every valid 2-, 3- and 4-byte character split at every byte across
	// two fragments, each read on its own.
	n := 0
	for _, c := range []string{"\u0080", "\u07ff", "\u0800", "\ufffd", "\uffff", "\U00010000", "\U0010ffff", "\U0001f600"} {
		r, _ := utf8.DecodeRuneInString(c)
		for i := 1; i < len(c); i++ {
			n++
			cases = append(cases, echoCase(fmt.Sprintf("6.24.%d U+%04X split after byte %d", n, r, i), []sframe{textEcho("<" + c + ">")},
				textFrame("<"+c[:i]).notFinal(), contFrame(c[i:]+">")).via(confFrameWise))
		}
	}
	// Invalid sequences split at every byte across two fragments: the
	// message fails whether or not the second fragment is final.
	n = 0
	for _, s := range []string{"\xed\xa0\x80", "\xe0\x80\xaf", "\xc0\xaf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82(", "\xf0\x9f\x98 "} {
		for i := 1; i < len(s); i++ {
			n++
			name := fmt.Sprintf(".%d % x split after byte %d", n, s, i)
			cases = append(cases,
				failCase("6.25"+name, inval, nil, textFrame("a"+s[:i]).notFinal(), contFrame(s[i:]+"z")).via(confFrameWise),
				failCase("6.26"+name+", last fragment never sent", inval, nil,
					textFrame("a"+s[:i]).notFinal(), contFrame(s[i:]+"z").notFinal()).via(confFrameWise).fast())
		}
	}
	// Bytes that never occur in UTF-8.
	for i, b := range []byte{0xc0, 0xc1, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff} {
		s := "a" + string([]byte{b}) + "z"
		name := fmt.Sprintf("6.27.%d byte %02x", i+1, b)
		cases = append(cases,
			failCase(name+"/whole", inval, nil, textFrame(s)),
			failCase(name+"/fail fast", inval, nil, textFrame(s[:2]).notFinal()).fast())
	}
	return cases
}

// Section 7: the closing handshake (RFC 6455 sections 5.5.1, 7).
func confCloseCases() []confCase {
	closed := func(name string, code StatusCode, frames ...cframe) confCase {
		return confCase{name: name, frames: frames, code: code, echo: true}
	}
	bye := closeWith(1000, "")
	big := confText(256 << 10)
	proto := StatusProtocolError
	cases := []confCase{
		{name: "7.1.1 message, then close", frames: []cframe{textFrame("Hello World!"), bye}, want: []sframe{textEcho("Hello World!")}, code: 1000, echo: true},
		closed("7.1.2 close twice", 1000, bye, bye),
		closed("7.1.3 ping after close is not answered", 1000, bye, pingFrame("after close")),
		closed("7.1.4 text after close is not echoed", 1000, bye, textFrame("after close")),
		closed("7.1.5 close between fragments drops the message", 1000, textFrame("fragment1").notFinal(), bye, contFrame("fragment2")),
		{name: "7.1.6 256 KiB message, close, ping", frames: []cframe{textFrame(big), bye, pingFrame("after close")},
			want: []sframe{textEcho(big)}, code: 1000, echo: true},
		{name: "7.1.7 close frame-wise after a message", frames: []cframe{binFrame([]byte{1}), bye}, want: []sframe{binEcho([]byte{1})},
			code: 1000, echo: true, wire: confFrameWise},
		closed("7.1.8 close with a pause mid-frame", 1000, closeWith(1000, "pause")).via(confPause),
		closed("7.1.9 close octet-wise", 4000, closeWith(4000, "octets")).via(confOctetWise),
		closed("7.1.10 close between fragments, frame-wise", 1001, textFrame("a").notFinal(), closeWith(1001, ""), contFrame("b")).via(confFrameWise),
		closed("7.3.1 close without payload is answered without payload", StatusNoStatusRcvd, closeFrameOf(nil)),
		failCase("7.3.2 close with a 1-byte payload", proto, nil, closeFrameOf([]byte{0x03})),
		closed("7.3.3 close 1000 without reason", 1000, bye),
		closed("7.3.4 close 1000 with a reason", 1000, closeWith(1000, "Hello World!")),
		closed("7.3.5 close with a 123-byte reason", 1000, closeWith(1000, strings.Repeat("*", 123))),
		failCase("7.3.6 close with a 124-byte reason", proto, nil, closeWith(1000, strings.Repeat("*", 124))),
		failCase("7.5.1 close reason of invalid UTF-8", StatusInvalidFramePayloadData, nil, closeWith(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")),
		failCase("7.5.2 close reason ending inside a character", StatusInvalidFramePayloadData, nil, closeWith(1000, "\u20ac"[:2])),
		closed("7.5.3 close reason of 123 bytes of multi-byte characters", 1000, closeWith(1000, confText(123))),
		failCase("7.5.4 invalid code with an invalid reason", proto, nil, closeWith(999, "\xed\xa0\x80")),
	}
	for i, code := range []StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999, 1012, 1013, 1014} {
		cases = append(cases, closed(fmt.Sprintf("7.7.%d close code %d", i+1, code), code, closeWith(code, "")))
	}
	for i, code := range []StatusCode{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015} {
		cases = append(cases, failCase(fmt.Sprintf("7.9.%d close code %d", i+1, code), proto, nil, closeWith(code, "")))
	}
	return append(cases,
		failCase("7.13.1 close code 5000", proto, nil, closeWith(5000, "")),
		failCase("7.13.2 close code 65535", proto, nil, closeWith(65535, "")),
	)
}

// confSize names a size in bytes.
func confSize(n int) string {
	switch {
	case n >= mib:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Section 9: limits, scaled to the default MaxMessageSize of 1 MiB.
func confLimitCases() []confCase {
	var cases []confCase
	for k, kind := range []string{"text", "binary"} {
		for i, n := range []int{64 << 10, 256 << 10, mib} {
			f, e := confMsg(kind, n)
			cases = append(cases, echoCase(fmt.Sprintf("9.%d.%d %s %s", k+1, i+1, kind, confSize(n)), []sframe{e}, f))
		}
		f, e := confMsg(kind, mib)
		for i, size := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, mib} {
			cases = append(cases, echoCase(fmt.Sprintf("9.%d.%d %s 1 MiB in fragments of %s", k+3, i+1, kind, confSize(size)),
				[]sframe{e}, confFragments(f.op, f.payload, size)...))
		}
	}
	tooBig := StatusMessageTooBig
	half := confText(mib / 2)
	frameCap := Config{MaxMessageSize: 4000, MaxFrameSize: 1000}
	return append(cases,
		failCase("9.9.1 text announcing 1 MiB+1 fails on its header", tooBig, nil,
			cframe{op: ws.OpText, declare: mib + 1, payload: []byte(confText(100))}).fast(),
		failCase("9.9.2 binary announcing 1 MiB+1 fails on its header", tooBig, nil,
			cframe{op: ws.OpBinary, declare: mib + 1, payload: pattern(100)}).fast(),
		failCase("9.9.3 64-bit length of 2^62", tooBig, nil, cframe{op: ws.OpBinary, declare: 1 << 62}).fast(),
		failCase("9.9.4 64-bit length of 2^63-1", tooBig, nil, cframe{op: ws.OpText, declare: 1<<63 - 1}).fast(),
		failCase("9.9.5 1 MiB fragment, then a continuation announcing 1 byte", tooBig, nil,
			binFrame(pattern(mib)).notFinal(), cframe{op: ws.OpContinuation, declare: 1}).fast(),
		failCase("9.9.6 text fragments of 512 KiB, 512 KiB and 1 byte", tooBig, nil,
			textFrame(half).notFinal(), contFrame(half).notFinal(), contFrame("x")),
		failCase("9.9.7 binary 1 MiB+1 sent whole", tooBig, nil, binFrame(pattern(mib+1))),
		confCase{name: "9.9.8 fragments within MaxFrameSize add up to MaxMessageSize", cfg: frameCap,
			frames: confFragments(ws.OpBinary, pattern(4000), 1000), want: []sframe{binEcho(pattern(4000))}},
		confCase{name: "9.9.9 fragment past MaxFrameSize", cfg: frameCap, code: tooBig,
			frames: []cframe{binFrame(pattern(1000)).notFinal(), contFrame(string(pattern(1001)))}},
		confCase{name: "9.9.10 frame past MaxFrameSize fails on its header", cfg: frameCap, code: tooBig, failFast: true,
			frames: []cframe{{op: ws.OpBinary, declare: 1001, payload: pattern(10)}}},
	)
}
