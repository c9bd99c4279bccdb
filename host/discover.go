package host

import (
	"context"
	"reflect"
	"sync"
	"time"

	"simple-device-plugin/discover"
	"simple-device-plugin/manifest"
)

// MaxDiscovered bounds the devices of a discover: resource: at the
// longest device IDs their ListAndWatch message stays well under the
// kubelet's limit. Matches beyond it are left out, each said once.
const MaxDiscovered = 4096

// runDiscover follows the host's devices for a discover: resource, and
// starts over when a reload changes what to look for; it idles for other
// resources, which a reload may turn into one.
func (p *Plugin) runDiscover(ctx context.Context) {
	for {
		p.specMu.Lock()
		base := p.base
		p.specMu.Unlock()
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if base.Discovers() {
			w := discover.NewWatcher(p.host.cfg.HostRoot, base.DiscoverSpec(), MaxDiscovered, p.host.cfg.DiscoverRescan)
			wg.Go(func() {
				// Run fails only when it cannot scan at all (the root gone):
				// try again each rescan period rather than until a reload.
				for {
					err := w.Run(wctx, func(r discover.Result) { p.applyFound(base.Spec.Discover, w, r) })
					if err == nil {
						return
					}
					p.log.Error("cannot discover devices; trying again", "err", err, "retry_in", p.host.cfg.DiscoverRescan.String())
					select {
					case <-wctx.Done():
						return
					case <-time.After(p.host.cfg.DiscoverRescan):
					}
				}
			})
		}
		select {
		case <-ctx.Done():
		case <-p.rediscover:
		}
		cancel()
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
	}
}

// scan looks for r's devices once, so a resource starts (or restarts
// after a reload) with its devices rather than none. Trouble is logged:
// the watcher that follows says it again if it lasts.
func (h *Host) scan(r *manifest.Resource) []discover.Device {
	res, err := discover.Scan(h.cfg.HostRoot, r.DiscoverSpec(), MaxDiscovered)
	if err != nil {
		h.log.Error("cannot discover devices", "resource", r.Name, "err", err)
		return nil
	}
	h.metrics.discovered.WithLabelValues(r.Name).Set(float64(len(res.Devices)))
	return res.Devices
}

// applyFound serves what discovery found, as a reload of the resource
// would: the CDI spec first, then the new list on the open streams,
// without registering again.
func (p *Plugin) applyFound(watched *manifest.DiscoverSpec, w *discover.Watcher, r discover.Result) {
	p.specMu.Lock()
	defer p.specMu.Unlock()
	base := p.base // a reload may have changed the rest of the resource since the watch began
	if !base.Discovers() || !sameDiscover(base.Spec.Discover, watched) {
		return // a reload changed what to look for; its own discovery reports
	}
	p.found = r.Devices
	res, left := base.WithFound(r.Devices, MaxDiscovered)
	left = append(left, r.Problems...)
	// Each problem once while it lasts: a change elsewhere must not repeat it.
	seen := make(map[discover.Problem]bool, len(left))
	for _, pr := range left {
		seen[pr] = true
		if !p.leftOut[pr] {
			p.log.Warn("a discovered device is left out", "path", pr.Path, "reason", pr.Reason)
		}
	}
	p.leftOut = seen
	if err := w.Degraded(); err != nil {
		p.log.Warn("watching for devices degraded to rescans", "err", err, "rescan", p.host.cfg.DiscoverRescan)
	}
	p.host.metrics.discovered.WithLabelValues(p.name).Set(float64(len(r.Devices)))
	p.host.metrics.discoverLeftOut.WithLabelValues(p.name).Set(float64(len(left)))
	if len(r.Devices) == 0 {
		p.log.Info("no device matches on this node; served with none until one appears", "paths", base.Spec.Discover.Paths)
	}
	if p.snapshot().res.SameFound(res) {
		return
	}
	after, err := p.applySpec(res)
	if err != nil {
		p.log.Error("cannot write the CDI spec of the discovered devices; still serving the last list, retrying every poll", "err", err)
		return
	}
	p.update(res)
	after()
	p.log.Info("discovered devices", "devices", len(res.IDs), "ids", manifest.ListIDs(res.IDs, ","))
}

// materialize is a reloaded resource with the devices last found, and
// makes discovery start over if what to look for changed. p.specMu is held.
func (p *Plugin) materialize(r *manifest.Resource) *manifest.Resource {
	old := p.base
	p.base = r
	if !r.Discovers() {
		if old.Discovers() {
			p.found = nil
			poke(p.rediscover) // to idle
			p.host.metrics.forgetDiscovery(p.name)
		}
		return r
	}
	if !old.Discovers() || !sameDiscover(old.Spec.Discover, r.Spec.Discover) {
		p.found = p.host.scan(r)
		poke(p.rediscover)
	}
	res, _ := r.WithFound(p.found, MaxDiscovered) // its problems are logged by the next discovery
	return res
}

// sameDiscover reports whether a and b look for the same matches (share
// and the rest only change what is made of them).
func sameDiscover(a, b *manifest.DiscoverSpec) bool {
	return reflect.DeepEqual(a.Paths, b.Paths) && reflect.DeepEqual(a.USB, b.USB) && reflect.DeepEqual(a.Groups, b.Groups)
}
