package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
	apisgrpc "k8s.io/kubernetes/pkg/kubelet/apis/grpc"
	"k8s.io/kubernetes/pkg/kubelet/apis/podresources"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
)

// podResourcesSocket is where the kubelet serves its PodResources API, and
// the host's default --pod-resources-socket.
const podResourcesSocket = kubeletDir + "/pod-resources/kubelet.sock"

// servePodResources serves the kubelet's own PodResources server
// (pkg/kubelet/apis/podresources, with the kubelet's rate limit) on the
// kubelet's socket, backed by k's device manager and active pods, until
// the returned stop is called or the test ends.
func (k *kubelet) servePodResources(t testing.TB) (stop func()) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(podResourcesSocket), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(podResourcesSocket)
	lis, err := net.Listen("unix", podResourcesSocket)
	if err != nil {
		t.Fatalf("kubelet: listen on %s: %v", podResourcesSocket, err)
	}
	ctx := klog.NewContext(context.Background(), k.logger)
	server := grpc.NewServer(apisgrpc.WithRateLimiter(ctx, "podresources", podresources.DefaultQPS, podresources.DefaultBurstTokens))
	podresourcesapi.RegisterPodResourcesListerServer(server, podresources.NewV1PodResourcesServer(ctx, podresources.PodResourcesProviders{
		Pods: podsProvider{k}, Devices: devicesProvider{k}, Cpus: noCPUs{}, Memory: noMemory{}, DynamicResources: noDynamicResources{},
	}))
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve(lis) // ends at Stop
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			server.Stop()
			<-served
		}
	}
	t.Cleanup(stop)
	return stop
}

// The providers the kubelet's container manager gives the server, over
// the test's kubelet. The container manager's conversion of the device
// manager's answer is unexported; devicesProvider does the same: one entry
// per device and NUMA node, or one without topology.
type podsProvider struct{ k *kubelet }

func (p podsProvider) GetActivePods() []*v1.Pod { return p.k.activePods() }
func (p podsProvider) GetPods() []*v1.Pod       { return p.k.activePods() }
func (p podsProvider) GetPodByName(namespace, name string) (*v1.Pod, bool) {
	for _, pod := range p.k.activePods() {
		if pod.Namespace == namespace && pod.Name == name {
			return pod, true
		}
	}
	return nil, false
}

type devicesProvider struct{ k *kubelet }

func (d devicesProvider) UpdateAllocatedDevices(logger klog.Logger) {
	d.k.dm().UpdateAllocatedDevices(logger)
}
func (d devicesProvider) GetDevices(podUID, containerName string) []*podresourcesapi.ContainerDevices {
	return containerDevices(d.k.dm().GetDevices(podUID, containerName))
}
func (d devicesProvider) GetAllocatableDevices(logger klog.Logger) []*podresourcesapi.ContainerDevices {
	return containerDevices(d.k.dm().GetAllocatableDevices(logger))
}

func containerDevices(devs devicemanager.ResourceDeviceInstances) []*podresourcesapi.ContainerDevices {
	var out []*podresourcesapi.ContainerDevices
	for resource, byID := range devs {
		for id, dev := range byID {
			nodes := dev.GetTopology().GetNodes()
			if len(nodes) == 0 {
				out = append(out, &podresourcesapi.ContainerDevices{ResourceName: resource, DeviceIds: []string{id}})
			}
			for _, n := range nodes {
				out = append(out, &podresourcesapi.ContainerDevices{ResourceName: resource, DeviceIds: []string{id},
					Topology: &podresourcesapi.TopologyInfo{Nodes: []*podresourcesapi.NUMANode{{ID: n.GetID()}}}})
			}
		}
	}
	return out
}

type noCPUs struct{}

func (noCPUs) GetCPUs(*v1.Pod, *v1.Container) []int64 { return nil }
func (noCPUs) GetPodCPUs(string) []int64              { return nil }
func (noCPUs) GetAllocatableCPUs() []int64            { return nil }

type noMemory struct{}

func (noMemory) GetMemory(klog.Logger, *v1.Pod, *v1.Container) []*podresourcesapi.ContainerMemory {
	return nil
}
func (noMemory) GetPodMemory(klog.Logger, string) []*podresourcesapi.ContainerMemory { return nil }
func (noMemory) GetAllocatableMemory(klog.Logger) []*podresourcesapi.ContainerMemory { return nil }

type noDynamicResources struct{}

func (noDynamicResources) GetDynamicResources(klog.Logger, *v1.Pod, *v1.Container) []*podresourcesapi.DynamicResource {
	return nil
}

// allocations is the host's /allocations, decoded here so the test reads
// what a user's tool would.
type allocations struct {
	State     string `json:"state"`
	Reason    string `json:"reason"`
	Resources []struct {
		Resource string `json:"resource"`
		Served   bool   `json:"served"`
		Free     int    `json:"free"`
		Devices  []struct {
			ID      string `json:"id"`
			Health  string `json:"health"`
			Holders []struct {
				Namespace, Pod, Container string
			} `json:"holders"`
		} `json:"devices"`
	} `json:"resources"`
}

// holdings is resource → device → "health namespace/pod/container,…"
// ("health -" when free), for comparing whole views at once.
type holdings map[string]map[string]string

func (h holdings) String() string {
	var lines []string
	for _, r := range slices.Sorted(maps.Keys(h)) {
		for _, id := range slices.Sorted(maps.Keys(h[r])) {
			lines = append(lines, fmt.Sprintf("%s %s: %s", r, id, h[r][id]))
		}
	}
	return strings.Join(lines, "\n")
}

// hostHoldings reads the host's /allocations as holdings, with each
// served resource's free count.
func (h *host) hostHoldings() (holdings, map[string]int, error) {
	code, body, err := h.get("/allocations")
	if err != nil || code != 200 {
		return nil, nil, fmt.Errorf("GET /allocations: %d %v", code, err)
	}
	var a allocations
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		return nil, nil, fmt.Errorf("decode /allocations: %w", err)
	}
	if a.State != "ok" {
		return nil, nil, fmt.Errorf("/allocations state %s: %s", a.State, a.Reason)
	}
	out, free := holdings{}, map[string]int{}
	for _, r := range a.Resources {
		out[r.Resource] = map[string]string{}
		if r.Served {
			free[r.Resource] = r.Free
		}
		for _, d := range r.Devices {
			who := []string{}
			for _, x := range d.Holders {
				who = append(who, x.Namespace+"/"+x.Pod+"/"+x.Container)
			}
			if len(who) == 0 {
				who = append(who, "-")
			}
			out[r.Resource][d.ID] = d.Health + " " + strings.Join(who, ",")
		}
	}
	return out, free, nil
}

// kubeletHoldings is what the kubelet's device manager itself says the
// pods hold, laid over every device of the manifest as free, with removed
// naming devices the manifest no longer has.
func (k *kubelet) kubeletHoldings(counts map[string]int64, ids func(resource string, i int) string, removed map[string]bool, pods ...*v1.Pod) holdings {
	out := holdings{}
	for r, n := range counts {
		out[r] = map[string]string{}
		for i := range int(n) {
			out[r][ids(r, i)] = "Healthy -"
		}
	}
	for _, pod := range pods {
		for _, c := range pod.Spec.Containers {
			for r, devs := range k.devices(pod, c.Name) {
				if out[r] == nil {
					out[r] = map[string]string{}
				}
				for _, id := range devs {
					health := "Healthy"
					if removed[id] {
						health = "Removed"
					}
					out[r][id] = health + " " + pod.Namespace + "/" + pod.Name + "/" + c.Name
				}
			}
		}
	}
	return out
}

// sameHoldings is a condition: the host says what the kubelet says.
func (h *host) sameHoldings(want func() holdings) condition {
	return func() (bool, string) {
		got, _, err := h.hostHoldings()
		if err != nil {
			return false, err.Error()
		}
		w := want()
		if got.String() != w.String() {
			return false, fmt.Sprintf("host says\n%s\nkubelet says\n%s", got, w)
		}
		return true, ""
	}
}

// allocationIDs names allocationManifest's devices by position.
func allocationIDs(resource string, i int) string {
	switch resource {
	case fpga:
		return fmt.Sprintf("fpga-%d", i)
	case seat:
		return []string{"seat-a", "seat-b", "seat-c"}[i]
	}
	return fmt.Sprintf("share-%d", i)
}

// The host's who-holds-what is checked against what the kubelet's device
// manager really allocated, read through the kubelet's own PodResources
// server: after admission, after a reload removed held devices, and after
// a kubelet restart (a new PodResources server, pods from the checkpoint).
func TestWhoHoldsWhatWithTheKubelet(t *testing.T) {
	k := startKubelet(t)
	stopPodResources := k.servePodResources(t)
	writeVendorSpec(t, "e2e.example.com/fpga", "fpga-0", "fpga-1", "fpga-2", "fpga-3")
	writeVendorSpec(t, "e2e.example.com/seat", "pool")
	counts := manifestCounts(t, []byte(allocationManifest))
	path := writeManifest(t, allocationManifest)
	// An hour's period: every read the test waits for is an Allocate's.
	h := startHost(t, path, "--pod-resources-period", "1h")
	k.registeredAll(t, counts)

	mixed := newPod("mixed",
		podContainer{Name: "trainer", Limits: map[string]int64{fpga: 2, seat: 1, share: 3}},
		podContainer{Name: "sidecar", Limits: map[string]int64{fpga: 1, seat: 2}},
	)
	small := newPod("small", podContainer{Name: "c", Limits: map[string]int64{fpga: 1, share: 1}})
	for _, pod := range []*v1.Pod{mixed, small} {
		if err := k.admit(pod); err != nil {
			t.Fatalf("the kubelet refused pod %s: %v", pod.Name, err)
		}
	}
	took := eventually(t, registerTimeout, "the host to say who holds what, as the kubelet does",
		h.sameHoldings(func() holdings { return k.kubeletHoldings(counts, allocationIDs, nil, mixed, small) }))
	t.Logf("who holds what known %v after the last admission", took.Round(1e6))
	if _, free, _ := h.hostHoldings(); free[fpga] != 0 || free[seat] != 0 || free[share] != 4 {
		t.Errorf("free %v, want fpga 0, seat 0, share 4", free)
	}
	for _, c := range []string{"trainer", "sidecar"} {
		for _, id := range k.devices(mixed, c)[fpga] {
			if v := h.metricValue(t, "sdp_device_allocated", fmt.Sprintf("resource=%q", fpga), fmt.Sprintf("device=%q", id),
				`namespace="default"`, `pod="mixed"`, fmt.Sprintf("container=%q", c)); v != 1 {
				t.Errorf("sdp_device_allocated for %s %s: %v, want 1", c, id, v)
			}
		}
	}

	// A reload leaves two FPGAs while the pods hold all four: the other
	// two are shown as Removed, still held.
	if err := os.WriteFile(path, []byte(strings.Replace(allocationManifest, "count: 4", "count: 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	counts[fpga] = 2
	k.registeredAll(t, counts)
	// The reload brings no read: the next Allocate does.
	late := newPod("late", podContainer{Name: "c", Limits: map[string]int64{share: 1}})
	if err := k.admit(late); err != nil {
		t.Fatalf("the kubelet refused pod late: %v", err)
	}
	removed := map[string]bool{"fpga-2": true, "fpga-3": true}
	eventually(t, registerTimeout, "the removed FPGAs shown as such",
		h.sameHoldings(func() holdings { return k.kubeletHoldings(counts, allocationIDs, removed, mixed, small, late) }))

	// A kubelet restart: a new device manager from the checkpoint, a new
	// PodResources server; the small pod ends meanwhile.
	stopPodResources()
	k.remove(small)
	k.restart()
	k.servePodResources(t)
	k.registeredAll(t, counts)
	last := newPod("last", podContainer{Name: "c", Limits: map[string]int64{share: 1}})
	if err := k.admit(last); err != nil {
		t.Fatalf("the kubelet refused pod last: %v", err)
	}
	eventually(t, registerTimeout, "who holds what after the kubelet restart",
		h.sameHoldings(func() holdings { return k.kubeletHoldings(counts, allocationIDs, removed, mixed, late, last) }))
}
