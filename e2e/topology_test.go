package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
)

// numaManifest declares virtual NUMA placement three ways: numaNodes: 2
// over 8 devices (x-0..x-3 on node 0, x-4..x-7 on node 1) with each
// allocation policy, an explicit nodeOf map that interleaves the nodes and
// leaves node 0 smaller, a resource with no topology at all, and one
// spread over four NUMA nodes on a machine that has two.
const numaManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/packed
    count: 8
    topology: {numaNodes: 2}
    allocationPolicy: packed
  - name: e2e.example.com/spread
    count: 8
    topology: {numaNodes: 2}
    allocationPolicy: spread
  - name: e2e.example.com/first
    count: 8
    topology: {numaNodes: 2}
    allocationPolicy: first
  - name: e2e.example.com/mapped
    ids: [m0, m1, m2, m3, m4, m5]
    topology:
      nodeOf: {m0: 1, m1: 0, m2: 1, m3: 0, m4: 1, m5: 1}
  - name: e2e.example.com/flat
    count: 2
  - name: e2e.example.com/wide
    count: 8
    topology: {numaNodes: 4}
`

const (
	packedRes = "e2e.example.com/packed"
	spreadRes = "e2e.example.com/spread"
	firstRes  = "e2e.example.com/first"
	mappedRes = "e2e.example.com/mapped"
	flatRes   = "e2e.example.com/flat"
	wideRes   = "e2e.example.com/wide"
)

// policyResources are the three numaNodes: 2 resources, by policy.
var policyResources = []struct{ policy, res, prefix string }{
	{"packed", packedRes, "packed"},
	{"spread", spreadRes, "spread"},
	{"first", firstRes, "first"},
}

// devIDs names devices of a generated resource: devIDs("packed", 0, 4) is
// [packed-0 packed-4] (the default idTemplate, "<name part>-<index>").
func devIDs(prefix string, idx ...int) []string {
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = fmt.Sprintf("%s-%d", prefix, n)
	}
	return out
}

// serveNUMA starts a kubelet with a topology manager of the given policy
// and a host on numaManifest, and waits for every resource.
func serveNUMA(t *testing.T, policy string) (*numaKubelet, *host) {
	t.Helper()
	k := startNUMAKubelet(t, policy)
	h := startHost(t, writeManifest(t, numaManifest))
	k.registeredAll(t, manifestCounts(t, []byte(numaManifest)))
	return k, h
}

// preferredCalls is how many GetPreferredAllocation calls the host served
// for res: the way to see whether the kubelet asked us at all.
func preferredCalls(t testing.TB, h *host, res string) int {
	t.Helper()
	return int(h.metricValue(t, "sdp_preferred_allocation_requests_total", `resource="`+res+`"`))
}

// The kubelet's topology manager computes its hints from the Device.Topology
// we report: each device is stored on the NUMA node the manifest gives it,
// and the hints (which NUMA node sets could hold a request, the narrowest
// preferred) are exactly what that layout implies. A container asking for
// several resources is aligned to a node that can hold all of them.
func TestTopologyHintsFollowTheManifest(t *testing.T) {
	k, _ := serveNUMA(t, topologymanager.PolicySingleNumaNode)

	// Where the kubelet stored each device, by the manifest.
	want := map[string]map[string]int{flatRes: {"flat-0": -1, "flat-1": -1}}
	for _, pr := range policyResources {
		want[pr.res] = map[string]int{}
		for i := range 8 {
			want[pr.res][fmt.Sprintf("%s-%d", pr.prefix, i)] = i / 4
		}
	}
	want[mappedRes] = map[string]int{"m0": 1, "m1": 0, "m2": 1, "m3": 0, "m4": 1, "m5": 1}
	want[wideRes] = map[string]int{"wide-0": 0, "wide-1": 0, "wide-2": 1, "wide-3": 1, "wide-4": 2, "wide-5": 2, "wide-6": 3, "wide-7": 3}
	got := k.deviceNUMANodes()
	for res, nodes := range want {
		for id, node := range nodes {
			if g, ok := got[res][id]; !ok || g != node {
				t.Errorf("kubelet has %s %s on NUMA node %d (known: %v), manifest says %d", res, id, g, ok, node)
			}
		}
		if len(got[res]) != len(nodes) {
			t.Errorf("kubelet has %d devices of %s, want %d", len(got[res]), res, len(nodes))
		}
	}

	singleOrBoth := []string{"{0}", "{1}", "{0,1} (not preferred)"}
	for _, tc := range []struct {
		res  string
		n    int64
		want []string
	}{
		// 4 + 4 devices: up to 4 fit either node; 5 need both; 9 none.
		{packedRes, 1, singleOrBoth},
		{packedRes, 4, singleOrBoth},
		{packedRes, 5, []string{"{0,1}"}},
		{packedRes, 9, []string{}},
		{spreadRes, 4, singleOrBoth},
		// nodeOf: node 0 holds m1, m3; node 1 holds m0, m2, m4, m5.
		{mappedRes, 2, singleOrBoth},
		{mappedRes, 3, []string{"{1}", "{0,1} (not preferred)"}},
		{mappedRes, 5, []string{"{0,1}"}},
		// No topology: no preference, so it never constrains alignment.
		{flatRes, 1, []string{"no preference"}},
		// NUMA nodes 2 and 3 are unknown to the machine (cAdvisor): the
		// kubelet drops them from its hints, so only wide-0..wide-3 count.
		// Three need both known nodes; five cannot be aligned at all,
		// though eight devices are healthy and free.
		{wideRes, 2, singleOrBoth},
		{wideRes, 3, []string{"{0,1}"}},
		{wideRes, 5, []string{}},
	} {
		pod := newPod(fmt.Sprintf("hints-%s-%d", strings.TrimPrefix(tc.res, "e2e.example.com/"), tc.n),
			podContainer{Name: "c", Limits: map[string]int64{tc.res: tc.n}})
		if got := k.hints(pod, "c")[tc.res]; !slices.Equal(got, tc.want) {
			t.Errorf("hints for %d %s: %v, want %v", tc.n, tc.res, got, tc.want)
		}
	}

	// One container, three resources: mapped=3 fits only node 1, so the
	// merged affinity is node 1 and packed follows it; flat has no
	// topology and comes along.
	pod := newPod("aligned", podContainer{Name: "c", Limits: map[string]int64{packedRes: 2, mappedRes: 3, flatRes: 1}})
	k.mustAdmit(pod)
	if got := k.affinity(pod, "c"); got != "{1}" {
		t.Errorf("affinity of aligned/c: %s, want {1}", got)
	}
	gotDevs := k.devices(pod, "c")
	for res, ids := range map[string][]string{
		packedRes: devIDs("packed", 4, 5),
		mappedRes: {"m0", "m2", "m4"},
		flatRes:   {"flat-0"},
	} {
		if !slices.Equal(gotDevs[res], ids) {
			t.Errorf("aligned/c got %s %v, want %v", res, gotDevs[res], ids)
		}
	}
}

// With the single-numa-node policy the kubelet decides the NUMA node (the
// narrowest hint, the lowest node on a tie) and asks GetPreferredAllocation
// only about the free devices of that node, and only when it has more of
// them than the request: so every policy gets the lowest free IDs of that
// node. A request no single node can hold is refused with a
// TopologyAffinityError, also when enough devices are free in all but
// they are split across the nodes.
func TestSingleNUMANodePolicy(t *testing.T) {
	k, h := serveNUMA(t, topologymanager.PolicySingleNumaNode)
	for _, pr := range policyResources {
		t.Run(pr.policy, func(t *testing.T) {
			ask := func(name string, n int64) *podStep {
				return &podStep{k: k, h: h, res: pr.res,
					pod: newPod(pr.policy+"-"+name, podContainer{Name: "c", Limits: map[string]int64{pr.res: n}})}
			}
			ask("too-big", 5).refused(t)
			a := ask("a", 3)
			a.admitted(t, "{0}", devIDs(pr.prefix, 0, 1, 2), true)
			ask("b", 1).admitted(t, "{0}", devIDs(pr.prefix, 3), false) // the only free device on node 0: taken, not asked
			ask("c", 2).admitted(t, "{1}", devIDs(pr.prefix, 4, 5), true)

			// a ends: 3 free on node 0, 2 on node 1. Five are free, but no
			// node holds four.
			k.remove(a.pod)
			ask("d", 4).refused(t)
			ask("e", 3).admitted(t, "{0}", devIDs(pr.prefix, 0, 1, 2), false)
		})
	}
	t.Run("nodeOf", func(t *testing.T) {
		ask := func(name string, n int64) *podStep {
			return &podStep{k: k, h: h, res: mappedRes,
				pod: newPod("mapped-"+name, podContainer{Name: "c", Limits: map[string]int64{mappedRes: n}})}
		}
		ask("a", 1).admitted(t, "{0}", []string{"m1"}, true)
		ask("b", 1).admitted(t, "{0}", []string{"m3"}, false)
		ask("c", 3).admitted(t, "{1}", []string{"m0", "m2", "m4"}, true)
		ask("d", 2).refused(t) // one left (m5)
	})
}

// Without alignment the kubelet asks GetPreferredAllocation about every
// free device, and the allocation policy decides:
//
//   - none (the kubelet's default topology manager policy): packed keeps
//     a request on one node, spread alternates, first takes the lowest IDs;
//     the devices of an init container are handed to the app container as
//     must-include IDs, and each policy fills around them.
//   - best-effort: a request that needs both nodes is "aligned" to {0,1},
//     which is every free device, so the policy picks again; what it leaves
//     free decides whether the next request still fits one node.
func TestAllocationPolicyDecidesWithoutAlignment(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		k, h := serveNUMA(t, topologymanager.PolicyNone)
		for _, tc := range []struct {
			res, prefix       string
			three, four       []int
			initTwo, appAfter []int
		}{
			{packedRes, "packed", []int{0, 1, 2}, []int{4, 5, 6, 7}, []int{0, 1}, []int{0, 1, 2, 3}},
			{spreadRes, "spread", []int{0, 1, 4}, []int{2, 3, 5, 6}, []int{0, 4}, []int{0, 1, 4, 5}},
			{firstRes, "first", []int{0, 1, 2}, []int{3, 4, 5, 6}, []int{0, 1}, []int{0, 1, 2, 3}},
		} {
			t.Run(tc.prefix, func(t *testing.T) {
				step := func(name string, n int64) *podStep {
					return &podStep{k: k, h: h, res: tc.res,
						pod: newPod(tc.prefix+"-"+name, podContainer{Name: "c", Limits: map[string]int64{tc.res: n}})}
				}
				three := step("three", 3)
				three.admitted(t, "any", devIDs(tc.prefix, tc.three...), true)
				four := step("four", 4)
				four.admitted(t, "any", devIDs(tc.prefix, tc.four...), true)
				k.remove(three.pod)
				k.remove(four.pod)

				// An init container with 2, then the app container with 4:
				// the kubelet reuses the init container's devices and asks
				// for the rest with them as must-include IDs.
				pod := withInitContainer(
					newPod(tc.prefix+"-init", podContainer{Name: "app", Limits: map[string]int64{tc.res: 4}}),
					"init", map[string]int64{tc.res: 2})
				before := preferredCalls(t, h, tc.res)
				k.mustAdmit(pod)
				if got := k.devices(pod, "init")[tc.res]; !slices.Equal(got, devIDs(tc.prefix, tc.initTwo...)) {
					t.Errorf("init container got %v, want %v", got, devIDs(tc.prefix, tc.initTwo...))
				}
				if got := k.devices(pod, "app")[tc.res]; !slices.Equal(got, devIDs(tc.prefix, tc.appAfter...)) {
					t.Errorf("app container got %v, want %v (the init container's %v and the policy's pick)", got, devIDs(tc.prefix, tc.appAfter...), devIDs(tc.prefix, tc.initTwo...))
				}
				if calls := preferredCalls(t, h, tc.res) - before; calls != 2 {
					t.Errorf("GetPreferredAllocation calls for the pod with an init container: %d, want 2", calls)
				}
				k.remove(pod)
			})
		}
	})

	t.Run("best-effort", func(t *testing.T) {
		k, h := serveNUMA(t, topologymanager.PolicyBestEffort)
		for _, tc := range []struct {
			res, prefix   string
			five          []int
			threeAffinity string
			three         []int
		}{
			// packed leaves node 1 with three free: the next three are aligned.
			{packedRes, "packed", []int{0, 1, 2, 3, 4}, "{1}", []int{5, 6, 7}},
			// spread leaves one free on node 0 and two on node 1: the next
			// three straddle both nodes (single-numa-node would refuse them).
			{spreadRes, "spread", []int{0, 1, 2, 4, 5}, "{0,1}", []int{3, 6, 7}},
			{firstRes, "first", []int{0, 1, 2, 3, 4}, "{1}", []int{5, 6, 7}},
		} {
			t.Run(tc.prefix, func(t *testing.T) {
				step := func(name string, n int64) *podStep {
					return &podStep{k: k, h: h, res: tc.res,
						pod: newPod(tc.prefix+"-"+name, podContainer{Name: "c", Limits: map[string]int64{tc.res: n}})}
				}
				step("five", 5).admitted(t, "{0,1}", devIDs(tc.prefix, tc.five...), true)
				step("three", 3).admitted(t, tc.threeAffinity, devIDs(tc.prefix, tc.three...), false)
			})
		}
	})
}

// When the merged affinity is narrower than what one resource can supply
// on it, the kubelet takes every free device of that resource on the
// affinity's nodes, then asks GetPreferredAllocation for the rest with
// those as must-include IDs. With the device manager as the only hint
// provider this needs two resources that prefer different nodes, and the
// best-effort policy (single-numa-node and restricted refuse the pod).
func TestAllocationAroundANarrowAffinity(t *testing.T) {
	k, h := serveNUMA(t, topologymanager.PolicyBestEffort)
	onlyPacked := func(name string) *podStep {
		return &podStep{k: k, h: h, res: packedRes,
			pod: newPod(name, podContainer{Name: "c", Limits: map[string]int64{packedRes: 4}})}
	}
	// Leave packed with free devices on node 0 only.
	first := onlyPacked("node-0-holder")
	first.admitted(t, "{0}", devIDs("packed", 0, 1, 2, 3), false)
	onlyPacked("node-1-holder").admitted(t, "{1}", devIDs("packed", 4, 5, 6, 7), false)
	k.remove(first.pod)

	// packed=3 fits only node 0 now; mapped=3 fits only node 1 (node 0
	// has m1, m3). No node suits both; best-effort settles on {0}.
	pod := newPod("straddle", podContainer{Name: "c", Limits: map[string]int64{packedRes: 3, mappedRes: 3}})
	packedBefore, mappedBefore := preferredCalls(t, h, packedRes), preferredCalls(t, h, mappedRes)
	k.mustAdmit(pod)
	if got := k.affinity(pod, "c"); got != "{0}" {
		t.Errorf("affinity %s, want {0}", got)
	}
	got := k.devices(pod, "c")
	if !slices.Equal(got[packedRes], devIDs("packed", 0, 1, 2)) {
		t.Errorf("packed: %v, want packed-0..2 (the policy's pick on node 0)", got[packedRes])
	}
	// m1, m3 taken by the kubelet as aligned; m0 is packed's pick for the
	// third: the lowest device of the one node that can add it.
	if !slices.Equal(got[mappedRes], []string{"m0", "m1", "m3"}) {
		t.Errorf("mapped: %v, want [m0 m1 m3]", got[mappedRes])
	}
	if n := preferredCalls(t, h, packedRes) - packedBefore; n != 1 {
		t.Errorf("GetPreferredAllocation calls for packed: %d, want 1", n)
	}
	if n := preferredCalls(t, h, mappedRes) - mappedBefore; n != 1 {
		t.Errorf("GetPreferredAllocation calls for mapped: %d, want 1 (with m1, m3 as must-include)", n)
	}
}

// podStep is one pod of a scenario on one resource.
type podStep struct {
	k   *numaKubelet
	h   *host
	res string
	pod *v1.Pod
}

// admitted admits the pod and checks the NUMA affinity the topology manager
// chose, the devices of res the container got, and whether the kubelet
// asked us (GetPreferredAllocation) for them.
func (s *podStep) admitted(t *testing.T, affinity string, ids []string, asked bool) {
	t.Helper()
	before := preferredCalls(t, s.h, s.res)
	s.k.mustAdmit(s.pod)
	calls := preferredCalls(t, s.h, s.res) - before
	if got := s.k.affinity(s.pod, "c"); got != affinity {
		t.Errorf("%s: NUMA affinity %s, want %s", s.pod.Name, got, affinity)
	}
	if got := s.k.devices(s.pod, "c")[s.res]; !slices.Equal(got, ids) {
		t.Errorf("%s: got %v, want %v", s.pod.Name, got, ids)
	}
	wantCalls := 0
	if asked {
		wantCalls = 1
	}
	if calls != wantCalls {
		t.Errorf("%s: the kubelet called GetPreferredAllocation %d times, want %d", s.pod.Name, calls, wantCalls)
	}
}

// refused checks the kubelet refuses the pod for topology, without asking us.
func (s *podStep) refused(t *testing.T) {
	t.Helper()
	before := preferredCalls(t, s.h, s.res)
	res := s.k.admitAligned(s.pod)
	if res.Admit {
		t.Fatalf("%s: admitted with %v; want a topology refusal", s.pod.Name, s.k.devices(s.pod, "c"))
	}
	if res.Reason != topologymanager.ErrorTopologyAffinity {
		t.Errorf("%s: refused with %s (%s), want %s", s.pod.Name, res.Reason, res.Message, topologymanager.ErrorTopologyAffinity)
	}
	if calls := preferredCalls(t, s.h, s.res) - before; calls != 0 {
		t.Errorf("%s: refused, yet the kubelet called GetPreferredAllocation %d times", s.pod.Name, calls)
	}
}
