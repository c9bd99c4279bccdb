package manifest

import (
	"fmt"
	"regexp"
	"strings"

	"tags.cncf.io/container-device-interface/pkg/parser"
)

// compileCDI checks cdi: and sets the kind of the generated spec.
func (r *Resource) compileCDI(p string, countField string, errs *ErrorList) {
	c := r.Spec.CDI
	if c == nil {
		return
	}
	if !c.Spec {
		if c.Kind != "" {
			errs.add(p+".cdi.kind", "applies only with spec: true; set cdi.spec: true, or remove cdi")
		}
		return
	}
	kind, kindField := c.Kind, p+".cdi.kind"
	if kind == "" {
		kind, kindField = r.Name, p+".cdi.spec"
	}
	if why := checkCDIKind(kind); why != "" {
		if c.Kind == "" {
			why += "; the kind defaults to the resource name, so set cdi.kind to a vendor/class of your own, such as example.com/fpga"
		}
		errs.add(kindField, "%s", why)
		return
	}
	perDevice := 0
	for _, m := range r.Spec.Mounts {
		if m.PerDevice {
			perDevice++
		}
	}
	for _, d := range r.Spec.Devices {
		if d.PerDevice {
			perDevice++
		}
	}
	if perDevice == 0 && !r.Discovers() { // a discovered device carries its nodes
		errs.add(p+".cdi.spec", "the spec would give the devices nothing: CDI devices need edits, so add a mount or device node with perDevice: true, or remove cdi")
		return
	}
	for i, c := range r.Spec.CDIDevices {
		if strings.HasPrefix(c.Name, kind+"=") {
			errs.add(fmt.Sprintf("%s.cdiDevices[%d].name", p, i), "names the CDI kind %s, whose devices cdi.spec generates and Allocate hands out itself; remove this entry", kind)
		}
	}
	for i, id := range r.IDs {
		if err := parser.ValidateDeviceName(id); err != nil {
			field := countField
			if r.Spec.IDs != nil {
				field = fmt.Sprintf("%s.ids[%d]", p, i)
			} else if r.Spec.IDTemplate != "" {
				field = p + ".idTemplate"
			}
			errs.add(field, "device ID %q is not a CDI device name (%v); with cdi.spec every ID is one: use letters, digits, '_', '.', ':' and '-'", id, err)
			return
		}
	}
	// Render as the spec will, on a device of the resource: the data has
	// no .Index, .IDs or .Count, however a template reaches for them.
	check := func(field, src string) {
		t, err := compileTemplate(field, src)
		if err != nil || (len(r.IDs) == 0 && !r.Discovers()) {
			return // reported already
		}
		id := "sample-0"
		if len(r.IDs) > 0 {
			id = r.IDs[0]
		}
		if _, err := t.renderString(r.sampleDevice(ContainerData{Resource: r.Name}, 0, id), r.sc(forSpec)); err != nil {
			errs.add(field, "%s", explainSpecErr(err, field))
		}
	}
	for i, m := range r.Spec.Mounts {
		if m.PerDevice {
			check(fmt.Sprintf("%s.mounts[%d].hostPath", p, i), m.HostPath)
			check(fmt.Sprintf("%s.mounts[%d].containerPath", p, i), m.ContainerPath)
		}
	}
	for i, d := range r.Spec.Devices {
		if d.PerDevice {
			check(fmt.Sprintf("%s.devices[%d].hostPath", p, i), d.HostPath)
			check(fmt.Sprintf("%s.devices[%d].containerPath", p, i), d.ContainerPath)
		}
	}
	r.cdiKind = kind
}

// checkCDIKind returns why kind is not a CDI kind (vendor/class), or "".
func checkCDIKind(kind string) string {
	vendor, class := parser.ParseQualifier(kind)
	if vendor == "" {
		return fmt.Sprintf("%q is not a CDI kind; write vendor/class, such as example.com/fpga", kind)
	}
	if err := parser.ValidateVendorName(vendor); err != nil {
		return fmt.Sprintf("%q is not a CDI kind: %v", kind, err)
	}
	if err := parser.ValidateClassName(class); err != nil {
		return fmt.Sprintf("%q is not a CDI kind: %v", kind, err)
	}
	return ""
}

// explainSpecErr says why a per-device template cannot go into a CDI
// spec: most often it uses a field of the allocation.
func explainSpecErr(err error, field string) string {
	const only = "with cdi.spec the per-device edits are written once per device into the CDI spec, so use .ID (and .Resource, .Node) only"
	s := cleanTemplateErr(err, field)
	if m := allocationFieldRe.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("uses .%s, which depends on the allocation; %s", m[1], only)
	}
	return fmt.Sprintf("does not render for the CDI spec: %s; %s", s, only)
}

// allocationFieldRe finds a field of the allocation used directly.
var allocationFieldRe = regexp.MustCompile(`at <\.(Index|IDs|Count)>`)

// CDIKind is the kind of the CDI spec the host writes for the resource,
// or "" when it writes none.
func (r *Resource) CDIKind() string { return r.cdiKind }

// CDIName is the CDI device name of the device id in the generated spec.
func (r *Resource) CDIName(id string) string { return r.cdiKind + "=" + id }

// DeviceEdits renders the per-device mounts and device nodes of the
// device at index i, as a generated CDI spec holds them.
func (r *Resource) DeviceEdits(i int, node string) ([]Mount, []DeviceNode, error) {
	d := DeviceData{ContainerData: ContainerData{Resource: r.Name, Node: node}}
	r.setDevice(&d, i)
	var mounts []Mount
	for k, m := range r.mounts {
		if m.perDevice {
			host, cont, err := m.renderFor(d, r.sc(forSpec))
			if err != nil {
				return nil, nil, fmt.Errorf("render mounts[%d] for %s: %w", k, d.ID, err)
			}
			mounts = append(mounts, Mount{HostPath: host, ContainerPath: cont, ReadOnly: m.readOnly})
		}
	}
	var nodes []DeviceNode
	for k, dn := range r.devices {
		if dn.perDevice {
			host, cont, err := dn.renderFor(d, r.sc(forSpec))
			if err != nil {
				return nil, nil, fmt.Errorf("render devices[%d] for %s: %w", k, d.ID, err)
			}
			nodes = append(nodes, DeviceNode{HostPath: host, ContainerPath: cont, Permissions: dn.permissions})
		}
	}
	if r.found != nil {
		nodes = append(nodes, r.found[i].nodes...)
	}
	return mounts, nodes, nil
}

// renderFor renders both paths of a mount or device node.
func (p pathPairTmpl) renderFor(d DeviceData, s scope) (host, container string, err error) {
	if host, err = p.host.renderString(d, s); err != nil {
		return "", "", fmt.Errorf("hostPath: %w", err)
	}
	if container, err = p.container.renderString(d, s); err != nil {
		return "", "", fmt.Errorf("containerPath: %w", err)
	}
	return host, container, nil
}

// ExternalCDINames are the names from cdiDevices that the device at index
// i gets when allocated alone: what must resolve on the node for it to be
// healthy. Only those templates are rendered.
func (r *Resource) ExternalCDINames(i int, node string) ([]string, error) {
	id := r.IDs[i]
	d := DeviceData{ContainerData: ContainerData{Resource: r.Name, IDs: []string{id}, Count: 1, Node: node}}
	r.setDevice(&d, i)
	names := make([]string, 0, len(r.cdi))
	for k, c := range r.cdi {
		s := r.sc(forContainer)
		if c.perDevice {
			s = r.sc(forDevice)
		}
		name, err := c.name.renderString(d, s)
		if err != nil {
			return nil, fmt.Errorf("render cdiDevices[%d] for %s: %w", k, id, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// isCDIDeviceName reports whether id may be a CDI device name.
func isCDIDeviceName(id string) bool { return parser.ValidateDeviceName(id) == nil }
