package manifest

import (
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Allocation is everything one container gets from one resource.
type Allocation struct {
	Envs        map[string]string
	Annotations map[string]string
	Mounts      []Mount
	Devices     []DeviceNode
	CDIDevices  []string
}

// Mount is a rendered bind mount.
type Mount struct {
	ContainerPath string
	HostPath      string
	ReadOnly      bool
}

// DeviceNode is a rendered device node.
type DeviceNode struct {
	ContainerPath string
	HostPath      string
	Permissions   string
}

// UnknownIDsError lists device IDs that are not devices of a resource.
type UnknownIDsError struct {
	Resource string
	IDs      []string
}

func (e *UnknownIDsError) Error() string {
	return fmt.Sprintf("%s has no device %s", e.Resource, strings.Join(quoteAll(e.IDs), ", "))
}

// Render builds one container's allocation for the given device IDs. It
// executes templates compiled at load time; it does no parsing and no I/O.
// The IDs are sorted into manifest order first, so .IDs and .Index do not
// depend on the order the kubelet sent them in.
func (r *Resource) Render(ids []string, node string) (*Allocation, error) {
	sorted, err := r.sortIDs(ids)
	if err != nil {
		return nil, err
	}
	cd := ContainerData{Resource: r.Name, IDs: sorted, Count: len(sorted), Node: node}
	a := &Allocation{}
	var b strings.Builder
	render := func(t *tmpl, data any) (string, error) {
		if t.literal {
			return t.text, nil
		}
		b.Reset()
		if err := t.render(&b, data); err != nil {
			return "", err
		}
		return b.String(), nil
	}

	if len(r.env) > 0 {
		a.Envs = make(map[string]string, len(r.env))
		for _, e := range r.env {
			v, err := render(e.t, cd)
			if err != nil {
				return nil, fmt.Errorf("render env %s: %w", e.key, err)
			}
			a.Envs[e.key] = v
		}
	}
	if len(r.annotations) > 0 {
		a.Annotations = make(map[string]string, len(r.annotations))
		for _, e := range r.annotations {
			v, err := render(e.t, cd)
			if err != nil {
				return nil, fmt.Errorf("render annotation %s: %w", e.key, err)
			}
			a.Annotations[e.key] = v
		}
	}

	// Per-device data is built once and shared by every per-device template.
	var devs []DeviceData
	perDevice := func() []DeviceData {
		if devs == nil {
			devs = make([]DeviceData, len(sorted))
			for i, id := range sorted {
				devs[i] = DeviceData{ContainerData: cd, ID: id, Index: i}
			}
		}
		return devs
	}
	// each calls fn with the template data for one item: the container's,
	// or each device's when the item is per device.
	each := func(isPerDevice bool, fn func(data any) error) error {
		if !isPerDevice {
			return fn(cd)
		}
		for i := range perDevice() {
			if err := fn(devs[i]); err != nil {
				return err
			}
		}
		return nil
	}

	if len(r.mounts) > 0 {
		a.Mounts = make([]Mount, 0, r.itemCount(len(sorted), r.mounts))
		for i, m := range r.mounts {
			err := each(m.perDevice, func(data any) error {
				host, err := render(m.host, data)
				if err != nil {
					return err
				}
				cont, err := render(m.container, data)
				if err != nil {
					return err
				}
				a.Mounts = append(a.Mounts, Mount{ContainerPath: cont, HostPath: host, ReadOnly: m.readOnly})
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("render mounts[%d]: %w", i, err)
			}
		}
	}
	if len(r.devices) > 0 {
		a.Devices = make([]DeviceNode, 0, r.itemCount(len(sorted), r.devices))
		for i, d := range r.devices {
			err := each(d.perDevice, func(data any) error {
				host, err := render(d.host, data)
				if err != nil {
					return err
				}
				cont, err := render(d.container, data)
				if err != nil {
					return err
				}
				a.Devices = append(a.Devices, DeviceNode{ContainerPath: cont, HostPath: host, Permissions: d.permissions})
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("render devices[%d]: %w", i, err)
			}
		}
	}
	for i, c := range r.cdi {
		err := each(c.perDevice, func(data any) error {
			name, err := render(c.name, data)
			if err != nil {
				return err
			}
			a.CDIDevices = append(a.CDIDevices, name)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("render cdiDevices[%d]: %w", i, err)
		}
	}
	return a, nil
}

func (r *Resource) itemCount(devices int, items []pathPairTmpl) int {
	n := 0
	for _, it := range items {
		if it.perDevice {
			n += devices
		} else {
			n++
		}
	}
	return n
}

// sortIDs returns ids in manifest order, or an UnknownIDsError.
func (r *Resource) sortIDs(ids []string) ([]string, error) {
	sorted := slices.Clone(ids)
	var unknown []string
	for _, id := range ids {
		if _, ok := r.position[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownIDsError{Resource: r.Name, IDs: unknown}
	}
	slices.SortFunc(sorted, func(a, b string) int { return r.position[a] - r.position[b] })
	return sorted, nil
}

// Has reports whether id is a device of this resource.
func (r *Resource) Has(id string) bool {
	_, ok := r.position[id]
	return ok
}

// Position is id's index in IDs, or -1.
func (r *Resource) Position(id string) int {
	if i, ok := r.position[id]; ok {
		return i
	}
	return -1
}

// StaticUnhealthy reports whether the manifest lists id as unhealthy.
func (r *Resource) StaticUnhealthy(id string) bool { return r.unhealthy[id] }

// NUMANode returns the virtual NUMA node of the device at index i, and
// whether the resource has a topology at all.
func (r *Resource) NUMANode(i int) (int, bool) {
	if r.numa == nil {
		return 0, false
	}
	return r.numa[i], true
}

// HealthCheck returns the per-device paths to probe and the interval, or
// nil when the resource has no healthCheck.
func (r *Resource) HealthCheck() (paths []string, interval time.Duration) {
	return r.healthPaths, r.healthInterval
}

// ServesNode reports whether the resource is served on the named node: it
// is unless nodes: is set and no glob matches.
func (r *Resource) ServesNode(node string) bool {
	if len(r.Spec.Nodes) == 0 {
		return true
	}
	for _, pattern := range r.Spec.Nodes {
		if ok, _ := path.Match(pattern, node); ok {
			return true
		}
	}
	return false
}

// SameSpec reports whether o declares exactly what r declares.
func (r *Resource) SameSpec(o *Resource) bool {
	return reflect.DeepEqual(r.Spec, o.Spec)
}

// SameDevices reports whether o has the same device list as r: IDs, static
// health, and topology. Health check settings count as device settings
// because they decide health.
func (r *Resource) SameDevices(o *Resource) bool {
	return slices.Equal(r.IDs, o.IDs) &&
		reflect.DeepEqual(r.unhealthy, o.unhealthy) &&
		slices.Equal(r.numa, o.numa) &&
		slices.Equal(r.healthPaths, o.healthPaths) &&
		r.healthInterval == o.healthInterval
}

// SameRegistration reports whether r and o register with the kubelet the
// same way (the options the kubelet reads at registration).
func (r *Resource) SameRegistration(o *Resource) bool {
	return r.Name == o.Name && r.Spec.PreStartRequired == o.Spec.PreStartRequired
}

func quoteAll(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprintf("%q", id)
	}
	return out
}
