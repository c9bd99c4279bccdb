package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Report is what a simulation found: what registered, and what each
// container would get. Its JSON (and YAML) form is for scripts; the text
// form is for people.
type Report struct {
	Manifest        string           `json:"manifestHash"`
	Node            string           `json:"node,omitempty"`
	DevicePluginDir string           `json:"devicePluginDir"`
	Resources       []ResourceReport `json:"resources"`
	// DRA are the api: dra resources: nothing registers with the simulated
	// kubelet; these are the objects their drivers would publish.
	DRA     []DRAReport       `json:"dra,omitempty"`
	Skipped []SkippedResource `json:"skippedOnThisNode,omitempty"`
	// Request is what each container asked for.
	Request map[string]int `json:"request"`
	// DefaultRequest is set when no request was given: one device of every
	// resource, except those in NotRequested, which have no healthy device.
	DefaultRequest bool              `json:"defaultRequest,omitempty"`
	NotRequested   []string          `json:"notRequested,omitempty"`
	Containers     []ContainerReport `json:"containers"`
}

// ResourceReport is one registered plugin.
type ResourceReport struct {
	Name                string         `json:"name"`
	Socket              string         `json:"socket"`
	PreferredAllocation bool           `json:"getPreferredAllocation"`
	PreStartRequired    bool           `json:"preStartRequired"`
	Devices             []DeviceReport `json:"devices"`
	// CDIKind is the kind of the CDI spec the host generates, if any.
	CDIKind string `json:"cdiKind,omitempty"`
	// UnresolvedCDI are CDI devices no spec on this machine defines; the
	// devices that need them are Unhealthy.
	UnresolvedCDI []string `json:"unresolvedCDIDevices,omitempty"`
}

// SkippedResource is a resource whose nodes: globs do not match the node.
type SkippedResource struct {
	Name  string   `json:"name"`
	Nodes []string `json:"nodes"`
}

// DeviceReport is one device as ListAndWatch advertised it.
type DeviceReport struct {
	ID       string `json:"id"`
	Health   string `json:"health"`
	NUMANode *int   `json:"numaNode,omitempty"`
}

// ContainerReport is what one container gets, merged across resources.
type ContainerReport struct {
	Name        string              `json:"name"`
	Devices     map[string][]string `json:"devices"` // by resource, in manifest order
	Env         map[string]string   `json:"env,omitempty"`
	Annotations map[string]string   `json:"annotations,omitempty"`
	Mounts      []MountReport       `json:"mounts,omitempty"`
	DeviceNodes []DeviceNodeReport  `json:"deviceNodes,omitempty"`
	CDIDevices  []string            `json:"cdiDevices,omitempty"`
	Claims      []ClaimReport       `json:"claims,omitempty"` // of api: dra resources
	Warnings    []string            `json:"warnings,omitempty"`
}

// MountReport is one mount and the resource it came from.
type MountReport struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	ReadOnly      bool   `json:"readOnly,omitempty"`
	Resource      string `json:"resource"`
}

// DeviceNodeReport is one device node and the resource it came from.
type DeviceNodeReport struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	Permissions   string `json:"permissions"`
	Resource      string `json:"resource"`
}

// Write prints the report as text (for people), yaml or json.
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "yaml":
		out, err := yaml.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		_, err = w.Write(out)
		return err
	case "text", "":
		return r.writeText(w)
	}
	return fmt.Errorf("unknown output format %q: use text, yaml or json", format)
}

// Warnings lists every container's warnings, each prefixed by its container.
func (r *Report) Warnings() []string {
	var out []string
	for _, c := range r.Containers {
		for _, w := range c.Warnings {
			out = append(out, c.Name+": "+w)
		}
	}
	return out
}

func (r *Report) writeText(out io.Writer) error {
	var b strings.Builder
	node := fmt.Sprintf("node %q", r.Node)
	if r.Node == "" {
		node = "no node name (set --node-name)"
	}
	fmt.Fprintf(&b, "Manifest %s, %s.\n", r.Manifest, node)
	fmt.Fprintf(&b, "%s registered with the simulated kubelet (sockets in %s, removed on exit):\n\n",
		plural(len(r.Resources), "resource"), r.DevicePluginDir)

	if len(r.Resources) > 0 {
		tw := newTable(&b)
		fmt.Fprintln(tw, "  RESOURCE\tSOCKET\tDEVICES\tHEALTHY\tIDS")
		for _, res := range r.Resources {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\n", res.Name, filepath.Base(res.Socket), len(res.Devices), countHealthy(res.Devices), describeDevices(res.Devices))
		}
		tw.Flush()
	}
	for _, res := range r.Resources {
		if res.CDIKind != "" {
			fmt.Fprintf(&b, "\n%s: CDI spec generated, kind %s (its devices reach containers as %s=<ID>).\n", res.Name, res.CDIKind, res.CDIKind)
		}
		if len(res.UnresolvedCDI) > 0 {
			fmt.Fprintf(&b, "\n%s: no CDI spec on this machine defines %s: those devices are Unhealthy, as they would be on a node without the spec.\n", res.Name, strings.Join(res.UnresolvedCDI, ", "))
		}
	}
	if len(r.DRA) > 0 {
		fmt.Fprintf(&b, "\n%s served through DRA (api: dra), as the driver would publish them (-o yaml shows the objects):\n\n", plural(len(r.DRA), "resource"))
		tw := newTable(&b)
		fmt.Fprintln(tw, "  RESOURCE\tDRIVER\tDEVICECLASS\tSLICES\tDEVICES\tHEALTHY\tIDS")
		for _, res := range r.DRA {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%s\n", res.Name, res.Driver, res.DeviceClass.Name, len(res.ResourceSlices), len(res.Devices), countHealthy(res.Devices), describeDevices(res.Devices))
		}
		tw.Flush()
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "\nNot served on this node (no nodes: glob matches %q):\n", r.Node)
		tw := newTable(&b)
		for _, s := range r.Skipped {
			fmt.Fprintf(tw, "  %s\tnodes: %s\n", s.Name, strings.Join(s.Nodes, ", "))
		}
		tw.Flush()
	}

	b.WriteString("\n")
	switch {
	case len(r.Request) == 0 && len(r.Resources) == 0 && len(r.DRA) == 0:
		b.WriteString("Nothing to allocate: no resource is served on this node.\n")
	case len(r.Request) == 0:
		b.WriteString("Nothing to allocate: no resource has a healthy device.\n")
	case r.DefaultRequest:
		b.WriteString("Each container asks for one device of every resource (no --request).\n")
	default:
		fmt.Fprintf(&b, "Each container asks for %s.\n", formatRequest(r.Request))
	}
	if len(r.NotRequested) > 0 {
		fmt.Fprintf(&b, "Not asked for, since no device is healthy: %s.\n", strings.Join(r.NotRequested, ", "))
	}

	for _, c := range r.Containers {
		fmt.Fprintf(&b, "\n%s gets:\n", c.Name)
		section := func(title string) { fmt.Fprintf(&b, "  %s\n", title) }
		section("devices:")
		tw := newTable(&b)
		for _, res := range slices.Sorted(maps.Keys(c.Devices)) {
			fmt.Fprintf(tw, "    %s\t%s\n", res, strings.Join(c.Devices[res], ", "))
		}
		tw.Flush()
		if len(c.Env) > 0 {
			section("env:")
			for _, k := range slices.Sorted(maps.Keys(c.Env)) {
				fmt.Fprintf(&b, "    %s=%s\n", k, c.Env[k])
			}
		}
		if len(c.Annotations) > 0 {
			section("annotations:")
			for _, k := range slices.Sorted(maps.Keys(c.Annotations)) {
				fmt.Fprintf(&b, "    %s: %s\n", k, c.Annotations[k])
			}
		}
		if len(c.Mounts) > 0 {
			section("mounts (container path <- host path):")
			tw := newTable(&b)
			for _, m := range c.Mounts {
				mode := "read-write"
				if m.ReadOnly {
					mode = "read-only"
				}
				fmt.Fprintf(tw, "    %s\t<- %s\t%s\tfrom %s\n", m.ContainerPath, m.HostPath, mode, m.Resource)
			}
			tw.Flush()
		}
		if len(c.DeviceNodes) > 0 {
			section("device nodes (container path <- host path):")
			tw := newTable(&b)
			for _, d := range c.DeviceNodes {
				fmt.Fprintf(tw, "    %s\t<- %s\t%s\tfrom %s\n", d.ContainerPath, d.HostPath, d.Permissions, d.Resource)
			}
			tw.Flush()
		}
		if len(c.Claims) > 0 {
			section("claims (DRA; on a cluster the scheduler picks the devices):")
			tw := newTable(&b)
			for _, cl := range c.Claims {
				fmt.Fprintf(tw, "    %s\t%s\tprepared as %s\n", cl.Resource, strings.Join(cl.Devices, ", "), cl.CDIDevice)
			}
			tw.Flush()
		}
		if len(c.CDIDevices) > 0 {
			section("CDI devices:")
			for _, n := range c.CDIDevices {
				fmt.Fprintf(&b, "    %s\n", n)
			}
		}
		if len(c.Warnings) > 0 {
			section("warnings:")
			for _, w := range c.Warnings {
				fmt.Fprintf(&b, "    %s\n", w)
			}
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// countHealthy counts the Healthy devices.
func countHealthy(devs []DeviceReport) int {
	n := 0
	for _, d := range devs {
		if d.Health == "Healthy" {
			n++
		}
	}
	return n
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// formatRequest writes a request as --request takes it.
func formatRequest(req map[string]int) string {
	parts := make([]string, 0, len(req))
	for _, k := range slices.Sorted(maps.Keys(req)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, req[k]))
	}
	return strings.Join(parts, ",")
}

// describeDevices summarises a device list: IDs (grouped by NUMA node when
// there is a topology) and the unhealthy ones.
func describeDevices(devs []DeviceReport) string {
	var groups []string
	var unhealthy []string
	for i := 0; i < len(devs); {
		j := i
		var ids []string
		for ; j < len(devs) && sameNode(devs[i].NUMANode, devs[j].NUMANode); j++ {
			ids = append(ids, devs[j].ID)
		}
		g := abbreviate(ids)
		if devs[i].NUMANode != nil {
			g = fmt.Sprintf("NUMA %d: %s", *devs[i].NUMANode, g)
		}
		groups = append(groups, g)
		i = j
	}
	for _, d := range devs {
		if d.Health != "Healthy" {
			unhealthy = append(unhealthy, d.ID)
		}
	}
	s := strings.Join(groups, "; ")
	switch {
	case len(unhealthy) > 0 && len(unhealthy) == len(devs):
		s += "; all unhealthy"
	case len(unhealthy) > 0:
		s += "; unhealthy: " + abbreviate(unhealthy)
	}
	return s
}

func sameNode(a, b *int) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// abbreviate lists a few IDs, and how many there are when it leaves some out.
func abbreviate(ids []string) string {
	const show = 5
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s, …, %s (%d)", strings.Join(ids[:show-2], ", "), ids[len(ids)-1], len(ids))
}
