package host

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"simple-device-plugin/manifest"
)

// DefaultNUMANodesFile lists the NUMA nodes the kernel has online, the only
// ones the kubelet's topology manager knows.
const DefaultNUMANodesFile = "/sys/devices/system/node/online"

// readNUMANodes reads a kernel node list such as "0", "0-1" or "0,2-3".
func readNUMANodes(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseNodeList(strings.TrimSpace(string(data)))
}

func parseNodeList(s string) ([]int, error) {
	var nodes []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("node list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return nil, fmt.Errorf("node list %q: bad range %q", s, part)
			}
		}
		for n := first; n <= last; n++ {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// warnUnknownNUMANodes says when a resource's topology puts devices on NUMA
// nodes this machine does not have: the kubelet leaves them out of its
// topology hints, so aligned pods never get those devices.
func (h *Host) warnUnknownNUMANodes(r *manifest.Resource) {
	if h.machineNUMA == nil {
		return
	}
	var missing []int
	for i := range r.IDs {
		n, ok := r.NUMANode(i)
		if !ok {
			return
		}
		if !slices.Contains(h.machineNUMA, n) && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	slices.Sort(missing)
	h.log.Warn("topology places devices on NUMA nodes this machine does not have; the kubelet's topology manager leaves them out of its hints, so pods aligned by single-numa-node or restricted never get them",
		"resource", r.Name, "numa_nodes_missing", fmt.Sprint(missing), "machine_numa_nodes", fmt.Sprint(h.machineNUMA))
}
