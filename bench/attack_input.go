package main

// Attack mode (attack.go): the scenarios against input handling: emptycont, endless and announce.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ContFigures are emptycont's figures.
type ContFigures struct {
	Conns         int            `json:"conns"`
	Opened        int            `json:"opened"`
	Failures      map[string]int `json:"failures"`
	Seconds       float64        `json:"seconds"`
	PerConn       []ContConn     `json:"per_conn"`
	FramesTotal   int64          `json:"frames_total"`
	ServerCPUSecs float64        `json:"server_cpu_secs"`
	ServerCores   float64        `json:"server_cores"` // CPU seconds per second of attack
}

// ContConn is one emptycont connection's share.
type ContConn struct {
	Frames   int64    `json:"frames_sent"` // the first one included
	Ended    *peerEnd `json:"ended"`       // nil: open when the attack stopped
	WriteErr string   `json:"write_error,omitempty"`
}

func (f *ContFigures) summary() string {
	ends := make([]string, 0, len(f.PerConn))
	for _, c := range f.PerConn {
		if c.Ended == nil {
			ends = append(ends, "open")
		} else {
			ends = append(ends, fmt.Sprintf("%s after %.2f s", c.Ended, c.Ended.AfterS))
		}
	}
	return fmt.Sprintf("%d conns sent %d frames in %.1f s; ends: %s; server CPU %.2f s (%.0f%% of a core)",
		f.Opened, f.FramesTotal, f.Seconds, strings.Join(ends, ", "), f.ServerCPUSecs, 100*f.ServerCores)
}

// emptyFrameSize is the size of an empty masked frame: 2 header bytes and
// a 4-byte mask.
const emptyFrameSize = 6

func (a *attack) emptyCont() *ContFigures {
	f := &ContFigures{Conns: a.o.n}
	peers, fails := a.dialMany(a.o.n, "/echo", 0)
	f.Opened, f.Failures = len(peers), fails
	start := []byte{0x01, 0x80, 0, 0, 0, 0}                                        // text, FIN=0, empty
	chunk := bytes.Repeat([]byte{0x00, 0x80, 0, 0, 0, 0}, (64<<10)/emptyFrameSize) // continuations, FIN=0
	f.PerConn = make([]ContConn, len(peers))
	cpu0, _ := readProc(a.o.pid)
	t0 := time.Now()
	deadline := t0.Add(a.o.duration)
	var wg sync.WaitGroup
	for i, p := range peers {
		p.t0 = t0
		a.read(p, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := &f.PerConn[i]
			_ = p.conn.SetWriteDeadline(deadline)
			// Each write under the lock, so that the reader's pongs and
			// close reply go out between them.
			write := func(b []byte) error {
				p.wmu.Lock()
				defer p.wmu.Unlock()
				n, err := p.conn.Write(b)
				cc.Frames += int64(n)
				return err
			}
			err := write(start)
			for err == nil && p.endOf() == nil {
				err = write(chunk)
			}
			cc.Frames /= emptyFrameSize // bytes written so far: whole frames
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				cc.WriteErr = failClass(err)
			}
			_ = p.conn.SetWriteDeadline(time.Time{})
		}()
	}
	wg.Wait()
	f.Seconds = time.Since(t0).Seconds()
	cpu1, _ := readProc(a.o.pid)
	f.ServerCPUSecs = cpu1.CPUSecs - cpu0.CPUSecs
	if f.Seconds > 0 {
		f.ServerCores = f.ServerCPUSecs / f.Seconds
	}
	// A close frame the server sent as the attack stopped: give it a
	// moment to arrive.
	waitEnded(peers, time.Now().Add(500*time.Millisecond))
	for i, p := range peers {
		f.PerConn[i].Ended = p.endOf()
		f.FramesTotal += f.PerConn[i].Frames
	}
	return f
}

// Scenario endless.

// EndlessFigures are endless's figures.
type EndlessFigures struct {
	Conns         int            `json:"conns"`
	Opened        int            `json:"opened"`
	Failures      map[string]int `json:"failures"`
	Fragments     int            `json:"fragments"`
	FragmentBytes int            `json:"fragment_bytes"`
	IntervalS     float64        `json:"trickle_interval_s"`
	Seconds       float64        `json:"seconds"`
	SentBytes     int64          `json:"sent_bytes"`
	Cut           int            `json:"cut"`
	Ends          map[string]int `json:"ends"`        // by how; "open": not cut
	CutAfter      *spread        `json:"cut_after_s"` // since the first fragment
}

func (f *EndlessFigures) summary() string {
	after := "-"
	if f.CutAfter != nil {
		after = fmt.Sprintf("%.1f/%.1f/%.1f s", f.CutAfter.Min, f.CutAfter.Median, f.CutAfter.Max)
	}
	return fmt.Sprintf("%d conns sent %d MiB; %d cut (%v), after min/median/max %s", f.Opened, f.SentBytes>>20, f.Cut, f.Ends, after)
}

// fragment compiles a masked non-final fragment of size bytes of 'x':
// text (opcode 1) when first, a continuation (opcode 0) otherwise.
func fragment(first bool, size int) []byte {
	f := clientFrame(0x1, bytes.Repeat([]byte{'x'}, size))
	f[0] = 0x00 // FIN=0, continuation
	if first {
		f[0] = 0x01 // FIN=0, text
	}
	return f
}

func (a *attack) endless() *EndlessFigures {
	f := &EndlessFigures{Conns: a.o.n, Fragments: a.o.fragments, FragmentBytes: a.o.fragSize, IntervalS: a.o.interval.Seconds()}
	peers, fails := a.dialMany(a.o.n, "/echo", 0)
	f.Opened, f.Failures = len(peers), fails
	first, cont := fragment(true, a.o.fragSize), fragment(false, a.o.fragSize)
	empty := []byte{0x00, 0x80, 0, 0, 0, 0}
	t0 := time.Now()
	deadline := t0.Add(a.o.duration)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for _, p := range peers {
		p.t0 = t0
		a.read(p, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.conn.SetWriteDeadline(deadline)
			for i := 0; i < a.o.fragments; i++ {
				frame := cont
				if i == 0 {
					frame = first
				}
				if p.write(frame) != nil {
					return
				}
				sent.Add(int64(len(frame)))
			}
			tick := time.NewTicker(a.o.interval)
			defer tick.Stop()
			over := time.NewTimer(time.Until(deadline))
			defer over.Stop()
			for {
				select {
				case <-p.endCh:
					return
				case <-over.C:
					return
				case <-tick.C:
					if p.write(empty) != nil {
						return
					}
					sent.Add(emptyFrameSize)
				}
			}
		}()
	}
	wg.Wait()
	f.Seconds = time.Since(t0).Seconds()
	f.SentBytes = sent.Load()
	waitEnded(peers, time.Now().Add(500*time.Millisecond))
	var after []float64
	f.Ends, after = endCounts(peers)
	f.Cut = len(after)
	f.CutAfter = spreadOf(after)
	return f
}

// Scenario announce.

// AnnounceFigures are announce's figures.
type AnnounceFigures struct {
	Conns          int            `json:"conns"`
	Opened         int            `json:"opened"`
	Failures       map[string]int `json:"failures"`
	AnnouncedBytes int            `json:"announced_bytes"` // per connection
	SentBytes      int            `json:"sent_bytes"`      // per connection: header and payload
	HoldS          float64        `json:"hold_s"`
	Ends           map[string]int `json:"ends"`
}

func (f *AnnounceFigures) summary() string {
	return fmt.Sprintf("%d conns announced %d bytes each with %d, held %.0f s; ends %v",
		f.Opened, f.AnnouncedBytes, f.SentBytes, f.HoldS, f.Ends)
}

func (a *attack) announce() *AnnounceFigures {
	const announced, payload = 1 << 20, 10
	// FIN=1 binary, mask bit and the 64-bit length form, a zero mask,
	// then the first 10 bytes of the payload.
	msg := make([]byte, 0, 14+payload)
	msg = append(msg, 0x82, 0x80|127)
	msg = binary.BigEndian.AppendUint64(msg, announced)
	msg = append(msg, 0, 0, 0, 0)
	msg = append(msg, bytes.Repeat([]byte{'x'}, payload)...)
	f := &AnnounceFigures{Conns: a.o.n, AnnouncedBytes: announced, SentBytes: len(msg), HoldS: a.o.hold.Seconds()}
	peers, fails := a.dialMany(a.o.n, "/echo", 0)
	f.Opened, f.Failures = len(peers), fails
	for _, p := range peers {
		p.t0 = time.Now()
		a.read(p, nil)
		if err := p.write(msg); err != nil {
			f.Failures["write_"+failClass(err)]++
		}
	}
	time.Sleep(a.o.hold)
	f.Ends, _ = endCounts(peers)
	return f
}

// Scenario fanout.
