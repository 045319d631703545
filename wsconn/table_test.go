package wsconn

import "testing"

// TestTableVisits: the sweeper looks at a slot's connection when its
// visit time comes, and at no other; visitBy only moves a visit up, and
// only for the connection the slot holds; the callback's answer is the
// next visit.
func TestTableVisits(t *testing.T) {
	a, b, other := new(conn), new(conn), new(conn)
	type step struct {
		name  string
		do    func(tb *connTable)
		now   uint32
		want  []*conn // looked at, in slot order
		nextA uint32  // what the callback answers for a (b always 0)
	}
	steps := []step{
		{name: "before any visit", now: 99, want: nil},
		{name: "a's visit comes", now: 100, want: []*conn{a}, nextA: 500},
		{name: "cleared after the visit, until the next", now: 499, want: nil},
		{name: "visitBy later changes nothing", do: func(tb *connTable) { tb.visitBy(3, a, 900) }, now: 499, want: nil},
		{name: "visitBy sooner moves it up", do: func(tb *connTable) { tb.visitBy(3, a, 300) }, now: 300, want: []*conn{a}},
		{name: "a's answer 0: no visit", now: 1 << 20, want: nil},
		{name: "visitBy for another connection is ignored", do: func(tb *connTable) { tb.visitBy(3, other, 10) }, now: 1<<20 + 1, want: nil},
		{name: "visitBy sets a cleared visit", do: func(tb *connTable) { tb.visitBy(3, a, 2000) }, now: 1<<20 + 2, want: []*conn{a}},
		{name: "b, put with a visit, in a later chunk", do: func(tb *connTable) { tb.put(1500, b, 1<<20+3) }, now: 1<<20 + 3, want: []*conn{b}},
		{name: "a removed is not looked at", do: func(tb *connTable) { tb.visitBy(3, a, 5); tb.remove(3, a) }, now: 1<<20 + 4, want: nil},
	}
	tb := newConnTable(4096)
	tb.put(3, a, 100)
	for _, st := range steps {
		if st.do != nil {
			st.do(tb)
		}
		var got []*conn
		tb.due(st.now, func(c *conn) uint32 {
			got = append(got, c)
			if c == a {
				return st.nextA
			}
			return 0
		})
		if len(got) != len(st.want) {
			t.Fatalf("%s: looked at %d connections, want %d", st.name, len(got), len(st.want))
		}
		for i := range got {
			if got[i] != st.want[i] {
				t.Fatalf("%s: looked at the wrong connection", st.name)
			}
		}
	}
}
