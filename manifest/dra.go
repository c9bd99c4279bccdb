package manifest

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The APIs a resource can be served through.
const (
	APIDevicePlugin = "devicePlugin"
	APIDRA          = "dra"
)

// DRASpec is how a resource with api: dra is published: its driver, and the
// attributes and capacity of each device.
type DRASpec struct {
	Driver     string            `json:"driver,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"` // name -> template, rendered per device
	Capacity   map[string]string `json:"capacity,omitempty"`   // name -> quantity
}

// Limits the API server puts on DRA objects, restated so a manifest that
// validates publishes.
const (
	maxDriverName           = 63
	maxAttributeName        = 32
	maxAttributeValue       = 64
	maxAttributesPerDevice  = 32 // attributes and capacities together
	maxDRADevices           = 4096
	draAttributeNamePattern = `^[A-Za-z_][A-Za-z0-9_]*$`
)

// The attributes the host publishes for every device of an api: dra
// resource, which a manifest may not declare.
const (
	AttributeIndex = "index"    // the device's position in the resource
	AttributeID    = "id"       // its ID
	AttributeNUMA  = "numaNode" // its NUMA node, with topology
)

var (
	cIdentifierRe = regexp.MustCompile(draAttributeNamePattern)
	// semverRe is Semantic Versioning 2.0.0, as the API server parses a version attribute.
	semverRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

// AttributeKind is the type a rendered attribute value is published as.
type AttributeKind string

// Attribute kinds, in the order the typing rule tries them.
const (
	AttributeBool    AttributeKind = "bool"
	AttributeInt     AttributeKind = "int"
	AttributeVersion AttributeKind = "version"
	AttributeString  AttributeKind = "string"
)

// Attribute is one rendered, typed device attribute.
type Attribute struct {
	Name  string
	Kind  AttributeKind
	Value string // as rendered; for int and bool also in Int and Bool
	Int   int64
	Bool  bool
}

// TypeAttribute applies the typing rule to a rendered value: "true" and
// "false" are bools, a base-10 integer is an int, a semantic version
// (1.4.2, 2.0.0-rc.1) is a version, anything else a string.
func TypeAttribute(name, v string) Attribute {
	a := Attribute{Name: name, Value: v, Kind: AttributeString}
	switch {
	case v == "true" || v == "false":
		a.Kind, a.Bool = AttributeBool, v == "true"
	case isInt(v):
		a.Int, _ = strconv.ParseInt(v, 10, 64)
		a.Kind = AttributeInt
	case semverRe.MatchString(v):
		a.Kind = AttributeVersion
	}
	return a
}

func isInt(v string) bool {
	_, err := strconv.ParseInt(v, 10, 64)
	return err == nil
}

// AttributeData is what a dra.attributes template sees: one device.
type AttributeData struct {
	Resource string
	Node     string
	ID       string // the device's ID
	Index    int    // its position in the resource's device list
	NUMANode int    // its NUMA node from topology; -1 without topology
}

// Capacity is one published capacity of every device.
type Capacity struct {
	Name  string
	Value resource.Quantity
}

// API is the API the resource is served through: devicePlugin or dra.
func (r *Resource) API() string {
	if r.Spec.API == "" {
		return APIDevicePlugin
	}
	return r.Spec.API
}

// ByAPI parts resources served as device plugins from api: dra ones.
func ByAPI(resources []*Resource) (devicePlugin, dra []*Resource) {
	for _, r := range resources {
		if r.DRA() {
			dra = append(dra, r)
		} else {
			devicePlugin = append(devicePlugin, r)
		}
	}
	return devicePlugin, dra
}

// DRA reports whether the resource is served as a DRA driver.
func (r *Resource) DRA() bool { return r.API() == APIDRA }

// Driver is the DRA driver name of an api: dra resource.
func (r *Resource) Driver() string { return r.driver }

// DefaultDriver is the driver name a resource gets without dra.driver:
// "<name part>.<domain>" (fpga.example.com for example.com/fpga).
func DefaultDriver(resourceName string) string {
	domain, name, ok := strings.Cut(resourceName, "/")
	if !ok {
		return resourceName
	}
	return strings.ToLower(name) + "." + domain
}

// Capacities are the capacities every device publishes, sorted by name.
func (r *Resource) Capacities() []Capacity { return r.capacity }

// Attributes renders the manifest's attributes of the device at index i
// for node (not the reserved ones), sorted by name.
func (r *Resource) Attributes(i int, node string) ([]Attribute, error) {
	out := make([]Attribute, 0, len(r.attributes))
	d := r.attributeData(i, node)
	var b bytes.Buffer
	for _, a := range r.attributes {
		b.Reset()
		if err := a.t.t.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("%s: attribute %s of %s: %w", r.Name, a.key, r.IDs[i], err)
		}
		out = append(out, TypeAttribute(a.key, b.String()))
	}
	return out, nil
}

func (r *Resource) attributeData(i int, node string) AttributeData {
	numa := -1
	if n, ok := r.NUMANode(i); ok {
		numa = n
	}
	return AttributeData{Resource: r.Name, Node: node, ID: r.IDs[i], Index: i, NUMANode: numa}
}

// Warnings are what a resource declares that its API ignores: not
// errors, as a reload may be switching APIs, but worth saying.
func (m *Manifest) Warnings() []FieldError {
	var out []FieldError
	for _, r := range m.Resources {
		p := fmt.Sprintf("resources[%d]", r.specIndex)
		if !r.DRA() {
			continue
		}
		if len(r.Spec.Annotations) > 0 {
			out = append(out, FieldError{Path: p + ".annotations", Message: "is ignored under api: dra: DRA hands a container only CDI edits (env, mounts, device nodes), never pod annotations"})
		}
		if r.Spec.PreStartRequired {
			out = append(out, FieldError{Path: p + ".preStartRequired", Message: "is ignored under api: dra: devices are prepared before the pod's containers start anyway"})
		}
	}
	return out
}

// compileDRA checks api and dra, and compiles the attribute templates
// (rendered on every device here, so publishing never fails on one).
func (r *Resource) compileDRA(p string, errs *ErrorList) {
	spec := r.Spec
	if !r.DRA() {
		if spec.DRA != nil {
			errs.add(p+".dra", "is set but api is %s; set api: dra to serve the resource through DRA, or remove dra", r.API())
		}
		return
	}
	switch {
	case spec.Discover != nil:
		errs.add(p+".api", "dra is not available with discover: yet; serve discovered devices with api: devicePlugin (the default)")
	case spec.CDI != nil && spec.CDI.Spec:
		errs.add(p+".cdi.spec", "is not needed under api: dra: every claim gets its own CDI spec; remove cdi")
	case len(r.IDs) > maxDRADevices:
		field := p + ".count"
		if spec.IDs != nil {
			field = p + ".ids"
		}
		errs.add(field, "%d devices are more than one DRA resource publishes here (at most %d); use fewer devices or split the resource", len(r.IDs), maxDRADevices)
		return
	}
	var d DRASpec
	if spec.DRA != nil {
		d = *spec.DRA
	}

	r.driver = d.Driver
	if d.Driver == "" {
		r.driver = DefaultDriver(r.Name)
		if why := checkDriver(r.driver); why != "" && r.Name != "" {
			errs.add(p+".dra.driver", "is not set, and the default driver name derived from the resource name %s; set dra.driver to a DNS subdomain of at most %d characters, such as fpga.example.com", why, maxDriverName)
		}
	} else if why := checkDriver(d.Driver); why != "" {
		errs.add(p+".dra.driver", "%s; a driver name is a DNS subdomain of at most %d characters, such as fpga.example.com", why, maxDriverName)
	}

	// Device names in a ResourceSlice are DNS labels.
	for i, id := range r.IDs {
		if dns1123LabelRe.MatchString(id) {
			continue
		}
		field := p + ".idTemplate"
		switch {
		case spec.IDs != nil:
			field = fmt.Sprintf("%s.ids[%d]", p, i)
		case spec.IDTemplate == "":
			field = p + ".name"
		}
		errs.add(field, "device ID %q is not a DNS label, which DRA requires of device names: lower-case letters, digits and '-', starting and ending with a letter or digit", id)
		if spec.IDs == nil {
			break // a template or the name: once is enough
		}
	}

	reserved := []string{AttributeIndex, AttributeID}
	if spec.Topology != nil {
		reserved = append(reserved, AttributeNUMA)
	}
	if n := len(d.Attributes) + len(d.Capacity) + len(reserved); n > maxAttributesPerDevice {
		errs.add(p+".dra", "declares %d attributes and capacities, and %d more are published by the host (%s): a device may have at most %d; remove %d", len(d.Attributes)+len(d.Capacity), len(reserved), strings.Join(reserved, ", "), maxAttributesPerDevice, n-maxAttributesPerDevice)
	}
	for _, name := range slices.Sorted(maps.Keys(d.Attributes)) {
		f := fmt.Sprintf("%s.dra.attributes[%s]", p, name)
		if why := checkAttributeName(name, reserved); why != "" {
			errs.add(f, "%s", why)
			continue
		}
		t, err := compileTemplate(f, d.Attributes[name])
		if err != nil {
			errs.add(f, "%s", err)
			continue
		}
		r.attributes = append(r.attributes, keyedTmpl{key: name, t: t})
		if !r.checkAttribute(f, name, t, errs) {
			r.attributes = r.attributes[:len(r.attributes)-1]
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Capacity)) {
		f := fmt.Sprintf("%s.dra.capacity[%s]", p, name)
		if why := checkAttributeName(name, reserved); why != "" {
			errs.add(f, "%s", why)
			continue
		}
		if _, dup := d.Attributes[name]; dup {
			errs.add(f, "is also an attribute; a device's attribute and capacity names must differ")
			continue
		}
		q, err := resource.ParseQuantity(d.Capacity[name])
		if err != nil {
			errs.add(f, "%q is not a quantity; write it like 16Gi, 500m or 4", d.Capacity[name])
			continue
		}
		r.capacity = append(r.capacity, Capacity{Name: name, Value: q})
	}
}

// checkAttribute renders an attribute on every device, reporting the first
// device whose value the API server would refuse.
func (r *Resource) checkAttribute(f, name string, t *tmpl, errs *ErrorList) bool {
	ids := r.IDs
	if len(ids) == 0 {
		ids = []string{"sample-0"}
	}
	var b bytes.Buffer
	for i, id := range ids {
		d := AttributeData{Resource: r.Name, Node: "sample-node", ID: id, Index: i, NUMANode: -1}
		if r.numa != nil {
			d.NUMANode = r.numa[i]
		}
		b.Reset()
		if err := t.t.Execute(&b, d); err != nil {
			errs.add(f, "does not render: %s (fields are .ID, .Index, .NUMANode, .Resource, .Node)", cleanTemplateErr(err, f))
			return false
		}
		if a := TypeAttribute(name, b.String()); (a.Kind == AttributeString || a.Kind == AttributeVersion) && len(a.Value) > maxAttributeValue {
			where := ""
			if !t.literal {
				where = fmt.Sprintf("for device %q, ", id)
			}
			errs.add(f, "%srenders %d characters; a %s attribute may have at most %d", where, len(a.Value), a.Kind, maxAttributeValue)
			return false
		}
	}
	return true
}

func checkDriver(name string) string {
	if why := checkDNSSubdomain(name); why != "" {
		return why
	}
	if len(name) > maxDriverName {
		return fmt.Sprintf("%q is %d characters; at most %d are allowed", name, len(name), maxDriverName)
	}
	return ""
}

func checkAttributeName(name string, reserved []string) string {
	switch {
	case slices.Contains(reserved, name):
		return fmt.Sprintf("%q is published by the host itself (reserved: %s); choose another name", name, strings.Join(reserved, ", "))
	case len(name) > maxAttributeName:
		return fmt.Sprintf("%q is %d characters; at most %d are allowed", name, len(name), maxAttributeName)
	case !cIdentifierRe.MatchString(name):
		return fmt.Sprintf("%q is not a C identifier (letters, digits and '_', not starting with a digit), as DRA requires of attribute names", name)
	}
	return ""
}
