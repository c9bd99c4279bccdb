package host

import (
	"context"
	"os"
	"time"

	"simple-device-plugin/manifest"
)

// runHealth probes the resource's health check, if any, every interval
// until ctx ends; a device is healthy while its path exists.
func (p *Plugin) runHealth(ctx context.Context) {
	for {
		res := p.snapshot().res
		paths, interval := res.HealthCheck()
		var next <-chan time.Time // nil without a health check: wait for a reload
		if paths != nil {
			p.probeHealth(res, paths)
			next = time.After(interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.healthWake:
		case <-next:
		}
	}
}

// probeHealth checks the paths of res; setProbe drops the result if a
// reload replaced res meanwhile.
func (p *Plugin) probeHealth(res *manifest.Resource, paths []string) {
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
