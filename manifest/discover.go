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
	"strings"

	"simple-device-plugin/discover"
)

// Found is one device discovery found on the host: a match of the
// patterns, or a group of matches.
type Found struct {
	Path     string      // the match as the host sees it; a group's first member
	Key      string      // the group key; "" without groups
	Nodes    []FoundNode // the device nodes it carries
	Identity string      // stable across replugs (USB serial, by-id link, major:minor)
	Serial   string      // the USB serial, or ""
}

// FoundNode is one device node of a found device.
type FoundNode struct {
	Path     string // as matched, where the container sees it by default
	HostPath string // symlinks resolved: what the runtime opens
}

// Problem is a found device left out, for a log line and a metric.
type Problem struct {
	Path   string
	Reason string
}

// maxShare bounds discover.share, as its struct tag does.
const maxShare = 1000

// compileDiscover checks discover: beyond its struct tags. The devices
// are not known until the host looks, so the resource has none here.
func (r *Resource) compileDiscover(p string, errs *ErrorList) {
	d := r.Spec.Discover
	p += ".discover"
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
			if _, err := regexp.Compile(d.Groups.Key); err != nil {
				errs.add(p+".groups.key", "is not a regular expression: %v", err)
			}
		}
	default:
		patterns("paths", d.Paths)
	}
	for _, field := range []string{"topology", "healthCheck"} {
		if (field == "topology" && r.Spec.Topology != nil) || (field == "healthCheck" && r.Spec.HealthCheck != nil) {
			why := "a discovered device's NUMA node is not read from the host yet"
			if field == "healthCheck" {
				why = "a discovered device is there while its node is, and leaves the list when it goes"
			}
			errs.add(p[:strings.LastIndex(p, ".")]+"."+field, "does not apply with discover: %s; remove %s", why, field)
		}
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
		f := p[:strings.LastIndex(p, ".")] + ".idTemplate"
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
		d.path, d.base = r.found[i].Path, path.Base(r.found[i].Path)
	}
}

// WithFound is the resource serving the devices discovery found: one per
// match (share of them when share > 1), with IDs from idTemplate (default
// the base name, or the group key) and "-<k>" added for shares. At most
// max devices; a device whose ID is invalid or taken is left out and said
// in the problems, never merged with another.
func (r *Resource) WithFound(found []Found, max int) (*Resource, []Problem) {
	c := *r
	c.IDs, c.found, c.foundNodes = nil, nil, nil
	var problems []Problem
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
				problems = append(problems, Problem{Path: f.Path, Reason: "idTemplate does not render: " + cleanTemplateErr(err, "idTemplate")})
				continue
			}
			id = b.String()
		}
		nodes, err := r.foundDeviceNodes(f, id)
		if err != nil {
			problems = append(problems, Problem{Path: f.Path, Reason: err.Error()})
			continue
		}
		for k := range share {
			sid := id
			if share > 1 {
				sid += "-" + strconv.Itoa(k)
			}
			switch why := checkDeviceID(sid); {
			case why != "":
				problems = append(problems, Problem{Path: f.Path, Reason: "its device ID is invalid: " + why})
			case seen[sid]:
				problems = append(problems, Problem{Path: f.Path, Reason: fmt.Sprintf("its device ID %q is another match's too; set idTemplate to tell them apart (with .Path)", sid)})
			case len(c.IDs) >= max:
				problems = append(problems, Problem{Path: f.Path, Reason: fmt.Sprintf("more than %d devices: the rest are left out", max)})
			case r.cdiKind != "" && !isCDIDeviceName(sid):
				problems = append(problems, Problem{Path: f.Path, Reason: fmt.Sprintf("its device ID %q is not a CDI device name (use letters, digits, '_', '.', ':' and '-')", sid)})
			default:
				seen[sid] = true
				c.IDs = append(c.IDs, sid)
				c.found = append(c.found, f)
				c.foundNodes = append(c.foundNodes, nodes)
				continue
			}
			break
		}
	}
	c.byID = make([]int32, len(c.IDs))
	for i := range c.byID {
		c.byID[i] = int32(i)
	}
	slices.SortFunc(c.byID, func(a, b int32) int { return strings.Compare(c.IDs[a], c.IDs[b]) })
	return &c, problems
}

// foundDeviceNodes renders the device nodes a found device hands over.
func (r *Resource) foundDeviceNodes(f Found, id string) ([]DeviceNode, error) {
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

// FoundAt is the found device behind the device at index i, and whether
// the resource discovers its devices.
func (r *Resource) FoundAt(i int) (Found, bool) {
	if r.found == nil {
		return Found{}, false
	}
	return r.found[i], true
}

// SameFound reports whether o serves the same discovered devices as r:
// the same IDs on the same nodes.
func (r *Resource) SameFound(o *Resource) bool {
	return slices.Equal(r.IDs, o.IDs) && slices.EqualFunc(r.foundNodes, o.foundNodes, slices.Equal)
}
