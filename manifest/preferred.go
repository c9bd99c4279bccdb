package manifest

import (
	"fmt"
	"slices"
)

// Preferred chooses size devices out of available for GetPreferredAllocation:
// every mustInclude ID first, then the rest by the resource's allocation
// policy:
//
//   - first:  lowest device positions.
//   - packed: fewest NUMA nodes (nodes of mustInclude devices count as
//     already used, and are filled first), then lowest positions; a
//     request that fits one node goes to the lowest node that can hold it.
//   - spread: round-robin over NUMA nodes, each turn to the node with the
//     fewest chosen devices so far, lowest position within the node.
//
// Without topology every policy is "first". Available IDs the resource
// does not have are left out rather than refused, as the kubelet may still
// offer devices a reload removed. It returns an error when a mustInclude ID
// is unknown or not available, or when size cannot be met.
func (r *Resource) Preferred(available, mustInclude []string, size int) ([]string, error) {
	if size <= 0 {
		return nil, fmt.Errorf("allocation size %d: must be at least 1", size)
	}
	// Device positions from here on, so walking avail needs no sorting.
	avail := make([]bool, len(r.IDs))
	nAvail := 0
	var ignored []string // available IDs the resource does not have
	for _, id := range available {
		i := r.Position(id)
		if i < 0 {
			ignored = append(ignored, id)
			continue
		}
		if !avail[i] {
			avail[i] = true
			nAvail++
		}
	}
	must := make([]int, 0, len(mustInclude))
	isMust := make([]bool, len(r.IDs))
	var unknown, notAvailable []string
	for _, id := range mustInclude {
		i := r.Position(id)
		if i < 0 {
			unknown = append(unknown, id)
			continue
		}
		if !avail[i] {
			notAvailable = append(notAvailable, id)
			continue
		}
		if !isMust[i] {
			isMust[i] = true
			must = append(must, i)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownIDsError{Resource: r.Name, IDs: unknown}
	}
	if len(notAvailable) > 0 {
		return nil, fmt.Errorf("must-include devices [%s] are not among the available devices", nameIDs(notAvailable, false, " "))
	}
	if len(must) > size {
		return nil, fmt.Errorf("allocation size %d is smaller than the %d must-include devices", size, len(must))
	}
	if size > nAvail {
		if len(ignored) > 0 {
			return nil, fmt.Errorf("allocation size %d is more than the %d available devices (left out, not devices of %s: [%s])",
				size, nAvail, r.Name, nameIDs(ignored, false, " "))
		}
		return nil, fmt.Errorf("allocation size %d is more than the %d available devices", size, nAvail)
	}
	need := size - len(must)
	rest := make([]int, 0, nAvail-len(must)) // in device order
	for i, ok := range avail {
		if ok && !isMust[i] {
			rest = append(rest, i)
		}
	}

	var picked []int
	switch {
	case r.numa == nil || r.Spec.AllocationPolicy == PolicyFirst:
		picked = rest[:need]
	case r.Spec.AllocationPolicy == PolicySpread:
		picked = r.pickSpread(must, rest, need)
	default:
		picked = r.pickPacked(must, rest, need)
	}

	out := make([]string, 0, size)
	for _, i := range must {
		out = append(out, r.IDs[i])
	}
	for _, i := range picked {
		out = append(out, r.IDs[i])
	}
	return out, nil
}

// byNode groups device positions (in device order) by NUMA node: the nodes
// that have any, ascending, and the positions on each, indexed by node.
func (r *Resource) byNode(positions []int) (nodes []int, groups [][]int) {
	groups = make([][]int, slices.Max(r.numa)+1)
	for _, i := range positions {
		groups[r.numa[i]] = append(groups[r.numa[i]], i)
	}
	for n, g := range groups {
		if len(g) > 0 {
			nodes = append(nodes, n)
		}
	}
	return nodes, groups
}

func (r *Resource) pickPacked(must, rest []int, need int) []int {
	nodes, groups := r.byNode(rest)
	used := make([]bool, len(groups))
	for _, i := range must {
		used[r.numa[i]] = true
	}
	chosen := make([]bool, len(groups))
	// Devices on nodes the must-include devices already use cost no extra node.
	free := 0
	for _, n := range nodes {
		if used[n] {
			chosen[n] = true
			free += len(groups[n])
		}
	}
	if free < need {
		// Add the fewest nodes: if one node suffices, the lowest that does;
		// otherwise the largest ones (lower node first on ties).
		remaining := need - free
		single := -1
		for _, n := range nodes {
			if !chosen[n] && len(groups[n]) >= remaining {
				single = n
				break
			}
		}
		if single >= 0 {
			chosen[single] = true
		} else {
			cands := slices.DeleteFunc(slices.Clone(nodes), func(n int) bool { return chosen[n] })
			slices.SortStableFunc(cands, func(a, b int) int { return len(groups[b]) - len(groups[a]) })
			for _, n := range cands {
				if remaining <= 0 {
					break
				}
				chosen[n] = true
				remaining -= len(groups[n])
			}
		}
	}
	// Fill the nodes already in use before the added ones, so a node the
	// must-include devices do not touch keeps its devices together.
	picked := make([]int, 0, need)
	for _, onUsed := range []bool{true, false} {
		for _, i := range rest {
			if len(picked) == need {
				break
			}
			if n := r.numa[i]; chosen[n] && used[n] == onUsed {
				picked = append(picked, i)
			}
		}
	}
	slices.Sort(picked)
	return picked
}

func (r *Resource) pickSpread(must, rest []int, need int) []int {
	nodes, groups := r.byNode(rest)
	count := make([]int, len(groups)) // devices chosen per node, must-include counted
	for _, i := range must {
		count[r.numa[i]]++
	}
	next := make([]int, len(groups)) // next unused index into groups[n]
	picked := make([]int, 0, need)
	for len(picked) < need {
		best := -1
		for _, n := range nodes {
			if next[n] >= len(groups[n]) {
				continue
			}
			if best < 0 || count[n] < count[best] {
				best = n
			}
		}
		if best < 0 {
			break // cannot happen: need <= len(rest)
		}
		picked = append(picked, groups[best][next[best]])
		next[best]++
		count[best]++
	}
	slices.Sort(picked)
	return picked
}
