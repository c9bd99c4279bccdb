package manifest

import (
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"simple-device-plugin/discover"
)

// Resource is one compiled resource: device IDs generated, templates parsed
// once, lookups built once, so serving it needs no parsing or I/O.
type Resource struct {
	Spec ResourceSpec // as written, after defaults
	Name string
	IDs  []string // every device ID, in manifest order

	specIndex int // position in the manifest, for error paths

	byID      []int32         // indices into IDs, sorted by ID: Position's binary search
	unhealthy map[string]bool // the manifest's static unhealthy list
	numa      []int           // NUMA node per device index; nil without topology

	healthPaths    []string // per device index; nil without healthCheck
	healthInterval time.Duration

	env         []keyedTmpl
	annotations []keyedTmpl
	mounts      []pathPairTmpl
	devices     []pathPairTmpl
	cdi         []cdiTmpl
	cdiKind     string // of the generated CDI spec; "" for none

	// discover: only. The resource as compiled has no devices; WithFound
	// gives it those discovery found, by device index.
	discover      discover.Spec // what to look for, regexp compiled
	idTemplate    *tmpl
	containerPath *tmpl
	found         []foundDevice // by device index

	// api: dra only.
	driver     string
	attributes []keyedTmpl // sorted by name
	capacity   []Capacity  // sorted by name
}

type keyedTmpl struct {
	key string
	t   *tmpl
}

// pathPairTmpl is a compiled mount or device node.
type pathPairTmpl struct {
	host, container *tmpl
	readOnly        bool   // mounts
	permissions     string // device nodes
	perDevice       bool
}

type cdiTmpl struct {
	name      *tmpl
	perDevice bool
}

// Has reports whether id is a device of this resource.
func (r *Resource) Has(id string) bool { return r.Position(id) >= 0 }

// Position is id's index in IDs, or -1. A sorted index rather than a map:
// a map costs some 50 bytes a device, most of a large manifest's memory.
func (r *Resource) Position(id string) int {
	k, found := slices.BinarySearchFunc(r.byID, id, func(i int32, id string) int { return strings.Compare(r.IDs[i], id) })
	if !found {
		return -1
	}
	return int(r.byID[k])
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
