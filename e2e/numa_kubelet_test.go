package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	cadvisorapi "github.com/google/cadvisor/lib/model"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
)

// twoNUMANodes is the machine the NUMA tests pretend to run on, as cAdvisor
// would describe it: two NUMA nodes of two cores (four threads) each.
var twoNUMANodes = []cadvisorapi.Node{
	{Id: 0, Memory: 8 << 30, Cores: []cadvisorapi.Core{{Id: 0, Threads: []int{0, 4}}, {Id: 1, Threads: []int{1, 5}}}},
	{Id: 1, Memory: 8 << 30, Cores: []cadvisorapi.Core{{Id: 2, Threads: []int{2, 6}}, {Id: 3, Threads: []int{3, 7}}}},
}

// numaKubelet is the device manager wired as the kubelet wires it
// (pkg/kubelet/cm/container_manager_linux.go): a real topology manager for
// twoNUMANodes with a policy and the container scope, the device manager
// built on the same machine topology with the topology manager as its
// affinity store, and registered as its hint provider. Pods are admitted
// the way the kubelet admits them: through the topology manager's Admit
// (the kubelet's GetAllocateResourcesPodAdmitHandler), which merges the
// hints and then calls the device manager's Allocate per container.
type numaKubelet struct {
	*kubelet
	policy   string
	topology topologymanager.Manager
}

// startNUMAKubelet starts a numaKubelet with the given topology manager
// policy (none, best-effort, restricted or single-numa-node) on a clean
// plugin directory; it is stopped when the test ends.
func startNUMAKubelet(t testing.TB, policy string) *numaKubelet {
	t.Helper()
	k := &numaKubelet{kubelet: newKubelet(t), policy: policy}
	tm, err := topologymanager.NewManager(k.logger, twoNUMANodes, policy, topologymanager.ContainerTopologyScope, nil)
	if err != nil {
		t.Fatalf("kubelet: new topology manager (%s): %v", policy, err)
	}
	m, err := devicemanager.NewManagerImpl(k.logger, twoNUMANodes, tm)
	if err != nil {
		t.Fatalf("kubelet: new device manager: %v", err)
	}
	tm.AddHintProvider(k.logger, m)
	if err := m.Start(k.logger, k.activePods, sourcesReady{}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		t.Fatalf("kubelet: start device manager: %v", err)
	}
	k.topology = tm
	k.mu.Lock()
	k.manager = m
	k.mu.Unlock()
	return k
}

// admitAligned admits pod as the kubelet does with a topology manager: the
// pod becomes active and the topology manager's Admit decides. A refused
// pod is not active any more; the result says why (Reason
// TopologyAffinityError when no hint satisfies the policy).
func (k *numaKubelet) admitAligned(pod *v1.Pod) lifecycle.PodAdmitResult {
	k.t.Helper()
	k.mu.Lock()
	k.pods = append(k.pods, pod)
	k.mu.Unlock()
	ctx := klog.NewContext(context.Background(), k.logger)
	res := k.topology.Admit(ctx, &lifecycle.PodAdmitAttributes{Pod: pod, OtherPods: k.activePods(), Operation: lifecycle.AddOperation})
	if !res.Admit {
		k.remove(pod)
	}
	return res
}

// mustAdmit admits pod and fails the test if the kubelet refuses it.
func (k *numaKubelet) mustAdmit(pod *v1.Pod) {
	k.t.Helper()
	if res := k.admitAligned(pod); !res.Admit {
		k.t.Fatalf("kubelet (%s) refused pod %s: %s: %s", k.policy, pod.Name, res.Reason, res.Message)
	}
}

// affinity is the NUMA affinity the topology manager settled on for a
// container ("{0}", "{0,1}", or "any" when it has none).
func (k *numaKubelet) affinity(pod *v1.Pod, name string) string {
	h := k.topology.GetAffinity(k.logger, string(pod.UID), name)
	if h.NUMANodeAffinity == nil {
		return "any"
	}
	return formatNodes(h.NUMANodeAffinity.GetBits())
}

// hints asks the device manager, as the topology manager does during
// admission, which NUMA node sets could hold container name of pod; for
// each resource the hints are formatted "{0}", "{0,1} (not preferred)", in
// the order of formatHints.
func (k *numaKubelet) hints(pod *v1.Pod, name string) map[string][]string {
	k.t.Helper()
	out := map[string][]string{}
	for res, hs := range k.dm().GetTopologyHints(k.logger, pod, container(k.t, pod, name), lifecycle.AddOperation) {
		out[res] = formatHints(hs)
	}
	return out
}

// formatHints formats and sorts hints: preferred first, then by node set.
// nil (a resource without topology) is "no preference"; an empty list
// means no node set can hold the request.
func formatHints(hs []topologymanager.TopologyHint) []string {
	if hs == nil {
		return []string{"no preference"}
	}
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		s := "any"
		if h.NUMANodeAffinity != nil {
			s = formatNodes(h.NUMANodeAffinity.GetBits())
		}
		if !h.Preferred {
			s += " (not preferred)"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := !strings.HasSuffix(out[i], ")"), !strings.HasSuffix(out[j], ")")
		if pi != pj {
			return pi
		}
		return out[i] < out[j]
	})
	return out
}

func formatNodes(nodes []int) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = fmt.Sprint(n)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// deviceNUMANodes is resource -> device ID -> NUMA node as the kubelet
// stored it from our ListAndWatch (-1: no topology).
func (k *numaKubelet) deviceNUMANodes() map[string]map[string]int {
	out := map[string]map[string]int{}
	for res, devs := range k.dm().GetAllocatableDevices(k.logger) {
		out[res] = map[string]int{}
		for id, d := range devs {
			node := -1
			if d.Topology != nil && len(d.Topology.Nodes) == 1 {
				node = int(d.Topology.Nodes[0].ID)
			} else if d.Topology != nil && len(d.Topology.Nodes) > 1 {
				node = -2 // more than one: not what the host sends
			}
			out[res][id] = node
		}
	}
	return out
}

// withInitContainer adds an init container asking for limits to pod; the
// kubelet hands its devices on to the app containers (devicesToReuse).
func withInitContainer(pod *v1.Pod, name string, limits map[string]int64) *v1.Pod {
	init := newPod("init", podContainer{Name: name, Limits: limits}).Spec.Containers[0]
	pod.Spec.InitContainers = append(pod.Spec.InitContainers, init)
	return pod
}
