package manifest

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// DeviceListCheck is a limit on a resource's device list that comes from
// outside the manifest, such as the size of the message that carries it
// to the kubelet. It returns why the list is refused, or nil.
type DeviceListCheck func(ids []string, topology bool) error

// maxCount bounds count before any ID is generated, so a typo such as
// count: 100000000 costs nothing to report. A DeviceListCheck sets the
// real limit, far below.
const maxCount = 1 << 20

// sampleIDs is how many devices sample renders use at validation.
const sampleIDs = 3

// compileResource applies every per-resource rule that needs more than a
// struct tag, and builds the compiled form. It returns nil when the
// resource cannot be compiled (its errors are in errs).
func compileResource(spec ResourceSpec, p string, checks []DeviceListCheck, errs *ErrorList) *Resource {
	before := len(*errs)
	r := &Resource{Spec: spec, Name: spec.Name}

	countField := p + ".count"
	switch {
	case spec.Count != nil && spec.IDs != nil:
		errs.add(p, "sets both count and ids; keep one: count for generated IDs, ids for an explicit list")
	case spec.Discover != nil && (spec.Count != nil || spec.IDs != nil):
		errs.add(p+".discover", "is set with count or ids; keep one: discover finds the devices on the host, count and ids declare them")
	case spec.Discover != nil:
		countField = p + ".discover"
		r.compileDiscover(p, errs)
	case spec.Count == nil && spec.IDs == nil:
		errs.add(countField, "is required: set count (1 or more), ids (an explicit list) or discover (devices found on the host)")
	case spec.Count != nil && *spec.Count > maxCount:
		errs.add(countField, "%d devices are far more than one resource can serve; use fewer devices, or split the resource", *spec.Count)
	case spec.Count != nil && *spec.Count >= 1:
		r.IDs = generateIDs(spec, p, errs)
	case spec.IDs != nil:
		countField = p + ".ids"
		if spec.IDTemplate != "" {
			errs.add(p+".idTemplate", "applies only with count; with ids the list is the IDs, so remove idTemplate")
		}
		r.IDs = spec.IDs
	}
	r.byID = sortedIndex(r.IDs)
	// Equal IDs are now next to each other, the first occurrence first.
	dupOf, dupAt := -1, -1 // for a template, the first device whose ID repeats an earlier one
	for k, first := 1, 0; k < len(r.byID); k++ {
		i := int(r.byID[k])
		if r.IDs[i] != r.IDs[r.byID[first]] {
			first = k
			continue
		}
		j := int(r.byID[first])
		if spec.IDs != nil {
			errs.add(fmt.Sprintf("%s.ids[%d]", p, i), "device ID %q appears twice (also at index %d); device IDs must be unique", r.IDs[i], j)
		} else if dupAt < 0 || i < dupAt {
			dupOf, dupAt = j, i
		}
	}
	if dupAt >= 0 {
		// One error is enough for a template: it would repeat for every device.
		errs.add(p+".idTemplate", "renders device %d and device %d both as %q; device IDs must be unique, so use {{ .Index }} in it", dupOf, dupAt, r.IDs[dupAt])
	}
	if len(r.IDs) > 0 {
		for _, check := range checks {
			if err := check(r.IDs, spec.Topology != nil); err != nil {
				errs.add(countField, "%s", err)
			}
		}
	}

	r.unhealthy = map[string]bool{}
	for i, id := range spec.Unhealthy {
		// An empty ID is reported as "must not be empty" already.
		if !r.Has(id) && len(r.IDs) > 0 && id != "" {
			errs.add(fmt.Sprintf("%s.unhealthy[%d]", p, i), "%q is not a device of this resource (%s)", id, describeIDs(r.IDs))
		}
		r.unhealthy[id] = true
	}

	r.compileTopology(p, errs)
	r.compileTemplates(p, errs)
	r.compileCDI(p, countField, errs)
	r.compileDRA(p, errs)

	if len(*errs) > before {
		return nil
	}
	return r
}

// generateIDs renders idTemplate (or the default "<name part>-<index>") for
// every index, checking each ID. The IDs are written into one buffer and
// cut into strings once: a resource holds its IDs for its whole life, and
// one allocation per resource instead of one per device is much of what
// keeps a large manifest small.
func generateIDs(spec ResourceSpec, p string, errs *ErrorList) []string {
	n := *spec.Count
	var b bytes.Buffer
	ends := make([]int, 0, n)
	cut := func() []string {
		all, ids, start := b.String(), make([]string, len(ends)), 0
		for i, end := range ends {
			ids[i], start = all[start:end], end
		}
		return ids
	}
	if spec.IDTemplate == "" {
		prefix := path.Base(spec.Name) + "-"
		for i := range n {
			b.WriteString(prefix)
			b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(i), 10))
			ends = append(ends, b.Len())
		}
		ids := cut()
		// An invalid name has its own error; its IDs would only repeat it.
		if why := checkDeviceID(ids[n-1]); why != "" && checkExtendedResourceName(spec.Name) == "" {
			errs.add(p+".name", "default device IDs are <name part>-<index>, and %s; set idTemplate to something shorter", why)
			return nil
		}
		return ids
	}
	t, err := compileTemplate("idTemplate", spec.IDTemplate)
	if err != nil {
		errs.add(p+".idTemplate", "%s", err)
		return nil
	}
	d := &DeviceData{ContainerData: ContainerData{Resource: spec.Name}}
	var renderErr error
	for i := range n {
		d.Index = i
		if renderErr = t.renderFor(&b, d, forID); renderErr != nil {
			break
		}
		ends = append(ends, b.Len())
	}
	// The first bad device is named: an invalid ID before a failed render.
	ids := cut()
	for i, id := range ids {
		if why := checkDeviceID(id); why != "" {
			errs.add(p+".idTemplate", "renders device %d as an invalid ID: %s", i, why)
			return nil
		}
	}
	if renderErr != nil {
		errs.add(p+".idTemplate", "does not render: %s (idTemplate sees .Index and .Resource)", cleanTemplateErr(renderErr, "idTemplate"))
		return nil
	}
	if t.literal && n > 1 {
		errs.add(p+".idTemplate", "has no {{ .Index }}, so all %d devices get the ID %q; IDs must be unique", n, ids[0])
		return nil
	}
	return ids
}

func (r *Resource) compileTopology(p string, errs *ErrorList) {
	topo := r.Spec.Topology
	if topo == nil || len(r.IDs) == 0 {
		return
	}
	switch {
	case topo.NUMANodes < 0 || topo.NUMANodes > maxNUMANodes:
		return // the field rule says what is wrong
	case topo.NUMANodes > 0 && len(topo.NodeOf) > 0:
		errs.add(p+".topology", "sets both numaNodes and nodeOf; keep one")
	case topo.NUMANodes > 0:
		if topo.NUMANodes > len(r.IDs) {
			devices := fmt.Sprintf("%d devices", len(r.IDs))
			if len(r.IDs) == 1 {
				devices = "1 device"
			}
			errs.add(p+".topology.numaNodes", "%d NUMA nodes for %s leaves some nodes empty; use at most %d", topo.NUMANodes, devices, len(r.IDs))
			return
		}
		r.numa = make([]int, len(r.IDs))
		for i := range r.numa {
			r.numa[i] = i * topo.NUMANodes / len(r.IDs)
		}
	case len(topo.NodeOf) > 0:
		r.numa = make([]int, len(r.IDs))
		for _, id := range slices.Sorted(maps.Keys(topo.NodeOf)) {
			if !r.Has(id) {
				errs.add(fmt.Sprintf("%s.topology.nodeOf[%s]", p, id), "%q is not a device of this resource (%s)", id, describeIDs(r.IDs))
			}
		}
		var missing []string
		for i, id := range r.IDs {
			node, ok := topo.NodeOf[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			if node < 0 || node >= maxNUMANodes {
				continue // the field rule says what is wrong
			}
			r.numa[i] = node
		}
		if len(missing) > 0 {
			errs.add(p+".topology.nodeOf", "gives no NUMA node for %s; list every device", describeIDs(missing))
		}
	default:
		errs.add(p+".topology", "is empty; set numaNodes or nodeOf, or remove topology")
	}
}

// compileTemplates parses every template once and renders it on sample
// data, so a template that would fail at Allocate fails here instead.
func (r *Resource) compileTemplates(p string, errs *ErrorList) {
	spec := r.Spec

	// compile parses src and renders it on the sample, returning the
	// compiled template and its sample renderings.
	compile := func(field, src string, perDevice bool) (*tmpl, []string) {
		t, err := compileTemplate(field, src)
		if err != nil {
			errs.add(field, "%s", err)
			return nil, nil
		}
		out, err := r.renderSample(t, perDevice)
		if err != nil {
			errs.add(field, "%s", explainExecErr(err, field, perDevice))
			return nil, nil
		}
		return t, out
	}

	for _, key := range slices.Sorted(maps.Keys(spec.Env)) {
		if t, _ := compile(fmt.Sprintf("%s.env[%s]", p, key), spec.Env[key], false); t != nil {
			r.env = append(r.env, keyedTmpl{key: key, t: t})
		}
	}
	for _, key := range slices.Sorted(maps.Keys(spec.Annotations)) {
		if t, _ := compile(fmt.Sprintf("%s.annotations[%s]", p, key), spec.Annotations[key], false); t != nil {
			r.annotations = append(r.annotations, keyedTmpl{key: key, t: t})
		}
	}

	// Container paths must be unique within one allocation: the runtime
	// cannot mount two things on one path.
	containerPaths := map[string]string{}
	checkPaths := func(field, src string, rendered []string, isContainer bool) {
		if src == "" {
			return // "is required" says it
		}
		for _, s := range rendered {
			if why := checkAbsPath(s); why != "" {
				errs.add(field, "%s", why)
				return
			}
		}
		if !isContainer {
			return
		}
		for _, s := range rendered {
			if other, dup := containerPaths[s]; dup {
				if other == field {
					errs.add(field, "renders the same path %q for two devices; use {{ .ID }} or {{ .Index }} in it, or set perDevice: false", s)
				} else {
					errs.add(field, "renders %q, which %s also uses; container paths must be unique", s, other)
				}
				return
			}
			containerPaths[s] = field
		}
	}

	// pair compiles and checks a mount's or device node's two paths.
	pair := func(f, hostPath, containerPath string, perDevice bool) (pathPairTmpl, bool) {
		host, hs := compile(f+".hostPath", hostPath, perDevice)
		cont, cs := compile(f+".containerPath", containerPath, perDevice)
		checkPaths(f+".hostPath", hostPath, hs, false)
		checkPaths(f+".containerPath", containerPath, cs, true)
		return pathPairTmpl{host: host, container: cont, perDevice: perDevice}, host != nil && cont != nil
	}
	for i, m := range spec.Mounts {
		if pp, ok := pair(fmt.Sprintf("%s.mounts[%d]", p, i), m.HostPath, m.ContainerPath, m.PerDevice); ok {
			pp.readOnly = m.ReadOnly
			r.mounts = append(r.mounts, pp)
		}
	}
	for i, d := range spec.Devices {
		if pp, ok := pair(fmt.Sprintf("%s.devices[%d]", p, i), d.HostPath, d.ContainerPath, d.PerDevice); ok {
			pp.permissions = d.Permissions
			r.devices = append(r.devices, pp)
		}
	}
	for i, c := range spec.CDIDevices {
		f := fmt.Sprintf("%s.cdiDevices[%d].name", p, i)
		t, names := compile(f, c.Name, c.PerDevice)
		for _, n := range names {
			// An empty name is reported as "is required" already; a
			// template that renders empty is not, so it is checked here.
			if why := checkCDIName(n); why != "" && c.Name != "" {
				errs.add(f, "%s", why)
				t = nil
				break
			}
		}
		if t != nil {
			r.cdi = append(r.cdi, cdiTmpl{name: t, perDevice: c.PerDevice})
		}
	}

	if hc := spec.HealthCheck; hc != nil && len(r.IDs) > 0 {
		f := p + ".healthCheck.path"
		t, _ := compile(f, hc.Path, true)
		if t == nil {
			return
		}
		r.healthInterval = hc.Interval.Duration
		// Each device is probed as an allocation of itself.
		paths := make([]string, 0, len(r.IDs))
		var renderErr error
		for i, id := range r.IDs {
			var hp string
			cd := ContainerData{Resource: r.Name, IDs: []string{id}, Count: 1}
			if hp, renderErr = t.renderString(DeviceData{ContainerData: cd, ID: id, Index: i}, forDevice); renderErr != nil {
				break
			}
			paths = append(paths, hp)
		}
		for i, hp := range paths {
			// Every device's path is checked: an ID such as "../x" can make
			// one unclean where the others are fine. An empty template is
			// reported as "is required" already.
			if why := checkAbsPath(hp); why != "" && hc.Path != "" {
				if !t.literal {
					why = fmt.Sprintf("for device %q, %s", r.IDs[i], why)
				}
				errs.add(f, "%s", why)
				return
			}
		}
		// After the paths of the devices before it, as each device was
		// checked before the next rendered.
		if renderErr != nil {
			errs.add(f, "%s", explainExecErr(renderErr, f, true))
			return
		}
		r.healthPaths = paths
	}
}

// sampleIDs is the allocation used to try templates at validation: the
// first few devices (two or more, when there are, so per-device clashes show).
func (r *Resource) sampleIDs() []string {
	if len(r.IDs) == 0 {
		// Discovered later, or the device list is invalid; still try the templates.
		return []string{"sample-0", "sample-1"}
	}
	n := min(len(r.IDs), sampleIDs)
	return r.IDs[:n]
}

// renderSample renders t on the sample allocation: once, or once per
// sample device.
func (r *Resource) renderSample(t *tmpl, perDevice bool) ([]string, error) {
	ids := r.sampleIDs()
	cd := ContainerData{Resource: r.Name, IDs: ids, Count: len(ids), Node: "sample-node"}
	if !perDevice {
		s, err := t.renderString(DeviceData{ContainerData: cd}, r.sc(forContainer))
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	out := make([]string, 0, len(ids))
	for i, id := range ids {
		s, err := t.renderString(r.sampleDevice(cd, i, id), r.sc(forDevice))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// describeIDs names a few of ids for an error message.
func describeIDs(ids []string) string {
	const show = 4
	if len(ids) <= show {
		return "devices: " + strings.Join(ids, ", ")
	}
	return fmt.Sprintf("devices: %s, … %s (%d in all)", strings.Join(ids[:show-1], ", "), ids[len(ids)-1], len(ids))
}

// sampleDevice is the sample device i with the given ID; a discovered one
// has a host path too.
func (r *Resource) sampleDevice(cd ContainerData, i int, id string) DeviceData {
	d := DeviceData{ContainerData: cd, ID: id, Index: i}
	if r.Discovers() {
		d.path, d.base = "/dev/"+id, id
	}
	return d
}

// sortedIndex is the indices of ids sorted by ID, equal IDs in their
// order: what Position searches.
func sortedIndex(ids []string) []int32 {
	idx := make([]int32, len(ids))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return strings.Compare(ids[a], ids[b]) })
	return idx
}
