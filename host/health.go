package host

import (
	"context"
	"os"
	"time"

	"simple-device-plugin/manifest"
)

// runHealth probes the plugin's health check, if its resource has one,
// every interval until ctx ends. A device is healthy while its templated
// path exists. A reload that changes the check wakes it at once.
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

// probeHealth checks the paths of res, the resource they came from: a reload
// since then makes setProbe drop the result instead of applying it to
// another device list.
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
