package simulate

import (
	"fmt"
	"sort"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type resourceResponse struct {
	resource string
	resp     *pluginapi.ContainerAllocateResponse
}

// merge combines one container's responses the way the kubelet does:
// env vars and annotations by key, mounts and device nodes by container
// path, CDI devices by name; the first one wins and a clash is only
// reported. The kubelet takes resources in map order (random), so which
// one wins there is chance; here it is resource-name order, with a warning.
func merge(cr *ContainerReport, responses []resourceResponse) {
	cr.Env = map[string]string{}
	cr.Annotations = map[string]string{}
	envFrom := map[string]string{}
	annFrom := map[string]string{}
	mountFrom := map[string]string{}
	devFrom := map[string]string{}
	cdiSeen := map[string]bool{}
	for _, rr := range responses {
		r := rr.resp
		for _, k := range sortedKeys(r.Envs) {
			if from, dup := envFrom[k]; dup {
				if cr.Env[k] != r.Envs[k] {
					cr.Warnings = append(cr.Warnings, fmt.Sprintf("env %s is set by %s and %s; the kubelet keeps one at random", k, from, rr.resource))
				}
				continue
			}
			envFrom[k] = rr.resource
			cr.Env[k] = r.Envs[k]
		}
		for _, k := range sortedKeys(r.Annotations) {
			if from, dup := annFrom[k]; dup {
				if cr.Annotations[k] != r.Annotations[k] {
					cr.Warnings = append(cr.Warnings, fmt.Sprintf("annotation %s is set by %s and %s; the kubelet keeps one at random", k, from, rr.resource))
				}
				continue
			}
			annFrom[k] = rr.resource
			cr.Annotations[k] = r.Annotations[k]
		}
		for _, m := range r.Mounts {
			if from, dup := mountFrom[m.ContainerPath]; dup {
				cr.Warnings = append(cr.Warnings, fmt.Sprintf("mount %s is set by %s and %s; the kubelet keeps one", m.ContainerPath, from, rr.resource))
				continue
			}
			mountFrom[m.ContainerPath] = rr.resource
			cr.Mounts = append(cr.Mounts, MountReport{ContainerPath: m.ContainerPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly, Resource: rr.resource})
		}
		for _, d := range r.Devices {
			if from, dup := devFrom[d.ContainerPath]; dup {
				cr.Warnings = append(cr.Warnings, fmt.Sprintf("device node %s is set by %s and %s; the kubelet keeps one", d.ContainerPath, from, rr.resource))
				continue
			}
			devFrom[d.ContainerPath] = rr.resource
			cr.DeviceNodes = append(cr.DeviceNodes, DeviceNodeReport{ContainerPath: d.ContainerPath, HostPath: d.HostPath, Permissions: d.Permissions, Resource: rr.resource})
		}
		for _, c := range r.CdiDevices {
			if cdiSeen[c.Name] {
				continue
			}
			cdiSeen[c.Name] = true
			cr.CDIDevices = append(cr.CDIDevices, c.Name)
		}
	}
	sort.Slice(cr.Mounts, func(i, j int) bool { return cr.Mounts[i].ContainerPath < cr.Mounts[j].ContainerPath })
	sort.Slice(cr.DeviceNodes, func(i, j int) bool { return cr.DeviceNodes[i].ContainerPath < cr.DeviceNodes[j].ContainerPath })
}
