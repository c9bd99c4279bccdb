package manifest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// checkAcrossResources applies the rules that span resources: unique names
// and sockets, and nothing two resources would both put into one container,
// where the kubelet would keep one of them at random.
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

	// The CDI cache drops a device that two specs define: one kind, one
	// resource.
	kinds := map[string]*Resource{}
	for _, r := range compiled {
		if r.cdiKind == "" {
			continue
		}
		if o, dup := kinds[r.cdiKind]; dup {
			field := fmt.Sprintf("resources[%d].cdi.kind", r.specIndex)
			if r.Spec.CDI.Kind == "" {
				field = fmt.Sprintf("resources[%d].cdi.spec", r.specIndex)
			}
			errs.add(field, "CDI kind %q is also the kind of resources[%d] (%s); the runtime drops a CDI device two specs define, so give each resource its own cdi.kind",
				r.cdiKind, o.specIndex, o.Name)
			continue
		}
		kinds[r.cdiKind] = r
	}

	// One driver serves one resource: its sockets, slices and DeviceClass
	// are named by the driver.
	drivers := map[string]*Resource{}
	for _, r := range compiled {
		if !r.DRA() {
			continue
		}
		if o, dup := drivers[r.driver]; dup {
			errs.add(fmt.Sprintf("resources[%d].dra.driver", r.specIndex), "driver %q is also the driver of resources[%d] (%s); each api: dra resource needs its own driver name", r.driver, o.specIndex, o.Name)
			continue
		}
		drivers[r.driver] = r
	}

	// Mounts and device nodes share the container's file system, so they
	// share one namespace.
	type setter struct {
		r     *Resource
		fixed string // the whole value, when it is the same whatever the allocation
	}
	seen := map[string]map[string]setter{"env var": {}, "annotation": {}, "container path": {}}
	for _, r := range compiled {
		reported := map[string]bool{} // a per-device path clashes once per sample device; say it once
		for _, c := range r.sampleContributions() {
			s, dup := seen[c.kind][c.value]
			o := s.r
			// Two resources that set one key or path to the same fixed
			// value (a shared licence server, one shared mount) agree
			// whichever the kubelet keeps.
			if dup && o != r && s.fixed != "" && s.fixed == c.fixed {
				continue
			}
			if dup && o != r {
				if !reported[c.field] {
					reported[c.field] = true
					how := "to another value"
					if s.fixed == "" || c.fixed == "" {
						how = "to a value that depends on the allocation"
					}
					errs.add(c.field, "%s %q is also set by resources[%d] (%s) %s; a pod asking for both would get only one of them, chosen at random; rename it in one resource, or give both the same fixed value",
						c.kind, c.value, o.specIndex, o.Name, how)
				}
				continue
			}
			seen[c.kind][c.value] = setter{r, c.fixed}
		}
	}
	checkSharedPerDevicePaths(compiled, errs)
}

// checkSharedPerDevicePaths catches what the sample misses: one per-device
// container path template in two resources whose device IDs overlap beyond
// the first few devices.
func checkSharedPerDevicePaths(compiled []*Resource, errs *ErrorList) {
	type use struct {
		r *Resource
		containerPath
	}
	bySource := map[string][]use{}
	for _, r := range compiled {
		for _, c := range r.containerPaths() {
			if c.perDevice {
				bySource[c.container.source] = append(bySource[c.container.source], use{r, c})
			}
		}
	}
	render := func(u use, id string) (string, error) {
		return u.container.renderString(u.r.sampleDevice(ContainerData{Resource: u.r.Name, IDs: []string{id}, Count: 1}, 0, id), u.r.sc(forDevice))
	}
	for _, src := range slices.Sorted(maps.Keys(bySource)) {
		uses := bySource[src]
		for i, b := range uses {
			for _, a := range uses[:i] {
				if a.r == b.r {
					continue
				}
				id := firstSharedID(a.r, b.r)
				if id == "" {
					continue
				}
				pa, errA := render(a, id)
				pb, errB := render(b, id)
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
	if i := slices.IndexFunc(a.IDs, b.Has); i >= 0 {
		return a.IDs[i]
	}
	return ""
}

// containerPath is a mount or device node with the YAML path of its
// containerPath field.
type containerPath struct {
	field string
	pathPairTmpl
}

// containerPaths lists the resource's mounts, then its device nodes.
func (r *Resource) containerPaths() []containerPath {
	// Not Sprintf, which allocates more, and this runs on every reload.
	p := "resources[" + strconv.Itoa(r.specIndex) + "]"
	var out []containerPath
	for j, m := range r.mounts {
		out = append(out, containerPath{p + ".mounts[" + strconv.Itoa(j) + "].containerPath", m})
	}
	for j, d := range r.devices {
		out = append(out, containerPath{p + ".devices[" + strconv.Itoa(j) + "].containerPath", d})
	}
	return out
}

// contribution is one key or path a resource puts into a container.
type contribution struct {
	kind, field, value string
	fixed              string // the whole value when it has no actions, else ""
}

// sampleContributions lists what the resource puts into a container for
// its sample allocation, with the YAML path of the field that does it.
func (r *Resource) sampleContributions() []contribution {
	p := fmt.Sprintf("resources[%d]", r.specIndex)
	var out []contribution
	fixed := func(t *tmpl) string {
		if t.literal {
			return "=" + t.source // never empty
		}
		return ""
	}
	for _, e := range r.env {
		out = append(out, contribution{"env var", fmt.Sprintf("%s.env[%s]", p, e.key), e.key, fixed(e.t)})
	}
	for _, a := range r.annotations {
		out = append(out, contribution{"annotation", fmt.Sprintf("%s.annotations[%s]", p, a.key), a.key, fixed(a.t)})
	}
	for _, c := range r.containerPaths() {
		// The same host path at the same container path, mode and all.
		same := ""
		if !c.perDevice && c.host.literal && c.container.literal {
			kind := "mount"
			if strings.Contains(c.field, ".devices[") {
				kind = "device"
			}
			same = fmt.Sprintf("%s %s ro=%v %s", kind, c.host.source, c.readOnly, c.permissions)
		}
		// A template that fails on the sample was reported at compile time.
		rendered, _ := r.renderSample(c.container, c.perDevice)
		for _, s := range rendered {
			out = append(out, contribution{"container path", c.field, s, same})
		}
	}
	return out
}
