package discover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// DefaultRescan is the safety-net rescan period when none is given.
	DefaultRescan = 10 * time.Second
	// debounce coalesces a burst of events (udev makes a node, then its
	// links) into one scan, well within the one second hotplug target.
	debounce = 20 * time.Millisecond
	// changeOps are the events that can change a result; writes to a busy
	// tty and chmods by udev cannot.
	changeOps = fsnotify.Create | fsnotify.Remove | fsnotify.Rename
)

// Watcher follows a Spec's result as devices come and go: fsnotify on
// every directory a pattern can match in, and a slow rescan as a safety
// net for missed events.
type Watcher struct {
	root   string
	spec   Spec
	max    int
	rescan time.Duration
	// newNotify opens fsnotify; tests make it fail.
	newNotify func() (*fsnotify.Watcher, error)

	mu        sync.Mutex
	notifyErr error // fsnotify could not watch everything
	scanErr   error // the last rescan failed
}

// NewWatcher returns a watcher of Scan(root, s, max), rescanning every
// rescan (DefaultRescan if <= 0) besides fsnotify.
func NewWatcher(root string, s Spec, max int, rescan time.Duration) *Watcher {
	if rescan <= 0 {
		rescan = DefaultRescan
	}
	return &Watcher{root: root, spec: s, max: max, rescan: rescan, newNotify: fsnotify.NewWatcher}
}

// Degraded says why the watcher is not fully working, or nil: fsnotify
// unavailable or short of watches (changes are then seen only at the next
// rescan), or the last rescan failed (the last Result stands). It is for
// the caller to log; Run goes on either way.
func (w *Watcher) Degraded() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.notifyErr, w.scanErr)
}

// Run scans, calls changed with the result, then again each time the
// result differs, until ctx ends (then it returns nil). changed runs on
// Run's goroutine, so a slow one delays the next scan. The error is the
// first scan's: the spec or root is unusable.
func (w *Watcher) Run(ctx context.Context, changed func(Result)) error {
	want := map[string]bool{}
	last, err := scan(w.root, w.spec, w.max, want)
	if err != nil {
		return err
	}
	changed(last)
	t, err := openTree(w.root)
	if err != nil {
		return fmt.Errorf("discover: %w", err)
	}

	var events <-chan fsnotify.Event
	var errs <-chan error
	var dirs *dirWatch
	if fw, err := w.newNotify(); err != nil {
		w.setNotifyErr(fmt.Errorf("fsnotify unavailable, rescanning every %s only: %w", w.rescan, err))
	} else {
		defer fw.Close()
		events, errs, dirs = fw.Events, fw.Errors, newDirWatch(fw, t)
	}

	var due <-chan time.Time // armed while a scan is pending
	arm := func() {
		if due == nil {
			due = time.After(debounce)
		}
	}
	syncDirs := func() {
		if dirs == nil {
			return
		}
		added, err := dirs.sync(want)
		w.setNotifyErr(err)
		if added {
			arm()
		}
	}
	syncDirs()

	ticker := time.NewTicker(w.rescan)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op&changeOps != 0 {
				dirs.seen(ev)
				arm()
			}
			continue
		case _, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Mostly a queue overflow: events were lost.
			arm()
			continue
		case <-due:
			due = nil
		case <-ticker.C:
		}
		want = map[string]bool{}
		res, err := scan(w.root, w.spec, w.max, want)
		w.setScanErr(err)
		if err != nil {
			continue
		}
		syncDirs()
		if !res.Equal(last) {
			last = res
			changed(res)
		}
	}
}

func (w *Watcher) setNotifyErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notifyErr = err
}

func (w *Watcher) setScanErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.scanErr = err
}
