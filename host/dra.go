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
	// A class stays while the manifest serves its resource through DRA
	// on some node.
	h.cfg.DRA.Apply(viaDRA, func(name string) bool { r := m.Resource(name); return r != nil && r.DRA() })
}
