package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
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

// Render builds one container's allocation for the given device IDs from
// the templates compiled at load; it does no parsing and no I/O. The IDs
// are put into manifest order first, so .IDs and .Index do not depend on
// the order the kubelet sent them in. Lists and maps the resource declares
// are non-nil even when empty.
func (r *Resource) Render(ids []string, node string) (*Allocation, error) {
	sorted, err := r.inManifestOrder(ids)
	if err != nil {
		return nil, err
	}
	cd := ContainerData{Resource: r.Name, IDs: sorted, Count: len(sorted), Node: node}
	var b bytes.Buffer
	render := func(t *tmpl, device int) (string, error) {
		b.Reset()
		var err error
		if device < 0 {
			err = t.render(&b, cd)
		} else {
			err = t.render(&b, DeviceData{ContainerData: cd, ID: sorted[device], Index: device})
		}
		if err == nil && !utf8.Valid(b.Bytes()) {
			// The kubelet's protobuf decoder refuses such text; say where it came from.
			err = errors.New("renders text that is not valid UTF-8")
		}
		return b.String(), err
	}
	// times is how often an item renders: once, or once per device (-1
	// meaning the container).
	times := func(perDevice bool) []int {
		if !perDevice {
			return []int{-1}
		}
		devices := make([]int, len(sorted))
		for i := range devices {
			devices[i] = i
		}
		return devices
	}

	a := &Allocation{}
	if len(r.env) > 0 {
		a.Envs = make(map[string]string, len(r.env))
	}
	for _, e := range r.env {
		if a.Envs[e.key], err = render(e.t, -1); err != nil {
			return nil, fmt.Errorf("render env %s: %w", e.key, err)
		}
	}
	if len(r.annotations) > 0 {
		a.Annotations = make(map[string]string, len(r.annotations))
	}
	for _, e := range r.annotations {
		if a.Annotations[e.key], err = render(e.t, -1); err != nil {
			return nil, fmt.Errorf("render annotation %s: %w", e.key, err)
		}
	}
	if len(r.mounts) > 0 {
		a.Mounts = []Mount{}
	}
	for i, m := range r.mounts {
		for _, device := range times(m.perDevice) {
			var out Mount
			if out.HostPath, err = render(m.host, device); err == nil {
				out.ContainerPath, err = render(m.container, device)
			}
			if err != nil {
				return nil, fmt.Errorf("render mounts[%d]: %w", i, err)
			}
			out.ReadOnly = m.readOnly
			a.Mounts = append(a.Mounts, out)
		}
	}
	if len(r.devices) > 0 {
		a.Devices = []DeviceNode{}
	}
	for i, d := range r.devices {
		for _, device := range times(d.perDevice) {
			var out DeviceNode
			if out.HostPath, err = render(d.host, device); err == nil {
				out.ContainerPath, err = render(d.container, device)
			}
			if err != nil {
				return nil, fmt.Errorf("render devices[%d]: %w", i, err)
			}
			out.Permissions = d.permissions
			a.Devices = append(a.Devices, out)
		}
	}
	if len(r.cdi) > 0 {
		a.CDIDevices = []string{}
	}
	for i, c := range r.cdi {
		for _, device := range times(c.perDevice) {
			name, err := render(c.name, device)
			if err != nil {
				return nil, fmt.Errorf("render cdiDevices[%d]: %w", i, err)
			}
			a.CDIDevices = append(a.CDIDevices, name)
		}
	}
	return a, nil
}

// inManifestOrder returns ids sorted by their position in IDs, or an
// UnknownIDsError naming the IDs the resource does not have.
func (r *Resource) inManifestOrder(ids []string) ([]string, error) {
	var unknown []string
	for _, id := range ids {
		if !r.Has(id) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownIDsError{Resource: r.Name, IDs: unknown}
	}
	sorted := slices.Clone(ids)
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
