package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"simple-device-plugin/discover"
)

// foundDevice is what a device's templates and Allocate need of the match
// behind it, worked out once when it is found.
type foundDevice struct {
	path, base string
	nodes      []DeviceNode // rendered; the runtime's view
}

// compileDiscover checks discover: beyond its struct tags. The devices
// are not known until the host looks, so the resource has none here.
func (r *Resource) compileDiscover(rp string, errs *ErrorList) {
	d := r.Spec.Discover
	p := rp + ".discover"
	r.discover = discover.Spec{Paths: d.Paths}
	for _, u := range d.USB {
		r.discover.USB = append(r.discover.USB, discover.USB{Vendor: u.Vendor, Product: u.Product, Serial: u.Serial})
	}
	patterns := func(field string, list []string) {
		for i, pattern := range list {
			f := fmt.Sprintf("%s.%s[%d]", p, field, i)
			switch {
			case pattern == "":
				// "must not be empty" says it
			case !filepath.IsAbs(pattern):
				errs.add(f, "%q is not absolute; write the host path from /, such as /dev/ttyUSB*", pattern)
			case filepath.Clean(pattern) != pattern:
				errs.add(f, "%q is not clean; write %q", pattern, filepath.Clean(pattern))
			default:
				if err := discover.CheckPattern(pattern); err != nil {
					errs.add(f, "%q is not a valid glob (use *, ? and [0-9]): %v", pattern, errors.Unwrap(err))
				}
			}
		}
	}
	switch {
	case len(d.Paths) > 0 && d.Groups != nil:
		errs.add(p, "sets both paths and groups; keep one: paths for one device per match, groups to tie matches into one device")
	case len(d.Paths) == 0 && d.Groups == nil:
		errs.add(p+".paths", "is required: list the host paths to match, such as [\"/dev/ttyUSB*\"], or set groups")
	case d.Groups != nil:
		patterns("groups.paths", d.Groups.Paths)
		if d.Groups.Key != "" {
			key, err := regexp.Compile(d.Groups.Key)
			if err != nil {
				errs.add(p+".groups.key", "is not a regular expression: %v", err)
			}
			r.discover.Groups = &discover.Groups{Key: key, Paths: d.Groups.Paths}
		}
	default:
		patterns("paths", d.Paths)
	}
	if r.Spec.Topology != nil {
		errs.add(rp+".topology", "does not apply with discover: a discovered device's NUMA node is not read from the host yet; remove topology")
	}
	if r.Spec.HealthCheck != nil {
		errs.add(rp+".healthCheck", "does not apply with discover: a discovered device is there while its node is, and leaves the list when it goes; remove healthCheck")
	}
	if d.ContainerPath != "" {
		t, err := compileTemplate(p+".containerPath", d.ContainerPath)
		if err != nil {
			errs.add(p+".containerPath", "%s", err)
			return
		}
		// Rendered once per node when the device is found, so it sees
		// what a spec's templates see: nothing of an allocation or node.
		for i, id := range r.sampleIDs() {
			s, err := t.renderString(r.sampleDevice(ContainerData{Resource: r.Name}, i, id), forFoundSpec)
			if err != nil {
				errs.add(p+".containerPath", "does not render: %s (containerPath sees .Path, .Base, .ID and .Resource)", cleanTemplateErr(err, p+".containerPath"))
				return
			}
			if why := checkAbsPath(s); why != "" {
				errs.add(p+".containerPath", "%s", why)
				return
			}
		}
		r.containerPath = t
	}
	if r.Spec.IDTemplate != "" {
		f := rp + ".idTemplate"
		t, err := compileTemplate("idTemplate", r.Spec.IDTemplate)
		if err != nil {
			errs.add(f, "%s", err)
			return
		}
		if t.literal {
			errs.add(f, "has no {{ .Base }}, {{ .Path }}, {{ .Serial }} or {{ .Index }}, so every match would get the ID %q; IDs must be unique", r.Spec.IDTemplate)
			return
		}
		var b bytes.Buffer
		d := r.sampleDevice(ContainerData{Resource: r.Name}, 0, "sample-0")
		d.serial, d.identity = "A9X1", "usb:0403:6001:A9X1"
		if err := t.renderFor(&b, &d, forFoundID); err != nil {
			errs.add(f, "does not render: %s (idTemplate sees .Path, .Base, .Serial, .Identity, .Index and .Resource)", cleanTemplateErr(err, "idTemplate"))
			return
		}
		if why := checkDeviceID(b.String()); why != "" {
			errs.add(f, "renders an invalid ID for a match: %s", why)
			return
		}
		r.idTemplate = t
	}
}

// Discovers reports whether the resource's devices come from the host.
func (r *Resource) Discovers() bool { return r.Spec.Discover != nil }

// DiscoverSpec is what to look for on the host, built at load.
func (r *Resource) DiscoverSpec() discover.Spec { return r.discover }

// sc is s as this resource's templates see it.
func (r *Resource) sc(s scope) scope {
	if r.Discovers() {
		return s.found()
	}
	return s
}

// setDevice puts the device at index i into d: its ID, and for a
// discovered one its host path and base name.
func (r *Resource) setDevice(d *DeviceData, i int) {
	d.ID = r.IDs[i]
	if r.found != nil {
		d.path, d.base = r.found[i].path, r.found[i].base
	}
}

// WithFound is the resource serving the devices discovery found: one per
// match (share of them when share > 1), with IDs from idTemplate (default
// the base name, or the group key) and "-<k>" added for shares. At most
// max devices; a device whose ID is invalid or taken is left out and said
// in the problems, never merged with another.
func (r *Resource) WithFound(found []discover.Device, max int) (*Resource, []discover.Problem) {
	c := *r
	c.IDs, c.found = nil, nil
	var problems []discover.Problem
	share := r.Spec.Discover.Share
	seen := map[string]bool{}
	var b bytes.Buffer
	for i, f := range found {
		base := path.Base(f.Path)
		id := base
		if f.Key != "" {
			id = f.Key
		}
		if r.idTemplate != nil {
			b.Reset()
			d := &DeviceData{ContainerData: ContainerData{Resource: r.Name}, Index: i, path: f.Path, base: base, serial: f.Serial, identity: f.Identity}
			if err := r.idTemplate.renderFor(&b, d, forFoundID); err != nil {
				problems = append(problems, discover.Problem{Path: f.Path, Reason: "idTemplate does not render: " + cleanTemplateErr(err, "idTemplate")})
				continue
			}
			id = b.String()
		}
		nodes, err := r.foundDeviceNodes(f, id)
		if err != nil {
			problems = append(problems, discover.Problem{Path: f.Path, Reason: err.Error()})
			continue
		}
		for k := range share {
			sid := id
			if share > 1 {
				sid += "-" + strconv.Itoa(k)
			}
			if why := r.refuseFoundID(sid, seen[sid], len(c.IDs), max); why != "" {
				problems = append(problems, discover.Problem{Path: f.Path, Reason: why})
				break // the match's later shares would say the same
			}
			seen[sid] = true
			c.IDs = append(c.IDs, sid)
			c.found = append(c.found, foundDevice{path: f.Path, base: base, nodes: nodes})
		}
	}
	c.byID = sortedIndex(c.IDs)
	return &c, problems
}

// refuseFoundID says why a discovered device cannot have the ID sid (taken
// by another match, or n devices already, at most max), or "".
func (r *Resource) refuseFoundID(sid string, taken bool, n, max int) string {
	switch why := checkDeviceID(sid); {
	case why != "":
		return "its device ID is invalid: " + why
	case taken:
		return fmt.Sprintf("its device ID %q is another match's too; set idTemplate to tell them apart (with .Path)", sid)
	case n >= max:
		return fmt.Sprintf("more than %d devices: the rest are left out", max)
	case r.cdiKind != "" && !isCDIDeviceName(sid):
		return fmt.Sprintf("its device ID %q is not a CDI device name (use letters, digits, '_', '.', ':' and '-')", sid)
	}
	return ""
}

// foundDeviceNodes renders the device nodes a found device hands over.
func (r *Resource) foundDeviceNodes(f discover.Device, id string) ([]DeviceNode, error) {
	nodes := make([]DeviceNode, 0, len(f.Nodes))
	for _, n := range f.Nodes {
		cp := n.Path
		if r.containerPath != nil {
			var b bytes.Buffer
			d := &DeviceData{ContainerData: ContainerData{Resource: r.Name}, ID: id, path: n.Path, base: path.Base(n.Path)}
			if err := r.containerPath.renderFor(&b, d, forFoundSpec); err != nil {
				return nil, fmt.Errorf("discover.containerPath does not render for %s: %s", n.Path, cleanTemplateErr(err, "containerPath"))
			}
			cp = b.String()
			if why := checkAbsPath(cp); why != "" {
				return nil, fmt.Errorf("discover.containerPath for %s: %s", n.Path, why)
			}
		}
		nodes = append(nodes, DeviceNode{HostPath: n.HostPath, ContainerPath: cp, Permissions: r.Spec.Discover.Permissions})
	}
	return nodes, nil
}

// SameFound reports whether o serves the same discovered devices as r:
// the same IDs on the same nodes.
func (r *Resource) SameFound(o *Resource) bool {
	return slices.Equal(r.IDs, o.IDs) && slices.EqualFunc(r.found, o.found, func(a, b foundDevice) bool { return slices.Equal(a.nodes, b.nodes) })
}
