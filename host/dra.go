package host

import (
	"slices"

	"simple-device-plugin/manifest"
)

// applyDRA hands the api: dra resources to the DRA server, or says they
// cannot be served without one.
func (h *Host) applyDRA(m *manifest.Manifest, viaDRA []*manifest.Resource) {
	var names []string
	for _, r := range viaDRA {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	if h.cfg.DRA == nil {
		if len(names) > 0 {
			h.log.Warn("api: dra resources are not served: this host runs no DRA driver", "resources", names)
		}
		h.mu.Lock()
		h.draUnserved = names
		h.mu.Unlock()
		return
	}
	// A class stays while some api: dra resource of the manifest (on any
	// node) has its driver.
	h.cfg.DRA.Apply(viaDRA, func(driver string) bool {
		return slices.ContainsFunc(m.Resources, func(r *manifest.Resource) bool { return r.DRA() && r.Driver() == driver })
	})
}
