package manifest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// checkAcrossResources applies the rules that span resources: unique names
// and sockets, and nothing two resources would both put into one container.
// The kubelet merges a container's allocations from several resources by
// key and by container path, first one wins in map order, and only logs the
// conflict; so a clash would make a pod's environment depend on chance.
func checkAcrossResources(spec Spec, compiled []*Resource, errs *ErrorList) {
	names := map[string]int{}
	sockets := map[string]int{}
	for i, r := range spec.Resources {
		if r.Name == "" {
			continue
		}
		if j, dup := names[r.Name]; dup {
			errs.add(fmt.Sprintf("resources[%d].name", i), "%q is already declared by resources[%d]; resource names must be unique (merge them, or rename one)", r.Name, j)
			continue
		}
		names[r.Name] = i
		sock := SocketName(r.Name)
		if j, dup := sockets[sock]; dup {
			errs.add(fmt.Sprintf("resources[%d].name", i), "%q would use the same socket file %q as resources[%d]; rename one", r.Name, sock, j)
			continue
		}
		sockets[sock] = i
	}

	type owner struct {
		index int
		name  string
	}
	// One namespace per thing the kubelet merges by key; mounts and device
	// nodes share the container's file system, so they share one.
	seen := map[string]map[string]owner{"env var": {}, "annotation": {}, "container path": {}}
	for _, r := range compiled {
		reported := map[string]bool{} // a per-device path clashes once per sample device; say it once
		for _, c := range r.sampleContributions() {
			o, dup := seen[c.kind][c.value]
			if dup && o.index != r.specIndex {
				if !reported[c.field] {
					reported[c.field] = true
					errs.add(c.field, "%s %q is also set by resources[%d] (%s); a pod asking for both would get only one of them, chosen at random; rename it in one resource",
						c.kind, c.value, o.index, o.name)
				}
				continue
			}
			seen[c.kind][c.value] = owner{index: r.specIndex, name: r.Name}
		}
	}
	checkSharedPerDevicePaths(compiled, errs)
}

// checkSharedPerDevicePaths catches what sampling the first devices misses:
// one per-device container path template copied into two resources whose
// ID lists overlap beyond the sample (both "/data/{{ .ID }}", both with a
// device "x") puts two things on one path for a pod asking for both.
func checkSharedPerDevicePaths(compiled []*Resource, errs *ErrorList) {
	type use struct {
		r     *Resource
		field string
		t     *tmpl
	}
	bySource := map[string][]use{}
	for _, r := range compiled {
		for _, l := range []struct {
			list  string
			items []pathPairTmpl
		}{{"mounts", r.mounts}, {"devices", r.devices}} {
			list := l.list
			for j, it := range l.items {
				if it.perDevice {
					field := fmt.Sprintf("resources[%d].%s[%d].containerPath", r.specIndex, list, j)
					bySource[it.container.source] = append(bySource[it.container.source], use{r, field, it.container})
				}
			}
		}
	}
	for _, src := range slices.Sorted(maps.Keys(bySource)) {
		uses := bySource[src]
		for i := 1; i < len(uses); i++ {
			for _, earlier := range uses[:i] {
				a, b := earlier, uses[i]
				if a.r == b.r {
					continue
				}
				id := firstSharedID(a.r, b.r)
				if id == "" {
					continue
				}
				pa, errA := a.t.renderString(DeviceData{ContainerData: ContainerData{Resource: a.r.Name, IDs: []string{id}, Count: 1}, ID: id})
				pb, errB := b.t.renderString(DeviceData{ContainerData: ContainerData{Resource: b.r.Name, IDs: []string{id}, Count: 1}, ID: id})
				if errA == nil && errB == nil && pa == pb {
					errs.add(b.field, "container path %q (device %s) is also set by resources[%d] (%s), which has a device with the same ID; a pod asking for both would get only one of them; make the paths differ, e.g. with {{ .Resource }}",
						pb, id, a.r.specIndex, a.r.Name)
				}
			}
		}
	}
}

// firstSharedID returns a device ID both resources have, or "".
func firstSharedID(a, b *Resource) string {
	if len(a.IDs) > len(b.IDs) {
		a, b = b, a
	}
	for _, id := range a.IDs {
		if b.Has(id) {
			return id
		}
	}
	return ""
}

// contribution is one key or path a resource puts into a container.
type contribution struct {
	kind, field, value string
}

// sampleContributions lists what the resource puts into a container for
// its sample allocation, with the YAML path of the field that does it.
func (r *Resource) sampleContributions() []contribution {
	p := fmt.Sprintf("resources[%d]", r.specIndex)
	var out []contribution
	for _, e := range r.env {
		out = append(out, contribution{"env var", fmt.Sprintf("%s.env[%s]", p, e.key), e.key})
	}
	for _, a := range r.annotations {
		out = append(out, contribution{"annotation", fmt.Sprintf("%s.annotations[%s]", p, a.key), a.key})
	}
	paths := func(list string, items []pathPairTmpl) {
		for j, it := range items {
			// Not Sprintf: boxing list and p costs allocations on every reload.
			field := p + "." + list + "[" + strconv.Itoa(j) + "].containerPath"
			// Every template rendered on the sample at compile time; a
			// failing one has no paths to clash.
			rendered, _ := r.renderSample(it.container, it.perDevice)
			for _, s := range rendered {
				out = append(out, contribution{"container path", field, s})
			}
		}
	}
	paths("mounts", r.mounts)
	paths("devices", r.devices)
	return out
}
