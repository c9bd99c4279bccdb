package simulate

import (
	"fmt"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"

	"simple-device-plugin/dra"
	"simple-device-plugin/manifest"
)

// DRAReport is an api: dra resource: the objects its driver would publish
// and apply, and what each container's claim would get.
type DRAReport struct {
	Name           string                      `json:"name"`
	Driver         string                      `json:"driver"`
	Devices        []DeviceReport              `json:"devices"`
	DeviceClass    *resourceapi.DeviceClass    `json:"deviceClass"`
	ResourceSlices []resourceapi.ResourceSlice `json:"resourceSlices"`
}

// ClaimReport is what one container's claim on an api: dra resource gets:
// the devices (the first healthy ones not given to an earlier container;
// on a cluster the scheduler chooses) and the CDI device the driver would
// prepare.
type ClaimReport struct {
	Resource  string   `json:"resource"`
	Devices   []string `json:"devices"`
	CDIDevice string   `json:"cdiDevice"`
}

// draResources builds the report of every api: dra resource served.
func draResources(viaDRA []*manifest.Resource, node string, resolves func(string) bool) ([]DRAReport, error) {
	var out []DRAReport
	for _, r := range viaDRA {
		unhealthy := dra.Unhealthy(r, node, resolves)
		slicesOf, err := dra.ResourceSlices(r, node, func(id string) bool { return unhealthy[id] })
		if err != nil {
			return nil, err
		}
		rep := DRAReport{Name: r.Name, Driver: r.Driver(), DeviceClass: dra.DeviceClass(r), ResourceSlices: slicesOf, Devices: []DeviceReport{}}
		for i, id := range r.IDs {
			d := DeviceReport{ID: id, Health: "Healthy"}
			if unhealthy[id] {
				d.Health = "Unhealthy"
			}
			if n, ok := r.NUMANode(i); ok {
				d.NUMANode = &n
			}
			rep.Devices = append(rep.Devices, d)
		}
		out = append(out, rep)
	}
	return out, nil
}

// claimContainer does for one container's claims what the scheduler and
// the driver's NodePrepareResources do, and adds the CDI edits to what
// the container gets.
func claimContainer(cr *ContainerReport, m *manifest.Manifest, reports []DRAReport, request map[string]int, node string, used map[string]map[string]bool) error {
	for _, rep := range reports {
		n, ok := request[rep.Name]
		if !ok {
			continue
		}
		if used[rep.Name] == nil {
			used[rep.Name] = map[string]bool{}
		}
		var ids []string
		healthy := 0
		for _, d := range rep.Devices {
			if d.Health != "Healthy" {
				continue
			}
			healthy++
			if !used[rep.Name][d.ID] && len(ids) < n {
				ids = append(ids, d.ID)
			}
		}
		if len(ids) < n {
			why := fmt.Sprintf("%d of its %d devices are healthy", healthy, len(rep.Devices))
			if len(used[rep.Name]) > 0 {
				why += fmt.Sprintf(" and %d went to earlier containers", len(used[rep.Name]))
			}
			return requestErrorf("%s: %s: the scheduler cannot allocate %d devices (%s)", cr.Name, rep.Name, n, why)
		}
		for _, id := range ids {
			used[rep.Name][id] = true
		}
		r := m.Resource(rep.Name)
		// One claim per container and resource, with one request.
		uid := "simulated-" + cr.Name + "-" + strings.ReplaceAll(rep.Driver, ".", "-")
		const req = "devices"
		spec, external, err := dra.ClaimSpec(r, node, dra.Claim{UID: uid, Namespace: "default", Name: uid, Requests: map[string][]string{req: ids}})
		if err != nil {
			return err
		}
		dev := spec.Devices[0]
		cdiName := spec.Kind + "=" + dev.Name
		cr.Claims = append(cr.Claims, ClaimReport{Resource: rep.Name, Devices: ids, CDIDevice: cdiName})
		cr.Devices[rep.Name] = ids
		for _, e := range dev.ContainerEdits.Env {
			k, v, _ := strings.Cut(e, "=")
			if cr.Env == nil {
				cr.Env = map[string]string{}
			}
			if _, dup := cr.Env[k]; dup {
				cr.Warnings = append(cr.Warnings, fmt.Sprintf("env %s is also set by another resource; the runtime applies the CDI edits last", k))
			}
			cr.Env[k] = v
		}
		for _, mnt := range dev.ContainerEdits.Mounts {
			cr.Mounts = append(cr.Mounts, MountReport{ContainerPath: mnt.ContainerPath, HostPath: mnt.HostPath, ReadOnly: slices.Contains(mnt.Options, "ro"), Resource: rep.Name})
		}
		for _, d := range dev.ContainerEdits.DeviceNodes {
			cr.DeviceNodes = append(cr.DeviceNodes, DeviceNodeReport{ContainerPath: d.Path, HostPath: d.HostPath, Permissions: d.Permissions, Resource: rep.Name})
		}
		cr.CDIDevices = append(cr.CDIDevices, cdiName)
		cr.CDIDevices = append(cr.CDIDevices, external[req]...)
	}
	return nil
}
