package host

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

const kubeletSocketName = "kubelet.sock"

func socketBase(p *Plugin) string { return filepath.Base(p.socketPath) }

// watchDir turns what happens in the socket dir into pokes: a new
// kubelet.sock wakes every plugin; a socket removed or replaced makes its
// plugin check its session. A slow poll backs fsnotify up and re-adds the
// watch when the dir comes back.
func (h *Host) watchDir(ctx context.Context) error {
	dir := h.socketDir()
	kubeletEvents := h.cfg.Registration == RegisterKubeletSocket
	w, err := fsnotify.NewWatcher()
	if err != nil {
		h.log.Warn("fsnotify unavailable; relying on polling only", "err", err, "poll", h.cfg.PollInterval.String())
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	watching := false
	addWatch := func() {
		if w == nil || watching {
			return
		}
		if err := w.Add(dir); err != nil {
			h.log.Warn("cannot watch the device-plugin dir; will retry", "dir", dir, "err", err)
			return
		}
		watching = true
	}
	addWatch()
	close(h.watching) // from here on, a new kubelet.sock is seen (or polled for)
	ticker := time.NewTicker(h.cfg.PollInterval)
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
			switch {
			case filepath.Clean(ev.Name) == filepath.Clean(dir):
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					h.log.Warn("the device-plugin dir was removed; waiting for it to come back", "dir", dir)
					watching = false
					h.checkAll()
				}
			case kubeletEvents && filepath.Base(ev.Name) == kubeletSocketName:
				if ev.Has(fsnotify.Create) {
					h.log.Info("kubelet.sock created: the kubelet (re)started; registering again where needed")
					h.wakeAll()
				}
			case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Create):
				// A file renamed over a socket sends only Create.
				h.checkSocket(filepath.Base(ev.Name))
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			h.log.Warn("watching the device-plugin dir", "err", err)
		case <-ticker.C:
			if !watching {
				addWatch()
				if watching {
					h.wakeAll() // the dir is back: retry now rather than at the next backoff
					continue
				}
			}
			h.checkAll()
		}
	}
}

// wakeAll tells every plugin the kubelet may be (newly) there.
func (h *Host) wakeAll() {
	h.forEachPlugin(func(p *Plugin) { poke(p.wake) })
}

// checkAll asks every plugin to re-check its session.
func (h *Host) checkAll() {
	h.forEachPlugin(func(p *Plugin) { poke(p.check) })
}

// checkSocket asks the plugin owning a socket file name to re-check.
func (h *Host) checkSocket(name string) {
	h.mu.Lock()
	p := h.bySocket[name]
	h.mu.Unlock()
	if p != nil {
		poke(p.check)
	}
}
