package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// Render builds one container's allocation for the devices at the given
// positions in IDs (see Positions) from the templates compiled at load; it
// does no parsing and no I/O. The devices are put into manifest order
// first, so .IDs and .Index do not depend on the order the kubelet sent
// them in. Lists and maps the resource declares are non-nil even when
// empty.
func (r *Resource) Render(devices []int, node string) (*Allocation, error) {
	inOrder := slices.Clone(devices)
	slices.Sort(inOrder)
	sorted := make([]string, len(inOrder))
	for k, i := range inOrder {
		sorted[k] = r.IDs[i]
	}
	var err error
	w := writers.Get().(*writer)
	defer w.release()
	w.d = DeviceData{ContainerData: ContainerData{Resource: r.Name, IDs: sorted, Count: len(sorted), Node: node}}
	w.r, w.pos = r, inOrder
	a := &Allocation{}
	if len(r.env) > 0 {
		a.Envs = make(map[string]string, len(r.env))
	}
	for _, e := range r.env {
		if a.Envs[e.key], err = w.string(e.t); err != nil {
			return nil, fmt.Errorf("render env %s: %w", e.key, err)
		}
	}
	if len(r.annotations) > 0 {
		a.Annotations = make(map[string]string, len(r.annotations))
	}
	for _, e := range r.annotations {
		if a.Annotations[e.key], err = w.string(e.t); err != nil {
			return nil, fmt.Errorf("render annotation %s: %w", e.key, err)
		}
	}
	// With a generated CDI spec, the per-device mounts and device nodes
	// reach the container through it, as the CDI names below: never both,
	// or the runtime would apply them twice.
	inSpec := r.cdiKind != ""
	// Each list gets its final length up front: w.cut keeps pointers into it.
	if r.mounts != nil {
		a.Mounts = make([]Mount, 0, r.countPaths(r.mounts, len(sorted)))
	}
	for i, m := range r.mounts {
		if inSpec && m.perDevice {
			continue
		}
		for device := range w.times(m.perDevice) {
			a.Mounts = append(a.Mounts, Mount{ReadOnly: m.readOnly})
			out := &a.Mounts[len(a.Mounts)-1]
			if err := w.cutPair(m, device, &out.HostPath, &out.ContainerPath); err != nil {
				return nil, fmt.Errorf("render mounts[%d].%w", i, err)
			}
		}
	}
	found := 0 // discovered device nodes, at most
	if r.found != nil && !inSpec {
		for _, i := range inOrder {
			found += len(r.found[i].nodes)
		}
	}
	if r.devices != nil || found > 0 {
		a.Devices = make([]DeviceNode, 0, r.countPaths(r.devices, len(sorted))+found)
	}
	for i, d := range r.devices {
		if inSpec && d.perDevice {
			continue
		}
		for device := range w.times(d.perDevice) {
			a.Devices = append(a.Devices, DeviceNode{Permissions: d.permissions})
			out := &a.Devices[len(a.Devices)-1]
			if err := w.cutPair(d, device, &out.HostPath, &out.ContainerPath); err != nil {
				return nil, fmt.Errorf("render devices[%d].%w", i, err)
			}
		}
	}
	if found > 0 {
		if a.Devices, err = appendFoundNodes(a.Devices, r.found, inOrder); err != nil {
			return nil, err
		}
	}
	if r.cdi != nil || inSpec {
		n := countEntries(r.cdi, len(sorted))
		if inSpec {
			n += len(sorted)
		}
		a.CDIDevices = make([]string, 0, n)
	}
	for i, c := range r.cdi {
		for device := range w.times(c.perDevice) {
			a.CDIDevices = append(a.CDIDevices, "")
			if err := w.cut(&a.CDIDevices[len(a.CDIDevices)-1], c.name, device); err != nil {
				return nil, fmt.Errorf("render cdiDevices[%d]: %w", i, err)
			}
		}
	}
	if inSpec {
		for _, id := range sorted {
			a.CDIDevices = append(a.CDIDevices, "")
			w.cutText(&a.CDIDevices[len(a.CDIDevices)-1], r.cdiKind, "=", id)
		}
	}
	w.finish()
	return a, nil
}

// countEntries is how many entries items produce for a container of n
// devices: one each, or one per device for the perDevice ones.
func countEntries[T interface{ entries(n int) int }](items []T, n int) int {
	total := 0
	for _, item := range items {
		total += item.entries(n)
	}
	return total
}

// countPaths is countEntries for mounts or device nodes, less the
// per-device ones that a generated CDI spec carries instead.
func (r *Resource) countPaths(items []pathPairTmpl, n int) int {
	total := 0
	for _, item := range items {
		if !(item.perDevice && r.cdiKind != "") {
			total += item.entries(n)
		}
	}
	return total
}

func (p pathPairTmpl) entries(n int) int { return entriesFor(p.perDevice, n) }
func (c cdiTmpl) entries(n int) int      { return entriesFor(c.perDevice, n) }

func entriesFor(perDevice bool, n int) int {
	if perDevice {
		return n
	}
	return 1
}

// writer renders one allocation. Per-device items are most of a large
// allocation, and this machine's allocator is the cost that counts: so
// they are written into one buffer and cut into strings once, at finish,
// rather than allocated one by one (see docs/performance.md).
type writer struct {
	d       DeviceData // the data templates see; ID and Index change per device
	r       *Resource  // whose devices
	pos     []int      // the allocated devices' indices in r.IDs, in d.IDs order
	buf     bytes.Buffer
	pending []pendingText
}

// writers keeps writers with their grown buffers between allocations.
var writers = sync.Pool{New: func() any { return new(writer) }}

func (w *writer) release() {
	if w.buf.Cap() > maxPooledText {
		return // a huge allocation's buffer is not worth keeping
	}
	clear(w.pending) // drop the pointers into the allocation
	w.pending = w.pending[:0]
	w.buf.Reset()
	w.d, w.r, w.pos = DeviceData{}, nil, nil
	writers.Put(w)
}

// maxPooledText bounds the buffers kept between allocations.
const maxPooledText = 64 << 10

// pendingText is a string to cut from buf at finish.
type pendingText struct {
	dst        *string
	start, end int
}

// times yields -1 (the container) for a shared item, or each device's
// index for a per-device one.
func (w *writer) times(perDevice bool) func(yield func(int) bool) {
	return func(yield func(int) bool) {
		if !perDevice {
			yield(-1)
			return
		}
		for i := range w.d.IDs {
			if !yield(i) {
				return
			}
		}
	}
}

// write renders t for the container (device < 0) or one of its devices
// at the end of buf, and returns where the text starts.
func (w *writer) write(t *tmpl, device int) (int, error) {
	start, s := w.buf.Len(), w.r.sc(forContainer)
	if device >= 0 {
		w.r.setDevice(&w.d, w.pos[device])
		w.d.Index, s = device, w.r.sc(forDevice)
	}
	if err := t.renderFor(&w.buf, &w.d, s); err != nil {
		w.buf.Truncate(start)
		return 0, err
	}
	if !utf8.Valid(w.buf.Bytes()[start:]) {
		// Such text cannot travel to the kubelet; say where it came from.
		w.buf.Truncate(start)
		return 0, errors.New("renders text that is not valid UTF-8")
	}
	return start, nil
}

// string renders t for the container as a string of its own.
func (w *writer) string(t *tmpl) (string, error) {
	start, err := w.write(t, -1)
	if err != nil {
		return "", err
	}
	s := string(w.buf.Bytes()[start:])
	w.buf.Truncate(start)
	return s, nil
}

// cut renders t and sets *dst to the text at finish.
func (w *writer) cut(dst *string, t *tmpl, device int) error {
	start, err := w.write(t, device)
	if err == nil {
		w.pending = append(w.pending, pendingText{dst: dst, start: start, end: w.buf.Len()})
	}
	return err
}

// cutPair renders both paths of a mount or device node into host and
// container, at finish; an error names the path that failed.
func (w *writer) cutPair(p pathPairTmpl, device int, host, container *string) error {
	if err := w.cut(host, p.host, device); err != nil {
		return fmt.Errorf("hostPath: %w", err)
	}
	if err := w.cut(container, p.container, device); err != nil {
		return fmt.Errorf("containerPath: %w", err)
	}
	return nil
}

// cutText sets *dst to the parts joined, at finish.
func (w *writer) cutText(dst *string, parts ...string) {
	start := w.buf.Len()
	for _, s := range parts {
		w.buf.WriteString(s)
	}
	w.pending = append(w.pending, pendingText{dst: dst, start: start, end: w.buf.Len()})
}

// finish sets every pending string, all cut from one copy of buf.
func (w *writer) finish() {
	text := w.buf.String()
	for _, p := range w.pending {
		*p.dst = text[p.start:p.end]
	}
}

// Positions returns the index in IDs of each of ids, in the order given,
// or an UnknownIDsError naming the IDs the resource does not have.
func (r *Resource) Positions(ids []string) ([]int, error) {
	positions := make([]int, len(ids))
	var unknown []string
	for k, id := range ids {
		if positions[k] = r.Position(id); positions[k] < 0 {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownIDsError{Resource: r.Name, IDs: unknown}
	}
	return positions, nil
}

// maxNamedIDs is how many IDs an error message names: a request can carry
// 100,000 of them, and the message travels in a gRPC trailer into kubelet
// logs and pod events.
const maxNamedIDs = 8

// ListIDs lists ids for a message or a log line, joined by sep: at most
// maxNamedIDs of them, then how many there are in all.
func ListIDs(ids []string, sep string) string { return nameIDs(ids, false, sep) }

// nameIDs is ListIDs, the IDs quoted if quote is set.
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

// appendFoundNodes adds the device nodes of the discovered devices at
// positions, each node once: two shares of one match carry the same node.
// Two nodes at one container path cannot both be there: an error, not
// one of them dropped.
func appendFoundNodes(list []DeviceNode, found []foundDevice, positions []int) ([]DeviceNode, error) {
	for _, i := range positions {
		for _, n := range found[i].nodes {
			k := slices.IndexFunc(list, func(o DeviceNode) bool { return o.ContainerPath == n.ContainerPath })
			switch {
			case k < 0:
				list = append(list, n)
			case list[k].HostPath != n.HostPath:
				return nil, fmt.Errorf("discover.containerPath puts %s and %s both at %s; ask for one device per container, or tell them apart in containerPath with .Base", list[k].HostPath, n.HostPath, n.ContainerPath)
			}
		}
	}
	return list, nil
}
