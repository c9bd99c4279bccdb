package podresources_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	api "k8s.io/kubelet/pkg/apis/podresources/v1"

	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/podresources"
)

const fpga = "example.com/fpga"

func TestFromList(t *testing.T) {
	resp := &api.ListPodResourcesResponse{PodResources: []*api.PodResources{
		kubeletsim.Pod("default", "a", map[string]map[string][]string{
			"main": {fpga: {"fpga-0", "fpga-1"}, "nvidia.com/gpu": {"GPU-1"}},
		}),
		kubeletsim.Pod("ml", "b", map[string]map[string][]string{
			"init-sidecar": {fpga: {"fpga-2"}},
			"main":         {"example.com/seat": {"seat-a"}},
		}),
		kubeletsim.Pod("ml", "no-devices", map[string]map[string][]string{"main": nil}),
	}}
	// A device on two NUMA nodes is listed once per node.
	twoNodes := &api.ContainerDevices{ResourceName: fpga, DeviceIds: []string{"fpga-3"}, Topology: &api.TopologyInfo{Nodes: []*api.NUMANode{{ID: 0}}}}
	twoNodes2 := &api.ContainerDevices{ResourceName: fpga, DeviceIds: []string{"fpga-3"}, Topology: &api.TopologyInfo{Nodes: []*api.NUMANode{{ID: 1}}}}
	resp.PodResources = append(resp.PodResources, &api.PodResources{Namespace: "ml", Name: "numa",
		Containers: []*api.ContainerResources{{Name: "main", Devices: []*api.ContainerDevices{twoNodes, twoNodes2}}}})
	tests := []struct {
		name string
		ours map[string]bool
		want podresources.Holdings
	}{
		{"none of ours", map[string]bool{"example.com/other": true}, podresources.Holdings{}},
		{"one resource, not someone else's", map[string]bool{fpga: true}, podresources.Holdings{fpga: {
			"fpga-0": {{Namespace: "default", Pod: "a", Container: "main"}},
			"fpga-1": {{Namespace: "default", Pod: "a", Container: "main"}},
			"fpga-2": {{Namespace: "ml", Pod: "b", Container: "init-sidecar"}},
			"fpga-3": {{Namespace: "ml", Pod: "numa", Container: "main"}},
		}}},
		{"two resources", map[string]bool{fpga: true, "example.com/seat": true}, podresources.Holdings{
			fpga: {
				"fpga-0": {{Namespace: "default", Pod: "a", Container: "main"}},
				"fpga-1": {{Namespace: "default", Pod: "a", Container: "main"}},
				"fpga-2": {{Namespace: "ml", Pod: "b", Container: "init-sidecar"}},
				"fpga-3": {{Namespace: "ml", Pod: "numa", Container: "main"}},
			},
			"example.com/seat": {"seat-a": {{Namespace: "ml", Pod: "b", Container: "main"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := podresources.FromList(resp, tt.ours); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromList:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// socketPath is a path short enough for a unix socket.
func socketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "podres")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "kubelet.sock")
}

// startKubelet serves a stand-in PodResources API on sock until the test ends.
func startKubelet(t *testing.T, sock string) *kubeletsim.PodResources {
	t.Helper()
	kubelet, err := kubeletsim.StartPodResources(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kubelet.Stop)
	return kubelet
}

// startWatcher runs a watcher until the test ends.
func startWatcher(t *testing.T, cfg podresources.Config) *podresources.Watcher {
	t.Helper()
	if cfg.Ours == nil {
		cfg.Ours = func() map[string]bool { return map[string]bool{fpga: true} }
	}
	w := podresources.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return w
}

// waitSnapshot kicks until the watcher's snapshot satisfies ok.
func waitSnapshot(t *testing.T, w *podresources.Watcher, what string, ok func(*podresources.Snapshot) bool) *podresources.Snapshot {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := w.Snapshot()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last snapshot %+v", what, s)
		}
		w.Kick()
		time.Sleep(5 * time.Millisecond)
	}
}

func held(s *podresources.Snapshot, id string) []podresources.Holder { return s.Holdings[fpga][id] }

func TestWatcherFollowsTheKubelet(t *testing.T) {
	sock := socketPath(t)
	var states sync.Map
	w := startWatcher(t, podresources.Config{Socket: sock, Period: time.Hour, Delay: time.Millisecond,
		Refreshed: func(s podresources.State) { states.Store(s, true) }})

	s := waitSnapshot(t, w, "the first refresh", func(s *podresources.Snapshot) bool { return s.Seq > 0 })
	if s.State != podresources.StateOff || s.Holdings != nil {
		t.Fatalf("no socket: got %+v, want state off and no holdings", s)
	}

	kubelet, err := kubeletsim.StartPodResources(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer kubelet.Stop()
	kubelet.Set(&api.ListPodResourcesResponse{PodResources: []*api.PodResources{
		kubeletsim.Pod("default", "a", map[string]map[string][]string{"main": {fpga: {"fpga-0"}}}),
	}})
	s = waitSnapshot(t, w, "the kubelet's answer", func(s *podresources.Snapshot) bool { return s.State == podresources.StateOK })
	want := []podresources.Holder{{Namespace: "default", Pod: "a", Container: "main"}}
	if got := held(s, "fpga-0"); !reflect.DeepEqual(got, want) || s.Refreshed.IsZero() {
		t.Fatalf("fpga-0 held by %v (refreshed %v), want %v", got, s.Refreshed, want)
	}

	// Over the kubelet's rate limit, or any failure: the last answer stays.
	kubelet.Fail(status.Error(codes.ResourceExhausted, "rejected by rate limit"))
	s = waitSnapshot(t, w, "the failure", func(s *podresources.Snapshot) bool { return s.State == podresources.StateError })
	if got := held(s, "fpga-0"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a failed read fpga-0 is held by %v, want the last answer %v", got, want)
	}

	// The pod went: the device is simply free.
	kubelet.Set(&api.ListPodResourcesResponse{})
	waitSnapshot(t, w, "the pod gone", func(s *podresources.Snapshot) bool {
		return s.State == podresources.StateOK && held(s, "fpga-0") == nil
	})

	// A kubelet restart: a new socket, a new server; the watcher reconnects.
	kubelet.Stop()
	waitSnapshot(t, w, "the kubelet gone", func(s *podresources.Snapshot) bool { return s.State != podresources.StateOK })
	kubelet, err = kubeletsim.StartPodResources(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer kubelet.Stop()
	kubelet.Set(&api.ListPodResourcesResponse{PodResources: []*api.PodResources{
		kubeletsim.Pod("ml", "b", map[string]map[string][]string{"c": {fpga: {"fpga-1"}}}),
	}})
	waitSnapshot(t, w, "the restarted kubelet's answer", func(s *podresources.Snapshot) bool {
		return s.State == podresources.StateOK && held(s, "fpga-1") != nil
	})
	for _, st := range []podresources.State{podresources.StateOff, podresources.StateOK, podresources.StateError} {
		if _, ok := states.Load(st); !ok {
			t.Errorf("Refreshed was never told %s", st)
		}
	}
}

// Kicks within Delay share one read: a burst of Allocates costs the
// kubelet's rate limit a read per Delay, not one each.
func TestKicksShareOneRead(t *testing.T) {
	sock := socketPath(t)
	kubelet := startKubelet(t, sock)
	const delay = 50 * time.Millisecond
	w := startWatcher(t, podresources.Config{Socket: sock, Period: time.Hour, Delay: delay})
	waitSnapshot(t, w, "the first read", func(s *podresources.Snapshot) bool { return s.State == podresources.StateOK })
	before := kubelet.Calls()

	start := time.Now()
	for range 10000 {
		w.Kick()
	}
	elapsed := time.Since(start)
	// The kicks end in a read: wait for it.
	deadline := time.Now().Add(30 * time.Second)
	for kubelet.Calls() == before {
		if time.Now().After(deadline) {
			t.Fatal("10,000 kicks brought no read")
		}
		time.Sleep(time.Millisecond)
	}
	// One read per Delay of kicking at most, plus the one they end in.
	if got, max := kubelet.Calls()-before, int(elapsed/delay)+2; got > max {
		t.Errorf("10,000 kicks over %v made %d reads, want at most %d", elapsed, got, max)
	}
}

// The slow period alone sees pods come and go.
func TestPeriodRefreshes(t *testing.T) {
	sock := socketPath(t)
	kubelet := startKubelet(t, sock)
	w := startWatcher(t, podresources.Config{Socket: sock, Period: 20 * time.Millisecond, Delay: time.Millisecond})
	for i := range 3 {
		id := fmt.Sprintf("fpga-%d", i)
		kubelet.Set(&api.ListPodResourcesResponse{PodResources: []*api.PodResources{
			kubeletsim.Pod("default", "a", map[string]map[string][]string{"main": {fpga: {id}}}),
		}})
		deadline := time.Now().Add(30 * time.Second)
		for held(w.Snapshot(), id) == nil { // no Kick: the period must do it
			if time.Now().After(deadline) {
				t.Fatalf("the period never read %s: %+v", id, w.Snapshot())
			}
			time.Sleep(time.Millisecond)
		}
	}
}
