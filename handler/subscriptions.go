package handler

import (
	"slices"
	"sync"
)

// subscriptions is one connection's channels, kept with Conn.SetValue. It
// is created by the first subscribe and dropped with the last unsubscribe,
// so a connection subscribed to nothing holds nothing. A short slice, not a
// map: a connection has a few subscriptions (MaxSubscriptions at most), and
// a one-entry slice costs 32 bytes where a map costs ten times that, for
// every connection of a push gateway.
//
// It is changed from the connection's own handler calls, which the server
// makes one at a time, and by the store jobs of stored.go, which finish a
// subscribe off the connection's worker; mu orders the two.
type subscriptions struct {
	mu      sync.Mutex
	list    []*channel
	pending []string   // channels a store job is joining (stored.go)
	jl      []*channel // the join and leave listeners c is among (presence.go)
	closed  bool       // OnClose ran: no job joins anything more
}

// has reports whether c is subscribed to name or joining it, and how many
// channels it has or joins. s.mu is held.
func (s *subscriptions) has(name string) (bool, int) {
	return s.find(name) >= 0 || slices.Contains(s.pending, name), len(s.list) + len(s.pending)
}

// dropPending removes name from the pending joins and reports whether it
// was there. s.mu is held.
func (s *subscriptions) dropPending(name string) bool {
	i := slices.Index(s.pending, name)
	if i < 0 {
		return false
	}
	s.pending = slices.Delete(s.pending, i, i+1)
	return true
}

// find returns the position of the channel called name, or -1.
func (s *subscriptions) find(name string) int {
	for i, ch := range s.list {
		if ch.name == name {
			return i
		}
	}
	return -1
}

// removeAt deletes the entry at i, moving the last one into its place.
func (s *subscriptions) removeAt(i int) {
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.list[last] = nil
	s.list = s.list[:last]
}
