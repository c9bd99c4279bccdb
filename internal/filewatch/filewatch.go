// Package filewatch says when files may have changed, the way a mounted
// ConfigMap, an editor or an atomic rename changes them: it watches their
// directories (the file's inode goes with each of those), acts at once on
// a ConfigMap's ..data swap (an update is complete when it lands),
// gathers a burst of writes to the files themselves into one check, and
// polls as a safety net behind the events.
package filewatch

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Reason says why Run calls its check.
type Reason int

const (
	Started   Reason = iota // once, when the watch is in place
	Changed                 // a file event, or a ..data swap
	Polled                  // the safety-net poll
	Triggered               // asked for on Trigger (SIGHUP)
)

// Watch is what to watch and how.
type Watch struct {
	Files    []string
	Debounce time.Duration   // default 100 ms
	Poll     time.Duration   // default 10 s
	Trigger  <-chan struct{} // optional: a check asked for
	Logger   *slog.Logger
}

// Run calls check once the watch is in place, then whenever one of the
// files may have changed, until ctx ends. check runs on Run's goroutine,
// one call at a time. Without file events (fsnotify unavailable, a
// directory not there) the poll still finds every change, only later.
func (w Watch) Run(ctx context.Context, check func(Reason)) {
	if w.Debounce <= 0 {
		w.Debounce = 100 * time.Millisecond
	}
	if w.Poll <= 0 {
		w.Poll = 10 * time.Second
	}
	if w.Logger == nil {
		w.Logger = slog.New(slog.DiscardHandler)
	}
	names := map[string]bool{}
	dataLinks := map[string]bool{}
	for _, f := range w.Files {
		names[filepath.Clean(f)] = true
		dataLinks[filepath.Join(filepath.Dir(f), "..data")] = true
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fw, err := fsnotify.NewWatcher(); err != nil {
		w.Logger.Warn("cannot watch files; polling only", "err", err, "poll", w.Poll.String())
	} else {
		defer fw.Close()
		events, errs = fw.Events, fw.Errors
		added := map[string]bool{}
		for _, f := range w.Files {
			dir := filepath.Dir(f)
			if added[dir] {
				continue
			}
			added[dir] = true
			if err := fw.Add(dir); err != nil {
				w.Logger.Warn("cannot watch a dir; polling it only", "dir", dir, "err", err, "poll", w.Poll.String())
			}
		}
	}

	check(Started)
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	poll := time.NewTicker(w.Poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			switch name := filepath.Clean(ev.Name); {
			case dataLinks[name]:
				check(Changed)
			case names[name]:
				debounce.Reset(w.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.Logger.Warn("watching files", "err", err)
		case <-debounce.C:
			check(Changed)
		case <-poll.C:
			check(Polled)
		case <-w.Trigger:
			check(Triggered)
		}
	}
}
