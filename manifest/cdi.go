package manifest

import (
	"fmt"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"tags.cncf.io/container-device-interface/pkg/parser"
)

// A generated CDI spec is written once per device, not per allocation: its
// per-device templates may use .ID, .Resource and .Node, never what
// depends on the allocation.
var allocationFields = []string{"Index", "IDs", "Count"}

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
	if perDevice == 0 {
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
	const only = "with cdi.spec the per-device edits are written once per device into the CDI spec, so use .ID (and .Resource, .Node) only"
	check := func(field, src string) {
		if used := allocationFieldsIn(src); len(used) > 0 {
			errs.add(field, "uses .%s, which depends on the allocation; %s", used[0], only)
			return
		}
		// What the parse tree does not show ({{ $d := . }}{{ $d.Index }}):
		// render as the spec will, on a device of the resource.
		t, err := compileTemplate(field, src)
		if err != nil || len(r.IDs) == 0 {
			return // reported already
		}
		if _, err := t.renderString(DeviceData{ContainerData: ContainerData{Resource: r.Name}, ID: r.IDs[0]}, forSpec); err != nil {
			errs.add(field, "does not render for the CDI spec: %s; %s", cleanTemplateErr(err, field), only)
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

// allocationFieldsIn names the fields of allocationFields that the
// template src refers to (.Index, or $.Index), in the order they appear.
func allocationFieldsIn(src string) []string {
	t, err := template.New("t").Funcs(Funcs).Parse(src)
	if err != nil {
		return nil // the template's own check reports it
	}
	var used []string
	note := func(name string) {
		if slices.Contains(allocationFields, name) && !slices.Contains(used, name) {
			used = append(used, name)
		}
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			note(n.Ident[0])
		case *parse.VariableNode:
			if len(n.Ident) > 1 && n.Ident[0] == "$" {
				note(n.Ident[1])
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		}
	}
	for _, t := range t.Templates() {
		if t.Tree != nil {
			walk(t.Tree.Root)
		}
	}
	return used
}

// CDIKind is the kind of the CDI spec the host writes for the resource,
// or "" when it writes none.
func (r *Resource) CDIKind() string { return r.cdiKind }

// CDIName is the CDI device name of the device id in the generated spec.
func (r *Resource) CDIName(id string) string { return r.cdiKind + "=" + id }

// DeviceEdits renders the per-device mounts and device nodes of the
// device at index i, as a generated CDI spec holds them.
func (r *Resource) DeviceEdits(i int, node string) ([]Mount, []DeviceNode, error) {
	id := r.IDs[i]
	d := DeviceData{ContainerData: ContainerData{Resource: r.Name, Node: node}, ID: id}
	var mounts []Mount
	for k, m := range r.mounts {
		if !m.perDevice {
			continue
		}
		host, err := m.host.renderString(d, forSpec)
		if err != nil {
			return nil, nil, fmt.Errorf("render mounts[%d].hostPath for %s: %w", k, id, err)
		}
		cont, err := m.container.renderString(d, forSpec)
		if err != nil {
			return nil, nil, fmt.Errorf("render mounts[%d].containerPath for %s: %w", k, id, err)
		}
		mounts = append(mounts, Mount{HostPath: host, ContainerPath: cont, ReadOnly: m.readOnly})
	}
	var nodes []DeviceNode
	for k, dn := range r.devices {
		if !dn.perDevice {
			continue
		}
		host, err := dn.host.renderString(d, forSpec)
		if err != nil {
			return nil, nil, fmt.Errorf("render devices[%d].hostPath for %s: %w", k, id, err)
		}
		cont, err := dn.container.renderString(d, forSpec)
		if err != nil {
			return nil, nil, fmt.Errorf("render devices[%d].containerPath for %s: %w", k, id, err)
		}
		nodes = append(nodes, DeviceNode{HostPath: host, ContainerPath: cont, Permissions: dn.permissions})
	}
	return mounts, nodes, nil
}
