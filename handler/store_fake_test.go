package handler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeStore is a StoreBroker in memory that behaves as broker.NATS on
// JetStream does where the handler can tell: one sequence for all
// channels, the last size publications of each kept, every stored
// publication handed to DeliverStored of the acquiring Channels with its
// predecessor, from a goroutine of its own, in order. Tests make it fail
// (down), stall (hold) and lose deliveries (drop).
type fakeStore struct {
	t     testing.TB
	size  int
	epoch string

	mu      sync.Mutex
	seq     uint64
	msgs    map[string][]StoredMessage
	subs    map[string]*fakeSub
	gen     uint64
	down    bool
	drop    int           // deliveries to lose, the next ones
	hold    chan struct{} // non-nil: Acquire waits for it to close
	deliver func(channel string, gen, offset, prev uint64, epoch string, data []byte)

	queue chan func() // deliveries, run in order by one goroutine
	wg    sync.WaitGroup
}

type fakeSub struct {
	refs int
	gen  uint64
}

var errFakeDown = errors.New("fake store down")

// newFakeStore returns a fakeStore keeping size publications per channel,
// set as h's broker, and stopped when the test ends.
func newFakeStore(t testing.TB, h *Channels, size int) *fakeStore {
	s := &fakeStore{t: t, size: size, epoch: "e1", msgs: map[string][]StoredMessage{}, subs: map[string]*fakeSub{},
		deliver: h.DeliverStored, queue: make(chan func(), 1<<16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for f := range s.queue {
			f()
		}
	}()
	h.SetBroker(s)
	t.Cleanup(func() {
		waitFor(t, "the store jobs to end", func() bool { return h.jobs.waiting() == 0 })
		s.mu.Lock()
		close(s.queue)
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeStore) Stored(string) bool { return true }

func (s *fakeStore) Interest(channel string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.acquireLocked(channel)
	} else {
		s.releaseLocked(channel)
	}
}

func (s *fakeStore) Publish(string, []byte) error { return nil }

func (s *fakeStore) acquireLocked(channel string) uint64 {
	e := s.subs[channel]
	if e == nil {
		s.gen++
		e = &fakeSub{gen: s.gen}
		s.subs[channel] = e
	}
	e.refs++
	return e.gen
}

func (s *fakeStore) releaseLocked(channel string) {
	if e := s.subs[channel]; e != nil {
		if e.refs--; e.refs == 0 {
			delete(s.subs, channel)
		}
	}
}

func (s *fakeStore) Acquire(_ context.Context, channel string) (uint64, error) {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return 0, errFakeDown
	}
	return s.acquireLocked(channel), nil
}

func (s *fakeStore) Release(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(channel)
}

func (s *fakeStore) Generation(channel string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.subs[channel]; e != nil {
		return e.gen
	}
	return 0
}

func (s *fakeStore) PublishStored(_ context.Context, channel string, data []byte) (Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return Position{}, errFakeDown
	}
	s.seq++
	seq := s.seq
	kept := s.msgs[channel]
	var prev uint64
	if len(kept) > 0 {
		prev = kept[len(kept)-1].Offset
	}
	kept = append(kept, StoredMessage{Offset: seq, Data: append([]byte(nil), data...)})
	if len(kept) > s.size {
		kept = kept[len(kept)-s.size:]
	}
	s.msgs[channel] = kept
	if e := s.subs[channel]; e != nil {
		if s.drop > 0 {
			s.drop--
		} else {
			gen, epoch, d := e.gen, s.epoch, append([]byte(nil), data...)
			s.queue <- func() { s.deliver(channel, gen, seq, prev, epoch, d) }
		}
	}
	return Position{Offset: seq, Epoch: s.epoch}, nil
}

func (s *fakeStore) PublishStoredAsync(channel string, data []byte, done func(Position, error)) error {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return errFakeDown
	}
	p, err := s.PublishStored(context.Background(), channel, data)
	go done(p, err) // from another goroutine, as the broker does
	return nil
}

func (s *fakeStore) Fetch(_ context.Context, channel string, after uint64, max, maxBytes int) ([]StoredMessage, string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, "", false, errFakeDown
	}
	var out []StoredMessage
	size := 0
	kept := s.msgs[channel]
	for i, m := range kept {
		if m.Offset <= after {
			continue
		}
		if len(out) == max || len(out) > 0 && size >= maxBytes {
			return out, s.epoch, true, nil
		}
		out = append(out, m)
		size += len(m.Data)
		if i == len(kept)-1 {
			break
		}
	}
	return out, s.epoch, false, nil
}

func (s *fakeStore) Last(_ context.Context, channel string) (Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return Position{}, errFakeDown
	}
	p := Position{Epoch: s.epoch}
	if kept := s.msgs[channel]; len(kept) > 0 {
		p.Offset = kept[len(kept)-1].Offset
	}
	return p, nil
}

func (s *fakeStore) Epoch(string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// set changes the store's state under its lock.
func (s *fakeStore) set(f func(s *fakeStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}
