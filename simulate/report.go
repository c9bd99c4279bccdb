package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Report is what a simulation found: what registered, and what each
// container would get.
type Report struct {
	Manifest        string            `json:"manifestHash"`
	Node            string            `json:"node,omitempty"`
	DevicePluginDir string            `json:"devicePluginDir"`
	Resources       []ResourceReport  `json:"resources"`
	Skipped         []string          `json:"skippedOnThisNode,omitempty"`
	Containers      []ContainerReport `json:"containers"`
}

// ResourceReport is one registered plugin.
type ResourceReport struct {
	Name                string         `json:"name"`
	Socket              string         `json:"socket"`
	PreferredAllocation bool           `json:"getPreferredAllocation"`
	PreStartRequired    bool           `json:"preStartRequired"`
	Devices             []DeviceReport `json:"devices"`
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
	Devices     map[string][]string `json:"devices"`
	Env         map[string]string   `json:"env,omitempty"`
	Annotations map[string]string   `json:"annotations,omitempty"`
	Mounts      []MountReport       `json:"mounts,omitempty"`
	DeviceNodes []DeviceNodeReport  `json:"deviceNodes,omitempty"`
	CDIDevices  []string            `json:"cdiDevices,omitempty"`
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

func (r *Report) writeText(out io.Writer) error {
	var b strings.Builder
	node := r.Node
	if node == "" {
		node = "(none: set --node-name)"
	}
	fmt.Fprintf(&b, "Manifest %s on node %s: %d resources registered with the simulated kubelet\n\n", r.Manifest, node, len(r.Resources))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tDEVICES\tHEALTHY\tSOCKET")
	for _, res := range r.Resources {
		healthy := 0
		for _, d := range res.Devices {
			if d.Health == "Healthy" {
				healthy++
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", res.Name, len(res.Devices), healthy, res.Socket)
	}
	tw.Flush()
	for _, res := range r.Resources {
		fmt.Fprintf(&b, "  %s: %s\n", res.Name, describeDevices(res.Devices))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "  not served on this node (nodes: does not match): %s\n", strings.Join(r.Skipped, ", "))
	}
	for _, c := range r.Containers {
		fmt.Fprintf(&b, "\n%s\n", c.Name)
		section := func(title string) { fmt.Fprintf(&b, "  %s\n", title) }
		section("devices:")
		for _, res := range sortedKeys(c.Devices) {
			fmt.Fprintf(&b, "    %-28s %s\n", res, strings.Join(c.Devices[res], ", "))
		}
		if len(c.Env) > 0 {
			section("env:")
			tw := tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
			for _, k := range sortedKeys(c.Env) {
				fmt.Fprintf(tw, "    %s\t= %s\n", k, c.Env[k])
			}
			tw.Flush()
		}
		if len(c.Annotations) > 0 {
			section("annotations:")
			tw := tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
			for _, k := range sortedKeys(c.Annotations) {
				fmt.Fprintf(tw, "    %s\t= %s\n", k, c.Annotations[k])
			}
			tw.Flush()
		}
		if len(c.Mounts) > 0 {
			section("mounts:")
			tw := tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
			for _, m := range c.Mounts {
				ro := ""
				if m.ReadOnly {
					ro = " (read-only)"
				}
				fmt.Fprintf(tw, "    %s\t<- %s%s\n", m.ContainerPath, m.HostPath, ro)
			}
			tw.Flush()
		}
		if len(c.DeviceNodes) > 0 {
			section("device nodes:")
			tw := tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
			for _, d := range c.DeviceNodes {
				fmt.Fprintf(tw, "    %s\t<- %s\t(%s)\n", d.ContainerPath, d.HostPath, d.Permissions)
			}
			tw.Flush()
		}
		if len(c.CDIDevices) > 0 {
			section("CDI devices:")
			for _, n := range c.CDIDevices {
				fmt.Fprintf(&b, "    %s\n", n)
			}
		}
		for _, w := range c.Warnings {
			fmt.Fprintf(&b, "  warning: %s\n", w)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// describeDevices summarises a device list: IDs, unhealthy ones, NUMA nodes.
func describeDevices(devs []DeviceReport) string {
	ids := make([]string, 0, len(devs))
	var unhealthy []string
	numa := map[int]int{}
	for _, d := range devs {
		ids = append(ids, d.ID)
		if d.Health != "Healthy" {
			unhealthy = append(unhealthy, d.ID)
		}
		if d.NUMANode != nil {
			numa[*d.NUMANode]++
		}
	}
	s := abbreviate(ids)
	if len(unhealthy) > 0 {
		s += "; unhealthy: " + abbreviate(unhealthy)
	}
	if len(numa) > 0 {
		nodes := make([]int, 0, len(numa))
		for n := range numa {
			nodes = append(nodes, n)
		}
		sort.Ints(nodes)
		parts := make([]string, len(nodes))
		for i, n := range nodes {
			parts[i] = fmt.Sprintf("node %d: %d", n, numa[n])
		}
		s += "; NUMA " + strings.Join(parts, ", ")
	}
	return s
}

func abbreviate(ids []string) string {
	const show = 6
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s, … %s", strings.Join(ids[:show-1], ", "), ids[len(ids)-1])
}
