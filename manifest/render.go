package manifest

import (
	"fmt"
	"path"
	"reflect"
	"slices"
	"strconv"
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
	positions, err := r.sortedPositions(ids)
	if err != nil {
		return nil, err
	}
	var out Rendered
	if err := r.RenderPositions(&out, positions, node); err != nil {
		return nil, err
	}
	return r.allocationOf(&out), nil
}

// Rendered is one container's allocation rendered into one buffer, for a
// caller that encodes it itself (the host writes Allocate's wire form from
// it): every rendered string is a Span of Text, and keys and permissions
// are the manifest's own strings. RenderPositions resets it and reuses its
// memory, so a caller that keeps one renders without allocating.
type Rendered struct {
	Text        []byte
	Envs        []RenderedKV // in key order
	Annotations []RenderedKV // in key order
	Mounts      []RenderedMount
	Devices     []RenderedDevice
	CDIDevices  []Span

	ids []string // the allocation's IDs, built only for text/template
}

// Span is Text[Start:End] of a Rendered.
type Span struct{ Start, End int }

// RenderedKV is a rendered env var or annotation.
type RenderedKV struct {
	Key   string
	Value Span
}

// RenderedMount is a rendered bind mount.
type RenderedMount struct {
	ContainerPath, HostPath Span
	ReadOnly                bool
}

// RenderedDevice is a rendered device node.
type RenderedDevice struct {
	ContainerPath, HostPath Span
	Permissions             string
}

// Bytes is the text of s.
func (rd *Rendered) Bytes(s Span) []byte { return rd.Text[s.Start:s.End] }

func (rd *Rendered) reset() {
	rd.Text = rd.Text[:0]
	rd.Envs = rd.Envs[:0]
	rd.Annotations = rd.Annotations[:0]
	rd.Mounts = rd.Mounts[:0]
	rd.Devices = rd.Devices[:0]
	rd.CDIDevices = rd.CDIDevices[:0]
	rd.ids = rd.ids[:0]
}

// RenderPositions renders one container's allocation like Render, into out
// (reset first), for the devices at positions in IDs: ascending, so in
// manifest order, as the kubelet's request sorted (Position gives them).
// Simple templates (simple.go) are written straight into out.Text with
// nothing boxed or allocated; others run text/template.
func (r *Resource) RenderPositions(out *Rendered, positions []int, node string) error {
	out.reset()
	ar := allocationRenderer{r: r, out: out, text: out.Text, positions: positions, node: node}
	defer func() { out.Text = ar.text }()
	for _, e := range r.env {
		v, err := ar.render(e.t, -1)
		if err != nil {
			return fmt.Errorf("render env %s: %w", e.key, err)
		}
		out.Envs = append(out.Envs, RenderedKV{Key: e.key, Value: v})
	}
	for _, e := range r.annotations {
		v, err := ar.render(e.t, -1)
		if err != nil {
			return fmt.Errorf("render annotation %s: %w", e.key, err)
		}
		out.Annotations = append(out.Annotations, RenderedKV{Key: e.key, Value: v})
	}
	for i := range r.mounts {
		m := &r.mounts[i]
		for j := range ar.times(m.perDevice) {
			host, cont, err := ar.pair(m, ar.device(m.perDevice, j))
			if err != nil {
				return fmt.Errorf("render mounts[%d]: %w", i, err)
			}
			out.Mounts = append(out.Mounts, RenderedMount{ContainerPath: cont, HostPath: host, ReadOnly: m.readOnly})
		}
	}
	for i := range r.devices {
		d := &r.devices[i]
		for j := range ar.times(d.perDevice) {
			host, cont, err := ar.pair(d, ar.device(d.perDevice, j))
			if err != nil {
				return fmt.Errorf("render devices[%d]: %w", i, err)
			}
			out.Devices = append(out.Devices, RenderedDevice{ContainerPath: cont, HostPath: host, Permissions: d.permissions})
		}
	}
	for i, c := range r.cdi {
		for j := range ar.times(c.perDevice) {
			name, err := ar.render(c.name, ar.device(c.perDevice, j))
			if err != nil {
				return fmt.Errorf("render cdiDevices[%d]: %w", i, err)
			}
			out.CDIDevices = append(out.CDIDevices, name)
		}
	}
	return nil
}

// allocationOf turns a rendering into an Allocation: its strings are
// slices of one copy of the text. Lists and maps the resource declares are
// non-nil even when empty, as they always were.
func (r *Resource) allocationOf(rd *Rendered) *Allocation {
	text := string(rd.Text)
	str := func(s Span) string { return text[s.Start:s.End] }
	a := &Allocation{}
	if len(r.env) > 0 {
		a.Envs = make(map[string]string, len(rd.Envs))
		for _, kv := range rd.Envs {
			a.Envs[kv.Key] = str(kv.Value)
		}
	}
	if len(r.annotations) > 0 {
		a.Annotations = make(map[string]string, len(rd.Annotations))
		for _, kv := range rd.Annotations {
			a.Annotations[kv.Key] = str(kv.Value)
		}
	}
	if len(r.mounts) > 0 {
		a.Mounts = make([]Mount, len(rd.Mounts))
		for i, m := range rd.Mounts {
			a.Mounts[i] = Mount{ContainerPath: str(m.ContainerPath), HostPath: str(m.HostPath), ReadOnly: m.ReadOnly}
		}
	}
	if len(r.devices) > 0 {
		a.Devices = make([]DeviceNode, len(rd.Devices))
		for i, d := range rd.Devices {
			a.Devices[i] = DeviceNode{ContainerPath: str(d.ContainerPath), HostPath: str(d.HostPath), Permissions: d.Permissions}
		}
	}
	if len(r.cdi) > 0 {
		a.CDIDevices = make([]string, len(rd.CDIDevices))
		for i, c := range rd.CDIDevices {
			a.CDIDevices[i] = str(c)
		}
	}
	return a
}

// allocationRenderer renders the items of one allocation into text, which
// becomes out.Text when done. The text is kept here, not in out, because
// the renderer lives on the stack: appending to it needs no GC write
// barrier, as appending to out.Text (on the heap) would each time.
type allocationRenderer struct {
	r         *Resource
	out       *Rendered
	text      []byte
	positions []int // the allocated devices' positions in r.IDs, ascending
	node      string
	haveIDs   bool // out.ids holds the allocation's IDs
}

// render appends what t renders for the allocation (device < 0) or for
// its device'th device, and returns where it went.
func (ar *allocationRenderer) render(t *tmpl, device int) (Span, error) {
	start := len(ar.text)
	switch {
	case t.literal:
		ar.text = append(ar.text, t.text...)
	case t.pieces != nil && (device >= 0 || t.needs&deviceFields == 0):
		ar.text = ar.appendPieces(ar.text, t.pieces, device)
	default:
		if err := ar.execute(t, device); err != nil {
			return Span{}, err
		}
	}
	return Span{Start: start, End: len(ar.text)}, nil
}

// appendPieces writes a simple template: what text/template would write
// for the same data (TestSimpleTemplates), without reflection or boxing.
func (ar *allocationRenderer) appendPieces(b []byte, pieces []piece, device int) []byte {
	for _, p := range pieces {
		switch p.kind {
		case pieceText:
			b = append(b, p.text...)
		case pieceResource:
			b = append(b, ar.r.Name...)
		case pieceNode:
			b = append(b, ar.node...)
		case pieceCount:
			b = strconv.AppendInt(b, int64(len(ar.positions)), 10)
		case pieceJoinIDs:
			for i, pos := range ar.positions {
				if i > 0 {
					b = append(b, p.text...)
				}
				b = append(b, ar.r.IDs[pos]...)
			}
		case pieceID:
			b = append(b, ar.r.IDs[ar.positions[device]]...)
		case pieceIndex:
			b = strconv.AppendInt(b, int64(device), 10)
		}
	}
	return b
}

// execute runs t through text/template with the data it has always seen:
// a ContainerData, or a DeviceData for a device.
func (ar *allocationRenderer) execute(t *tmpl, device int) error {
	if !ar.haveIDs {
		ids := ar.out.ids[:0]
		if ids == nil {
			ids = make([]string, 0, len(ar.positions)) // never nil: {{ printf "%#v" .IDs }} would show it
		}
		for _, pos := range ar.positions {
			ids = append(ids, ar.r.IDs[pos])
		}
		ar.out.ids, ar.haveIDs = ids, true
	}
	cd := ContainerData{Resource: ar.r.Name, IDs: ar.out.ids, Count: len(ar.out.ids), Node: ar.node}
	var data any = cd
	if device >= 0 {
		data = DeviceData{ContainerData: cd, ID: ar.out.ids[device], Index: device}
	}
	// Through out.Text: a writer pointing into ar would move ar to the heap.
	ar.out.Text = ar.text
	err := t.t.Execute((*appendWriter)(&ar.out.Text), data)
	ar.text = ar.out.Text
	return err
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter []byte

func (w *appendWriter) Write(p []byte) (int, error) {
	*w = append(*w, p...)
	return len(p), nil
}

// pair renders a mount's or device node's two paths.
func (ar *allocationRenderer) pair(p *pathPairTmpl, device int) (host, container Span, err error) {
	if host, err = ar.render(p.host, device); err != nil {
		return Span{}, Span{}, err
	}
	if container, err = ar.render(p.container, device); err != nil {
		return Span{}, Span{}, err
	}
	return host, container, nil
}

// times is how often an item is rendered: once per container, or once per
// allocated device.
func (ar *allocationRenderer) times(perDevice bool) int {
	if perDevice {
		return len(ar.positions)
	}
	return 1
}

// device is the device the j-th rendering of an item is for; -1 for the
// container.
func (ar *allocationRenderer) device(perDevice bool, j int) int {
	if perDevice {
		return j
	}
	return -1
}

// sortedPositions returns the positions of ids in IDs, ascending, or an
// UnknownIDsError naming the IDs the resource does not have.
func (r *Resource) sortedPositions(ids []string) ([]int, error) {
	positions := make([]int, 0, len(ids))
	var unknown []string
	for _, id := range ids {
		i := r.Position(id)
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
	return positions, nil
}

// Has reports whether id is a device of this resource.
func (r *Resource) Has(id string) bool { return r.Position(id) >= 0 }

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
