package host

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"simple-device-plugin/internal/filewatch"
	"simple-device-plugin/manifest"
)

// Reloader watches the manifest file and applies every valid change to the
// host. It watches the directory: a ConfigMap update swaps the ..data
// symlink and editors replace files by rename, so the file's inode goes.
type Reloader struct {
	Path string
	Host *Host
	// Debounce gathers a burst of writes to the file into one reload.
	// Default 100 ms.
	Debounce time.Duration
	// Poll re-reads the file as a safety net. Default 10 s.
	Poll time.Duration

	trigger chan struct{}
	last    []byte
	missing bool // the file was absent at the last read: said once
}

// NewReloader returns a reloader for the manifest at path, which was
// loaded as data and is being served; nil data: the file was not there
// (and that was said).
func NewReloader(path string, h *Host, data []byte) *Reloader {
	return &Reloader{Path: path, Host: h, last: data, missing: data == nil, trigger: make(chan struct{}, 1)}
}

// Trigger asks for a reload now (SIGHUP), even if no event was seen.
func (r *Reloader) Trigger() { poke(r.trigger) }

// Run watches until ctx ends.
func (r *Reloader) Run(ctx context.Context) error {
	log := r.Host.log.With("manifest", r.Path)
	// Not before the host has applied the first manifest: a reload applied
	// earlier would be undone by it.
	select {
	case <-r.Host.applied:
	case <-ctx.Done():
		return nil
	}
	// The first check catches a change made since the first load.
	filewatch.Watch{Files: []string{r.Path}, Debounce: r.Debounce, Poll: r.Poll, Trigger: r.trigger, Logger: log}.
		Run(ctx, func(why filewatch.Reason) { r.reload(log, why == filewatch.Triggered) })
	return nil
}

// reload reads the manifest and applies it if it changed. An invalid
// manifest changes nothing: the last good one keeps running.
func (r *Reloader) reload(log *slog.Logger, forced bool) {
	m := r.Host.metrics
	data, err := os.ReadFile(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// Absent (not yet synced at first boot, or removed): said once,
		// not at every poll; the file's appearance is the next event.
		if !r.missing {
			m.reloads.WithLabelValues(reloadInvalid).Inc()
			log.Warn("the manifest file is not there; serving what was loaded until it appears", "err", err)
		}
		r.missing = true
		return
	}
	if err != nil {
		m.reloads.WithLabelValues(reloadInvalid).Inc()
		log.Error("cannot read the manifest; still serving the last good one", "err", err)
		return
	}
	if r.missing {
		r.missing = false
		log.Info("the manifest file is there")
	}
	if bytes.Equal(data, r.last) {
		if forced {
			m.reloads.WithLabelValues(reloadUnchanged).Inc()
			log.Info("manifest unchanged")
		}
		return
	}
	// Resources whose spec did not change reuse their compiled form.
	parsed, err := manifest.Reparse(data, r.Host.Manifest(), CheckDeviceList)
	if err != nil {
		r.last = data // report each bad version once, not on every poll
		m.reloads.WithLabelValues(reloadInvalid).Inc()
		errs := manifest.Errors(err)
		if errs == nil {
			log.Error("invalid manifest; still serving the last good one", "err", err)
		}
		for _, e := range errs {
			log.Error("invalid manifest; still serving the last good one", "path", e.Path, "line", e.Line, "column", e.Column, "err", e.Message)
		}
		return
	}
	res, err := r.Host.Apply(parsed)
	if err != nil {
		log.Error("cannot apply the manifest", "err", err)
		return
	}
	r.last = data
	result := reloadApplied
	if len(res.Added)+len(res.Updated)+len(res.Removed) == 0 {
		result = reloadUnchanged
	}
	m.reloads.WithLabelValues(result).Inc()
	log.Info("manifest reloaded", "hash", parsed.Hash, "added", res.Added, "updated", res.Updated, "removed", res.Removed, "unchanged", len(res.Unchanged), "pending", res.Pending)
}
