package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"simple-device-plugin/cdi"
	"simple-device-plugin/manifest"
)

// The CDI side of the host: the specs of resources with cdi.spec, written
// before the resource registers and before a reloaded device list goes
// out, and the health of devices whose CDI names do not resolve on the
// node (the runtime would refuse to start a container that asks for them).

// openCDI opens the spec dir and the node's CDI registry, and removes our
// specs of resources this manifest does not serve here (they left the
// manifest while no host ran). The registry is closed by closeCDI.
func (h *Host) openCDI(m *manifest.Manifest) error {
	var err error
	if h.cfg.CDISpecDir == "" {
		for _, r := range m.Resources {
			if r.CDIKind() != "" {
				return fmt.Errorf("%s: %w", r.Name, errNoCDIDir)
			}
		}
	}
	if h.cfg.CDISpecDir != "" {
		if h.cdiDir, err = cdi.OpenDir(h.cfg.CDISpecDir); err != nil {
			return err
		}
		// Whatever the manifest still has stays, served here or not: a
		// pod on this node may hold its devices. With no manifest yet
		// (a node service waiting for its file) nothing is known to be
		// gone: nothing is pruned.
		if len(m.Resources) > 0 {
			removed, err := h.cdiDir.Prune(func(resource string) bool {
				r := m.Resource(resource)
				return r != nil && r.CDIKind() != ""
			})
			if len(removed) > 0 {
				h.log.Info("removed the CDI specs of resources the manifest no longer generates one for", "resources", removed, "dir", h.cfg.CDISpecDir)
			}
			if err != nil {
				h.log.Warn("cannot remove old CDI specs", "err", err)
			}
		}
		if len(h.cfg.CDIRegistryDirs) > 0 && !slices.Contains(h.cfg.CDIRegistryDirs, h.cfg.CDISpecDir) {
			h.log.Warn("the CDI spec dir is not among the CDI registry dirs: the runtime may not read the specs written there", "dir", h.cfg.CDISpecDir, "registry", h.cfg.CDIRegistryDirs)
		}
	}
	if len(h.cfg.CDIRegistryDirs) > 0 {
		if h.cdiRegistry, err = cdi.OpenRegistry(h.cfg.CDIRegistryDirs); err != nil {
			return err
		}
	}
	return nil
}

func (h *Host) closeCDI() {
	if h.cdiRegistry != nil {
		if err := h.cdiRegistry.Close(); err != nil {
			h.log.Warn("closing the CDI registry", "err", err)
		}
	}
}

// errNoCDIDir: a resource with cdi.spec and nowhere to write its spec.
var errNoCDIDir = errors.New("the resource has cdi.spec but no CDI spec dir is set (--cdi-spec-dir)")

// writeSpec writes res's CDI spec, also defining the devices of old (may
// be nil) that res lacks; it counts and logs the outcome.
func (p *Plugin) writeSpec(res, old *manifest.Resource) error {
	if p.host.cdiDir == nil {
		return errNoCDIDir
	}
	if err := p.host.cdiDir.Write(res, old, p.host.cfg.NodeName); err != nil {
		p.host.metrics.cdiSpecWrites.WithLabelValues(p.name, "error").Inc()
		return err
	}
	p.host.metrics.cdiSpecWrites.WithLabelValues(p.name, "ok").Inc()
	p.log.Debug("CDI spec written", "kind", res.CDIKind(), "devices", len(res.IDs), "dir", p.host.cdiDir.Path())
	return nil
}

// writeSpecUntilDone writes the spec before the first registration,
// retrying with backoff while the dir is missing, read-only or full;
// failed is called after each try that fails.
func (p *Plugin) writeSpecUntilDone(ctx context.Context, failed func()) bool {
	bo := p.host.cfg.Backoff
	for {
		// Under specMu: a reload meanwhile writes its own spec after this.
		p.specMu.Lock()
		err := p.writeSpec(p.snapshot().res, nil)
		p.specMu.Unlock()
		if err == nil {
			return true
		}
		failed()
		delay := bo.Next()
		p.log.Error("cannot write the CDI spec; not registering until it is written", "err", err, "retry_in", delay.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
	}
}

// removeSpec removes the spec of a resource the manifest no longer
// generates one for.
func (h *Host) removeSpec(name string) {
	if h.cdiDir == nil {
		return
	}
	if err := h.cdiDir.Remove(name); err != nil {
		h.log.Warn("cannot remove a CDI spec", "resource", name, "err", err)
		return
	}
	h.log.Info("removed the CDI spec: the manifest no longer generates one for the resource", "resource", name)
}

// applySpec writes the spec of a reloaded resource before its new device
// list goes out, and returns what to do once the list is out. While both
// lists can be handed out, the spec defines the devices of both: a device
// that leaves is written out of the spec only after the list without it.
// On failure the resource keeps its last good list and res is pending:
// runCDI retries it every poll interval. p.specMu is held.
func (p *Plugin) applySpec(res *manifest.Resource) (after func(), err error) {
	old := p.snapshot().res
	p.pendingSpec = nil
	switch {
	case res.CDIKind() != "":
		var both *manifest.Resource
		if old.CDIKind() == res.CDIKind() {
			both = old // a new kind has new names: nothing to keep
		}
		if err := p.writeSpec(res, both); err != nil {
			p.pendingSpec = res
			return nil, err
		}
		if both == nil {
			return func() {}, nil
		}
		return func() {
			if err := p.writeSpec(res, nil); err != nil {
				p.log.Warn("cannot write the CDI spec without the devices that left; it keeps defining them", "err", err)
			}
		}, nil
	case old.CDIKind() != "":
		return func() { p.host.removeSpec(p.name) }, nil // cdi.spec turned off: after the list
	}
	return func() {}, nil
}

// unresolvedCDI returns, by device index, whether a CDI name the device
// would be handed out with resolves nowhere on the node, and the names
// that do not. nil when nothing is to be checked. Generated names count
// as resolved while our spec file is in place; checkSpec is false until
// the first write.
func (h *Host) unresolvedCDI(res *manifest.Resource, checkSpec bool) ([]bool, []string) {
	generated := res.CDIKind() != "" && h.cdiDir != nil && checkSpec
	external := len(res.Spec.CDIDevices) > 0 && h.cdiRegistry != nil
	if !generated && !external {
		return nil, nil
	}
	specThere := generated && h.cdiDir.Exists(res.Name)
	bad := make([]bool, len(res.IDs))
	seen := map[string]bool{}
	var missing []string
	note := func(i int, name string) {
		bad[i] = true
		if !seen[name] {
			seen[name] = true
			missing = append(missing, name)
		}
	}
	for i, id := range res.IDs {
		if generated && !specThere {
			note(i, res.CDIName(id))
		}
		if !external {
			continue
		}
		names, err := res.ExternalCDINames(i, h.cfg.NodeName)
		if err != nil {
			continue // Allocate says so
		}
		for _, name := range names {
			if !h.cdiRegistry.Resolves(name) {
				note(i, name)
			}
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	return bad, missing
}

// runCDI keeps the CDI side current until ctx ends: a reload whose spec
// could not be written is retried, a spec that vanished (a reboot, a
// hand clean-up) is written again, and the health of CDI names is
// re-checked, every poll interval.
func (p *Plugin) runCDI(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.host.cfg.PollInterval):
		}
		p.specMu.Lock()
		if pending := p.pendingSpec; pending != nil {
			if after, err := p.applySpec(pending); err != nil {
				p.log.Error("cannot write the reloaded CDI spec; still serving the last good device list", "err", err)
			} else {
				devicesChanged, _ := p.update(pending)
				after()
				p.log.Info("CDI spec written; the reloaded device list is served now", "devices_changed", devicesChanged)
			}
		}
		res := p.snapshot().res
		if res.CDIKind() != "" && p.host.cdiDir != nil && !p.host.cdiDir.Exists(res.Name) {
			p.log.Warn("the CDI spec is gone; writing it again", "dir", p.host.cdiDir.Path())
			if err := p.writeSpec(res, nil); err != nil {
				p.log.Error("cannot write the CDI spec; its devices are Unhealthy", "err", err)
			}
		}
		p.specMu.Unlock()
		p.checkCDI(res)
	}
}

// checkCDI re-checks the CDI names of res and publishes what changed;
// nothing if a reload replaced res meanwhile.
func (p *Plugin) checkCDI(res *manifest.Resource) {
	bad, missing := p.host.unresolvedCDI(res, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Load().res == res && p.setCDIHealth(bad, missing) {
		p.publish(res)
	}
}

// setCDIHealth records which devices have unresolved CDI names and names
// them in the log and the metrics, and says whether anything changed.
// p.mu is held, or p not shared yet; the caller publishes.
func (p *Plugin) setCDIHealth(bad []bool, missing []string) bool {
	before := p.unresolved
	if slices.Equal(before, missing) && slices.Equal(p.cdiBad, bad) {
		return false
	}
	p.cdiBad, p.unresolved = bad, missing
	p.host.metrics.cdiUnresolved.DeletePartialMatch(map[string]string{"resource": p.name})
	// A series per missing name, at most maxUnresolvedSeries per resource:
	// a whole missing spec of thousands of devices must not flood /metrics.
	for _, name := range missing[:min(len(missing), maxUnresolvedSeries)] {
		p.host.metrics.cdiUnresolved.WithLabelValues(p.name, name).Set(1)
	}
	switch {
	case len(missing) > 0 && !slices.Equal(before, missing):
		p.log.Warn("CDI devices that no spec on the node defines: their devices are Unhealthy", "cdi_devices", manifest.ListIDs(missing, ","), "devices", count(bad))
	case len(missing) == 0 && len(before) > 0:
		p.log.Info("every CDI device resolves again")
	}
	return true
}

// maxUnresolvedSeries bounds the sdp_cdi_unresolved series of a resource.
const maxUnresolvedSeries = 16

// UnresolvedCDI names the CDI devices of a served resource that no spec
// on the node defines.
func (h *Host) UnresolvedCDI(resource string) []string {
	h.mu.Lock()
	p := h.plugins[resource]
	h.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.unresolved)
}

func count(bad []bool) int {
	n := 0
	for _, b := range bad {
		if b {
			n++
		}
	}
	return n
}
