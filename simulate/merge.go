package simulate

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type resourceResponse struct {
	resource string
	resp     *pluginapi.ContainerAllocateResponse
}

// merge combines one container's responses the way the kubelet's device
// manager does (deviceRunContainerOptions): env vars and annotations by
// key, device nodes by container path, mounts by container path, CDI
// devices by name. The first one seen wins; a second one with the same
// value is dropped silently, one with a different value is dropped and the
// kubelet logs an error. The kubelet walks the resources in map order, so
// which one wins there is chance: here it is resource-name order, and every
// conflict is a warning. A mount and a device node on the same container
// path pass the kubelet but not the container runtime: a warning too.
// Mounts, device nodes and CDI devices keep the order the kubelet passes
// them on in: by resource, then as the plugin rendered them.
func merge(cr *ContainerReport, responses []resourceResponse) {
	cr.Env = map[string]string{}
	cr.Annotations = map[string]string{}
	envFrom := map[string]string{}
	annFrom := map[string]string{}
	mountAt := map[string]MountReport{}
	devAt := map[string]DeviceNodeReport{}
	cdiSeen := map[string]bool{}
	warn := func(format string, args ...any) {
		cr.Warnings = append(cr.Warnings, fmt.Sprintf(format, args...))
	}
	for _, rr := range responses {
		r := rr.resp
		for _, k := range slices.Sorted(maps.Keys(r.Envs)) {
			if from, dup := envFrom[k]; dup {
				if cr.Env[k] != r.Envs[k] {
					warn("env %s is set by %s (%q) and by %s (%q); the kubelet keeps one of them at random",
						k, from, cr.Env[k], rr.resource, r.Envs[k])
				}
				continue
			}
			envFrom[k] = rr.resource
			cr.Env[k] = r.Envs[k]
		}
		for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
			if from, dup := annFrom[k]; dup {
				if cr.Annotations[k] != r.Annotations[k] {
					warn("annotation %s is set by %s (%q) and by %s (%q); the kubelet keeps one of them at random",
						k, from, cr.Annotations[k], rr.resource, r.Annotations[k])
				}
				continue
			}
			annFrom[k] = rr.resource
			cr.Annotations[k] = r.Annotations[k]
		}
		for _, d := range r.Devices {
			if prev, dup := devAt[d.ContainerPath]; dup {
				if prev.HostPath != d.HostPath {
					warn("device node %s is %s from %s and %s from %s; the kubelet keeps one of them at random",
						d.ContainerPath, prev.HostPath, prev.Resource, d.HostPath, rr.resource)
				}
				continue
			}
			devAt[d.ContainerPath] = DeviceNodeReport{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions, Resource: rr.resource}
			cr.DeviceNodes = append(cr.DeviceNodes, devAt[d.ContainerPath])
		}
		for _, m := range r.Mounts {
			if prev, dup := mountAt[m.ContainerPath]; dup {
				if prev.HostPath != m.HostPath {
					warn("mount %s is %s from %s and %s from %s; the kubelet keeps one of them at random",
						m.ContainerPath, prev.HostPath, prev.Resource, m.HostPath, rr.resource)
				}
				continue
			}
			mountAt[m.ContainerPath] = MountReport{ContainerPath: m.ContainerPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly, Resource: rr.resource}
			cr.Mounts = append(cr.Mounts, mountAt[m.ContainerPath])
		}
		for _, c := range r.CdiDevices {
			if cdiSeen[c.Name] {
				continue
			}
			cdiSeen[c.Name] = true
			cr.CDIDevices = append(cr.CDIDevices, c.Name)
		}
	}
	for _, m := range cr.Mounts {
		if d, both := devAt[m.ContainerPath]; both {
			warn("%s is a mount (from %s) and a device node (from %s); the container runtime cannot create both", m.ContainerPath, m.Resource, d.Resource)
		}
	}
	sort.Strings(cr.Warnings)
}
