package manifest

import (
	"fmt"
	"slices"
	"sort"
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
// Without topology every policy is "first". It returns an error (naming the
// IDs) when an ID is unknown, mustInclude is not within available, or size
// cannot be met.
func (r *Resource) Preferred(available, mustInclude []string, size int) ([]string, error) {
	if size <= 0 {
		return nil, fmt.Errorf("allocation size %d: must be at least 1", size)
	}
	avail := make(map[int]bool, len(available))
	var unknown []string
	for _, id := range available {
		i, ok := r.position[id]
		if !ok {
			unknown = append(unknown, id)
			continue
		}
		avail[i] = true
	}
	must := make([]int, 0, len(mustInclude))
	mustSeen := make(map[int]bool, len(mustInclude)) // a set: the kubelet may send 100,000 IDs
	var notAvailable []string
	for _, id := range mustInclude {
		i, ok := r.position[id]
		if !ok {
			unknown = append(unknown, id)
			continue
		}
		if !avail[i] {
			notAvailable = append(notAvailable, id)
			continue
		}
		if !mustSeen[i] {
			mustSeen[i] = true
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
	if size > len(avail) {
		return nil, fmt.Errorf("allocation size %d is more than the %d available devices", size, len(avail))
	}
	for _, i := range must {
		delete(avail, i)
	}
	rest := make([]int, 0, len(avail))
	for i := range avail {
		rest = append(rest, i)
	}
	sort.Ints(rest)
	need := size - len(must)

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

// byNode groups device positions (already sorted) by NUMA node.
func (r *Resource) byNode(positions []int) (nodes []int, groups map[int][]int) {
	groups = map[int][]int{}
	for _, i := range positions {
		n := r.numa[i]
		if _, ok := groups[n]; !ok {
			nodes = append(nodes, n)
		}
		groups[n] = append(groups[n], i)
	}
	sort.Ints(nodes)
	return nodes, groups
}

func (r *Resource) pickPacked(must, rest []int, need int) []int {
	if need == 0 {
		return nil
	}
	nodes, groups := r.byNode(rest)
	used := map[int]bool{}
	for _, i := range must {
		used[r.numa[i]] = true
	}
	chosen := map[int]bool{}
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
			sort.SliceStable(cands, func(a, b int) bool { return len(groups[cands[a]]) > len(groups[cands[b]]) })
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
	sort.Ints(picked)
	return picked
}

func (r *Resource) pickSpread(must, rest []int, need int) []int {
	nodes, groups := r.byNode(rest)
	count := map[int]int{}
	for _, i := range must {
		count[r.numa[i]]++
	}
	next := map[int]int{} // next unused index into groups[n]
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
	sort.Ints(picked)
	return picked
}
