package manifest

import (
	"bytes"
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
	return fmt.Sprintf("%s has no device %s", e.Resource, nameIDs(e.IDs, true, ", "))
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
	ar := allocationRenderer{container: &ContainerData{Resource: r.Name, IDs: sorted, Count: len(sorted), Node: node}}
	if r.hasPerDevice {
		ar.devices = make([]DeviceData, len(sorted))
		for i, id := range sorted {
			ar.devices[i] = DeviceData{ContainerData: *ar.container, ID: id, Index: i}
		}
	}

	a := &Allocation{}
	if len(r.env) > 0 {
		a.Envs = make(map[string]string, len(r.env))
		for _, e := range r.env {
			v, err := ar.render(e.t, ar.container)
			if err != nil {
				return nil, fmt.Errorf("render env %s: %w", e.key, err)
			}
			a.Envs[e.key] = v
		}
	}
	if len(r.annotations) > 0 {
		a.Annotations = make(map[string]string, len(r.annotations))
		for _, e := range r.annotations {
			v, err := ar.render(e.t, ar.container)
			if err != nil {
				return nil, fmt.Errorf("render annotation %s: %w", e.key, err)
			}
			a.Annotations[e.key] = v
		}
	}
	if len(r.mounts) > 0 {
		a.Mounts = make([]Mount, 0, ar.itemCount(r.mounts))
		for i := range r.mounts {
			m := &r.mounts[i]
			for j := range ar.times(m.perDevice) {
				host, cont, err := ar.pair(m, ar.data(m.perDevice, j))
				if err != nil {
					return nil, fmt.Errorf("render mounts[%d]: %w", i, err)
				}
				a.Mounts = append(a.Mounts, Mount{ContainerPath: cont, HostPath: host, ReadOnly: m.readOnly})
			}
		}
	}
	if len(r.devices) > 0 {
		a.Devices = make([]DeviceNode, 0, ar.itemCount(r.devices))
		for i := range r.devices {
			d := &r.devices[i]
			for j := range ar.times(d.perDevice) {
				host, cont, err := ar.pair(d, ar.data(d.perDevice, j))
				if err != nil {
					return nil, fmt.Errorf("render devices[%d]: %w", i, err)
				}
				a.Devices = append(a.Devices, DeviceNode{ContainerPath: cont, HostPath: host, Permissions: d.permissions})
			}
		}
	}
	if len(r.cdi) > 0 {
		n := 0
		for _, c := range r.cdi {
			n += ar.times(c.perDevice)
		}
		a.CDIDevices = make([]string, 0, n)
		for i, c := range r.cdi {
			for j := range ar.times(c.perDevice) {
				name, err := ar.render(c.name, ar.data(c.perDevice, j))
				if err != nil {
					return nil, fmt.Errorf("render cdiDevices[%d]: %w", i, err)
				}
				a.CDIDevices = append(a.CDIDevices, name)
			}
		}
	}
	return a, nil
}

// allocationRenderer holds one allocation's template data and a buffer
// that every template renders into, so each result costs one string.
// Template data is passed as pointers: boxing a pointer allocates nothing.
type allocationRenderer struct {
	container *ContainerData
	devices   []DeviceData // set when the resource has per-device items
	buf       bytes.Buffer
}

func (ar *allocationRenderer) render(t *tmpl, data any) (string, error) {
	if t.literal {
		return t.text, nil
	}
	ar.buf.Reset()
	if err := t.render(&ar.buf, data); err != nil {
		return "", err
	}
	return ar.buf.String(), nil
}

// pair renders a mount's or device node's two paths.
func (ar *allocationRenderer) pair(p *pathPairTmpl, data any) (host, container string, err error) {
	if host, err = ar.render(p.host, data); err != nil {
		return "", "", err
	}
	if container, err = ar.render(p.container, data); err != nil {
		return "", "", err
	}
	return host, container, nil
}

// times is how often an item is rendered: once per container, or once per
// allocated device.
func (ar *allocationRenderer) times(perDevice bool) int {
	if perDevice {
		return len(ar.devices)
	}
	return 1
}

// data is the template data for the j-th rendering of an item.
func (ar *allocationRenderer) data(perDevice bool, j int) any {
	if perDevice {
		return &ar.devices[j]
	}
	return ar.container
}

func (ar *allocationRenderer) itemCount(items []pathPairTmpl) int {
	n := 0
	for _, it := range items {
		n += ar.times(it.perDevice)
	}
	return n
}

// sortIDs returns ids in manifest order, or an UnknownIDsError.
func (r *Resource) sortIDs(ids []string) ([]string, error) {
	// Sort positions, not strings: one map lookup per ID instead of two
	// per comparison. An allocation is a few devices, so the positions
	// usually fit on the stack.
	var small [16]int
	positions := small[:0]
	if len(ids) > len(small) {
		positions = make([]int, 0, len(ids))
	}
	var unknown []string
	for _, id := range ids {
		i := r.index.find(r.IDs, id)
		if i < 0 {
			unknown = append(unknown, id)
			continue
		}
		positions = append(positions, i)
	}
	if len(unknown) > 0 {
		return nil, &UnknownIDsError{Resource: r.Name, IDs: unknown}
	}
	slices.Sort(positions)
	sorted := make([]string, len(positions))
	for k, i := range positions {
		sorted[k] = r.IDs[i]
	}
	return sorted, nil
}

// Has reports whether id is a device of this resource.
func (r *Resource) Has(id string) bool { return r.index.find(r.IDs, id) >= 0 }

// Position is id's index in IDs, or -1.
func (r *Resource) Position(id string) int { return r.index.find(r.IDs, id) }

// StaticUnhealthy reports whether the manifest lists id as unhealthy.
func (r *Resource) StaticUnhealthy(id string) bool { return r.unhealthy[id] }

// NUMANode returns the virtual NUMA node of the device at index i, and
// whether the resource has a topology at all.
func (r *Resource) NUMANode(i int) (int, bool) {
	if r.numa == nil {
		return 0, false
	}
	return int(r.numa[i]), true
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

// maxNamedIDs is how many IDs an error message names: a request can carry
// 100,000 of them, and the message travels in a gRPC trailer into kubelet
// logs and pod events.
const maxNamedIDs = 8

// nameIDs lists ids for an error message, at most maxNamedIDs of them,
// then how many there are in all.
func nameIDs(ids []string, quote bool, sep string) string {
	shown := ids[:min(len(ids), maxNamedIDs)]
	out := make([]string, len(shown))
	for i, id := range shown {
		if quote {
			id = fmt.Sprintf("%q", id)
		}
		out[i] = id
	}
	s := strings.Join(out, sep)
	if len(ids) > len(shown) {
		s += fmt.Sprintf("%s… (%d in all)", sep, len(ids))
	}
	return s
}
