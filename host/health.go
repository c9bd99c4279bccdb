package host

import (
	"context"
	"os"
	"time"

	"simple-device-plugin/manifest"
)

// runHealth probes the health checks of every resource that has one, in
// one goroutine for the whole host: each resource is due every interval,
// and the loop sleeps until the next one is due. A device is healthy while
// its templated path exists.
func (h *Host) runHealth(ctx context.Context) error {
	due := map[*Plugin]time.Time{}
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		seen := map[*Plugin]bool{}
		// Probe outside the host's lock: stat calls must not delay Apply or /readyz.
		for _, p := range h.pluginList() {
			seen[p] = true
			res := p.snapshot().res
			paths, interval := res.HealthCheck()
			if paths == nil {
				delete(due, p)
				continue
			}
			at, ok := due[p]
			if !ok || !now.Before(at) {
				h.probe(p, res, paths)
				at = now.Add(interval)
				due[p] = at
			}
			if at.Before(next) {
				next = at
			}
		}
		for p := range due {
			if !seen[p] {
				delete(due, p)
			}
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-h.healthWake:
			// The manifest changed (maybe paths or intervals): probe all now.
			clear(due)
		case <-timer.C:
		}
		timer.Stop()
	}
}

// probe checks the paths of res, the resource they came from: a reload
// since then makes setProbe drop the result instead of applying it to
// another device list.
func (h *Host) probe(p *Plugin, res *manifest.Resource, paths []string) {
	unhealthy := make([]bool, len(paths))
	bad := 0
	for i, path := range paths {
		if _, err := os.Stat(path); err != nil {
			unhealthy[i] = true
			bad++
		}
	}
	if p.setProbe(res, unhealthy) {
		p.log.Info("device health changed", "unhealthy", bad, "devices", len(paths))
	}
}
