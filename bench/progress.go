package main

import (
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how a phase advances: a progress bar on a terminal, a
// plain line every second otherwise (logs, CI).
type progress struct {
	bar   *progressbar.ProgressBar
	total int
	what  string
	last  time.Time
}

func newProgress(total int, what string) *progress {
	p := &progress{total: total, what: what}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		p.bar = progressbar.NewOptions(max(total, -1),
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	return p
}

// set reports the current open connections and delivered messages.
func (p *progress) set(open, delivered int64) {
	if p.bar != nil {
		if p.total > 0 {
			_ = p.bar.Set64(open)
		} else {
			p.bar.Describe(fmt.Sprintf("%s: %d open, %d messages", p.what, open, delivered))
			_ = p.bar.Add(1)
		}
		return
	}
	if time.Since(p.last) >= time.Second {
		p.last = time.Now()
		progressf("%s: %d open, %d messages", p.what, open, delivered)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func progressf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
}
