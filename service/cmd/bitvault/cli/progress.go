package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress shows a transfer's progress on stderr: on a terminal, one line rewritten in place
// (at most every interval); elsewhere, nothing until the summary line of done.
type progress struct {
	w        io.Writer
	tty      bool
	label    string
	interval time.Duration
	start    time.Time

	mu      sync.Mutex
	last    time.Time
	shown   bool
	phase   string
	n, size int64
}

func (a *app) newProgress(label string, quiet bool) *progress {
	if quiet {
		return &progress{w: io.Discard, label: label, start: time.Now()}
	}
	return &progress{w: a.stderr, tty: isTerminal(a.env.Stderr, a.env.StderrIsTerminal), label: label, interval: 100 * time.Millisecond, start: time.Now()}
}

// update is a client.Progress.
func (p *progress) update(phase string, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.n, p.size = phase, done, total
	if !p.tty {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < p.interval && done != total {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "\r\033[K%s", p.line())
	p.shown = true
}

// line renders the current state.
func (p *progress) line() string {
	verb := map[string]string{"hash": "hashing", "upload": "uploading", "download": "downloading"}[p.phase]
	if verb == "" {
		verb = p.phase
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s  %s", verb, p.label, humanSize(p.n))
	if p.size > 0 {
		fmt.Fprintf(&b, " / %s  %3d%%", humanSize(p.size), p.n*100/p.size)
	}
	if secs := time.Since(p.start).Seconds(); secs > 0.5 {
		fmt.Fprintf(&b, "  %s/s", humanSize(int64(float64(p.n)/secs)))
	}
	return b.String()
}

// done ends the progress line with a summary.
func (p *progress) done(summary string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
	if summary != "" {
		fmt.Fprintf(p.w, "%s (%s)\n", summary, time.Since(p.start).Round(time.Millisecond))
	}
}

// fail clears the progress line before an error is printed.
func (p *progress) fail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
