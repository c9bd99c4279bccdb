package manifest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestPreferred(t *testing.T) {
	flat := mustResource(t, "name: example.com/flat\ncount: 6")
	twoNodes := func(policy string) *Resource {
		return mustResource(t, "name: example.com/t\ncount: 8\ntopology: {numaNodes: 2}\nallocationPolicy: "+policy)
	}
	first, packed, spread := twoNodes("first"), twoNodes("packed"), twoNodes("spread")
	// Nodes of unequal size: a on 0; b, c on 1; d, e, f on 2.
	uneven := func(policy string) *Resource {
		return mustResource(t, "name: example.com/u\nids: [a, b, c, d, e, f]\ntopology: {nodeOf: {a: 0, b: 1, c: 1, d: 2, e: 2, f: 2}}\nallocationPolicy: "+policy)
	}
	unevenPacked, unevenSpread := uneven("packed"), uneven("spread")
	all := func(r *Resource) []string { return r.IDs }
	ids := func(s string) []string { return strings.Fields(s) }

	tests := []struct {
		name      string
		r         *Resource
		available []string
		must      []string
		size      int
		want      string
	}{
		{"no topology: lowest positions", flat, all(flat), nil, 3, "flat-0 flat-1 flat-2"},
		{"no topology: available in any order", flat, ids("flat-5 flat-1 flat-3"), nil, 2, "flat-1 flat-3"},
		{"no topology: must-include first", flat, all(flat), ids("flat-4"), 2, "flat-4 flat-0"},
		{"no topology: must-include repeated", flat, all(flat), ids("flat-4 flat-4"), 2, "flat-4 flat-0"},
		{"no topology: must-include is the whole request", flat, all(flat), ids("flat-5 flat-2"), 2, "flat-5 flat-2"},
		{"no topology: every device", flat, all(flat), nil, 6, "flat-0 flat-1 flat-2 flat-3 flat-4 flat-5"},

		{"first: ignores nodes", first, ids("t-3 t-4 t-5"), nil, 2, "t-3 t-4"},
		{"first: lowest positions", first, all(first), nil, 2, "t-0 t-1"},

		{"packed: one node when it fits", packed, ids("t-3 t-4 t-5"), nil, 2, "t-4 t-5"},
		{"packed: lowest node that fits", packed, all(packed), nil, 4, "t-0 t-1 t-2 t-3"},
		{"packed: two nodes when one cannot hold it", packed, all(packed), nil, 5, "t-0 t-1 t-2 t-3 t-4"},
		{"packed: skips the fragmented node", packed, ids("t-0 t-4 t-5 t-6"), nil, 3, "t-4 t-5 t-6"},
		{"packed: fills the must-include node", packed, ids("t-0 t-1 t-4 t-5"), ids("t-0"), 2, "t-0 t-1"},
		{"packed: fills the must-include node before another", packed, ids("t-0 t-1 t-2 t-4 t-5"), ids("t-4"), 3, "t-4 t-0 t-5"},
		{"packed: lowest node of one device", unevenPacked, all(unevenPacked), nil, 1, "a"},
		{"packed: lowest node of two devices", unevenPacked, all(unevenPacked), nil, 2, "b c"},
		{"packed: the node of three devices", unevenPacked, all(unevenPacked), nil, 3, "d e f"},
		{"packed: the largest nodes when none fits", unevenPacked, all(unevenPacked), nil, 4, "b c d e"},
		{"packed: must-include on the small node", unevenPacked, all(unevenPacked), ids("a"), 3, "a b c"},

		{"spread: one per node", spread, all(spread), nil, 2, "t-0 t-4"},
		{"spread: round robin", spread, all(spread), nil, 3, "t-0 t-1 t-4"},
		{"spread: away from the must-include node", spread, all(spread), ids("t-4"), 2, "t-4 t-0"},
		{"spread: balances against must-include", spread, all(spread), ids("t-0 t-1"), 4, "t-0 t-1 t-4 t-5"},
		{"spread: three nodes", unevenSpread, all(unevenSpread), nil, 3, "a b d"},
		{"spread: an exhausted node is skipped", unevenSpread, all(unevenSpread), nil, 4, "a b c d"},
		{"spread: only what is available", unevenSpread, ids("a e f"), nil, 2, "a e"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.Preferred(tc.available, tc.must, tc.size)
			if err != nil {
				t.Fatalf("Preferred: %v", err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("Preferred(%v, %v, %d) = %v, want %s", tc.available, tc.must, tc.size, got, tc.want)
			}
		})
	}
}

func TestPreferredErrors(t *testing.T) {
	r := mustResource(t, "name: example.com/t\ncount: 8\ntopology: {numaNodes: 2}")
	tests := []struct {
		name        string
		available   []string
		must        []string
		size        int
		wantUnknown []string
		wantMessage string
	}{
		{"size 0", r.IDs, nil, 0, nil, "allocation size 0: must be at least 1"},
		{"size negative", r.IDs, nil, -2, nil, "allocation size -2: must be at least 1"},
		{"size over available", r.IDs[:3], nil, 4, nil, "allocation size 4 is more than the 3 available devices"},
		{"available repeated counts once", []string{"t-0", "t-0", "t-1"}, nil, 3, nil, "allocation size 3 is more than the 2 available devices"},
		{"must-include over size", r.IDs, []string{"t-0", "t-1", "t-2"}, 2, nil, "allocation size 2 is smaller than the 3 must-include devices"},
		{"unknown available cannot make up the size", []string{"t-0", "x", "t-1"}, nil, 3, nil, "allocation size 3 is more than the 2 available devices (left out, not devices of example.com/t: [x])"},
		{"unknown must-include", r.IDs, []string{"y"}, 1, []string{"y"}, `example.com/t has no device "y"`},
		{"must-include not available", []string{"t-0", "t-2"}, []string{"t-1"}, 2, nil, "must-include devices [t-1] are not among the available devices"},
	}
	// The kubelet may offer devices a reload just removed: they are left out.
	t.Run("unknown available left out", func(t *testing.T) {
		got, err := r.Preferred([]string{"gone-7", "t-1", "x", "t-0"}, nil, 2)
		if err != nil || !slices.Equal(got, []string{"t-0", "t-1"}) {
			t.Errorf("Preferred = %v, %v; want [t-0 t-1]", got, err)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Preferred(tc.available, tc.must, tc.size)
			if err == nil {
				t.Fatalf("Preferred = %v, want an error", got)
			}
			if err.Error() != tc.wantMessage {
				t.Errorf("error %q, want %q", err.Error(), tc.wantMessage)
			}
			var unknown *UnknownIDsError
			if isUnknown := errors.As(err, &unknown); isUnknown != (tc.wantUnknown != nil) {
				t.Fatalf("errors.As(*UnknownIDsError) = %v, want %v", isUnknown, tc.wantUnknown != nil)
			}
			if unknown != nil && !slices.Equal(unknown.IDs, tc.wantUnknown) {
				t.Errorf("unknown IDs %v, want %v", unknown.IDs, tc.wantUnknown)
			}
		})
	}
}

// TestPreferredInvariants checks, over many random requests, what every
// answer must satisfy whatever the policy: exactly size distinct devices,
// all available, every must-include first; and for packed, no more NUMA
// nodes than a brute-force minimum.
func TestPreferredInvariants(t *testing.T) {
	var resources []*Resource
	for _, policy := range []string{"first", "packed", "spread"} {
		resources = append(resources,
			mustResource(t, "name: example.com/a\ncount: 7\nallocationPolicy: "+policy),
			mustResource(t, "name: example.com/a\ncount: 9\ntopology: {numaNodes: 3}\nallocationPolicy: "+policy),
			mustResource(t, "name: example.com/a\nids: [a, b, c, d, e, f, g]\ntopology: {nodeOf: {a: 3, b: 0, c: 3, d: 1, e: 3, f: 0, g: 2}}\nallocationPolicy: "+policy),
		)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range resources {
		t.Run(fmt.Sprintf("%s/%d devices/%v", r.Spec.AllocationPolicy, len(r.IDs), r.Spec.Topology != nil), func(t *testing.T) {
			for range 500 {
				available := slices.Clone(r.IDs)
				rng.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
				available = available[:1+rng.IntN(len(available))]
				must := available[:rng.IntN(min(3, len(available))+1)]
				size := len(must) + rng.IntN(len(available)-len(must)+1)
				if size == 0 {
					size = 1
				}
				got, err := r.Preferred(available, must, size)
				if err != nil {
					t.Fatalf("Preferred(%v, %v, %d): %v", available, must, size, err)
				}
				checkPreferred(t, r, available, must, size, got)
			}
		})
	}
}

func checkPreferred(t *testing.T, r *Resource, available, must []string, size int, got []string) {
	t.Helper()
	if len(got) != size {
		t.Fatalf("Preferred(%v, %v, %d) = %v: want %d devices", available, must, size, got, size)
	}
	seen := map[string]bool{}
	for i, id := range got {
		if seen[id] || !slices.Contains(available, id) {
			t.Fatalf("Preferred(%v, %v, %d) = %v: %q repeated or not available", available, must, size, got, id)
		}
		seen[id] = true
		if i < len(must) && got[i] != must[i] {
			t.Fatalf("Preferred(%v, %v, %d) = %v: must-include devices do not come first", available, must, size, got)
		}
	}
	if r.numa == nil || r.Spec.AllocationPolicy != PolicyPacked {
		return
	}
	if n, best := nodesUsed(r, got), minNodes(r, available, must, size); n > best {
		t.Fatalf("packed Preferred(%v, %v, %d) = %v uses %d NUMA nodes; %d would do", available, must, size, got, n, best)
	}
}

func nodesUsed(r *Resource, ids []string) int {
	nodes := map[int]bool{}
	for _, id := range ids {
		nodes[int(r.numa[r.Position(id)])] = true
	}
	return len(nodes)
}

// minNodes is the fewest NUMA nodes any valid answer can use, by trying
// every subset of the available devices.
func minNodes(r *Resource, available, must []string, size int) int {
	best := len(available) + 1
	for mask := 0; mask < 1<<len(available); mask++ {
		var pick []string
		for i, id := range available {
			if mask&(1<<i) != 0 {
				pick = append(pick, id)
			}
		}
		if len(pick) != size {
			continue
		}
		ok := true
		for _, id := range must {
			ok = ok && slices.Contains(pick, id)
		}
		if ok {
			best = min(best, nodesUsed(r, pick))
		}
	}
	return best
}
