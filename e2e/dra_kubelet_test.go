package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	pluginwatcherapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"k8s.io/kubernetes/pkg/kubelet/cm/dra"
	draplugin "k8s.io/kubernetes/pkg/kubelet/cm/dra/plugin"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager"
	"k8s.io/utils/ptr"
)

const (
	// draPluginDir is the kubelet's plugin directory (<root-dir>/plugins),
	// where DRA drivers keep their sockets, in the tests' private tmpfs.
	draPluginDir = kubeletDir + "/plugins"
	// draStateFiles are the DRA manager's checkpoints in the kubelet's
	// root directory (cm/dra: draManagerStateFileName, dra_health_state).
	draStateFile       = kubeletDir + "/dra_manager_state"
	draHealthStateFile = kubeletDir + "/dra_health_state"
)

// draKubelet is the kubelet's side of DRA, from the kubelet's own code: the
// DRA manager (pkg/kubelet/cm/dra) with a client of the test API server,
// and the plugin manager (pkg/kubelet/pluginmanager) watching
// plugins_registry with the DRA manager's registration handler and the
// device manager's, as kubelet.go wires every handler of
// containerManager.GetPluginRegistrationHandlers() into it. The device
// manager (kubelet.sock) runs beside it, so one host process can serve a
// device plugin and a DRA driver to the same kubelet.
type draKubelet struct {
	*kubelet
	api *apiServer

	draManager *dra.Manager
	cancel     context.CancelFunc

	stopPlugins chan struct{}
	pluginsDone chan struct{}
}

// startDRAKubelet starts the device manager, the DRA manager and the plugin
// manager on clean plugin, plugins_registry and DRA state directories, with
// the test node in the API server. It returns once the DRA manager has done
// what a starting kubelet does first: wipe the node's ResourceSlices.
// Everything is stopped and cleaned when the test ends.
func startDRAKubelet(t testing.TB, api *apiServer) *draKubelet {
	t.Helper()
	k := &draKubelet{kubelet: newKubelet(t), api: api}
	ensureNode(t, api)
	cleanDRADirs(t, true)
	t.Cleanup(func() {
		k.stopDRA()
		cleanDRADirs(t, false)
	})
	k.kubelet.start()
	k.startDRA()
	return k
}

// cleanDRADirs removes plugins/ and plugins_registry/ (making them again,
// empty, if recreate) and the DRA manager's checkpoints, so one test's kubelet
// state never leaks into the next. A plugins_registry left behind would
// also turn later hosts in --registration auto to it.
func cleanDRADirs(t testing.TB, recreate bool) {
	t.Helper()
	for _, dir := range []string{draPluginDir, registryDir} {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatalf("clean %s: %v", dir, err)
		}
		if !recreate {
			continue
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatalf("make %s: %v", dir, err)
		}
	}
	for _, f := range []string{draStateFile, draHealthStateFile} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatalf("remove %s: %v", f, err)
		}
	}
}

// ensureNode creates the test node in the API server unless it exists.
// The kubelet's DRA manager looks it up before wiping ResourceSlices, and a
// DRA driver names it in its slices.
func ensureNode(t testing.TB, api *apiServer) {
	t.Helper()
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	_, err := api.client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create node %s: %v", nodeName, err)
	}
}

// sentinelDriver owns the ResourceSlice that tells when a starting DRA
// manager has wiped the node's slices.
const sentinelDriver = "sentinel.e2e.example.com"

// startDRA starts a new DRA manager and plugin manager. A starting DRA
// manager deletes every ResourceSlice of the node in the background (no
// driver is registered yet); it returns once that happened, seen as a
// sentinel slice of the node going away, so a test never mistakes a slice
// published before the wipe for one that survives it.
func (k *draKubelet) startDRA() {
	k.t.Helper()
	ctx := klog.NewContext(context.Background(), k.logger)
	createSentinelSlice(k.t, k.api)

	m, err := dra.NewManager(k.logger, k.api.client, kubeletDir)
	if err != nil {
		k.t.Fatalf("kubelet: new DRA manager: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	getNode := func(ctx context.Context) (*v1.Node, error) {
		return k.api.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	}
	if err := m.Start(ctx, k.activePods, getNode, sourcesReady{}); err != nil {
		cancel()
		k.t.Fatalf("kubelet: start DRA manager: %v", err)
	}
	pm := pluginmanager.NewPluginManager(registryDir, &record.FakeRecorder{})
	pm.AddHandler(pluginwatcherapi.DRAPlugin, m.GetWatcherHandler())
	pm.AddHandler(pluginwatcherapi.DevicePlugin, k.dm().GetWatcherHandler())
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		pm.Run(ctx, sourcesReady{}, stop)
	}()

	k.mu.Lock()
	k.draManager, k.cancel = m, cancel
	k.stopPlugins, k.pluginsDone = stop, done
	k.mu.Unlock()

	eventually(k.t, registerTimeout, "the starting DRA manager to wipe the node's ResourceSlices", func() (bool, string) {
		_, err := k.api.client.ResourceV1().ResourceSlices().Get(context.Background(), sentinelSliceName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, ""
		case err != nil:
			return false, err.Error()
		default:
			return false, "the sentinel slice is still there"
		}
	})
}

// stopDRA stops the plugin manager and the DRA manager (a kubelet going
// down): the drivers' sockets stay where they are.
func (k *draKubelet) stopDRA() {
	k.mu.Lock()
	m, cancel, stop, done := k.draManager, k.cancel, k.stopPlugins, k.pluginsDone
	k.draManager, k.cancel, k.stopPlugins, k.pluginsDone = nil, nil, nil, nil
	k.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	if m != nil {
		m.Stop()
		cancel()
	}
}

// restart is a kubelet restart: the plugin manager, the DRA manager and the
// device manager stop; new ones start (the device manager wiping its
// directory, the DRA manager reading its checkpoint and wiping the node's
// slices, the plugin manager finding the drivers' registration sockets where
// they are). The pods stay active, as their containers keep running.
func (k *draKubelet) restart() {
	k.t.Helper()
	k.stopDRA()
	k.kubelet.stop()
	k.kubelet.start()
	k.startDRA()
}

func (k *draKubelet) dra() *dra.Manager {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.draManager == nil {
		k.t.Fatalf("kubelet: the DRA manager is not running")
	}
	return k.draManager
}

// plugins is the DRA manager's registration handler: the kubelet's registry
// of DRA drivers.
func (k *draKubelet) plugins() *draplugin.DRAPluginManager {
	k.t.Helper()
	h, ok := k.dra().GetWatcherHandler().(*draplugin.DRAPluginManager)
	if !ok {
		k.t.Fatalf("kubelet: the DRA manager's watcher handler is a %T", k.dra().GetWatcherHandler())
	}
	return h
}

// driverRegistered is a condition: the kubelet's DRA manager knows driver
// (registered through plugins_registry), or, with want false, does not.
func (k *draKubelet) driverRegistered(driver string, want bool) condition {
	return func() (bool, string) {
		_, err := k.plugins().GetPlugin(driver)
		switch {
		case want && err != nil:
			return false, err.Error()
		case !want && err == nil:
			return false, fmt.Sprintf("the kubelet still has DRA driver %s", driver)
		}
		return true, ""
	}
}

// prepare admits pod as far as DRA goes: the pod becomes active and the DRA
// manager prepares its claims (kubelet: containerManager.PrepareDynamicResources
// before the pod's sandbox is created). A pod whose claims cannot be
// prepared is not active.
func (k *draKubelet) prepare(pod *v1.Pod) error {
	k.t.Helper()
	m := k.dra()
	k.mu.Lock()
	if !slices.ContainsFunc(k.pods, func(p *v1.Pod) bool { return p.UID == pod.UID }) {
		k.pods = append(k.pods, pod)
	}
	k.mu.Unlock()
	if err := m.PrepareResources(klog.NewContext(context.Background(), k.logger), pod); err != nil {
		k.remove(pod)
		return err
	}
	return nil
}

// unprepare ends pod: the DRA manager unprepares its claims (kubelet: after
// the pod's containers are gone) and the pod is no longer active.
func (k *draKubelet) unprepare(pod *v1.Pod) error {
	k.t.Helper()
	err := k.dra().UnprepareResources(klog.NewContext(context.Background(), k.logger), pod)
	if err == nil {
		k.remove(pod)
	}
	return err
}

// cdiDevices is what the kubelet hands the container runtime for container
// name of pod from its claims: the fully qualified CDI device names, sorted.
func (k *draKubelet) cdiDevices(pod *v1.Pod, name string) ([]string, error) {
	k.t.Helper()
	info, err := k.dra().GetResources(pod, container(k.t, pod, name))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, d := range info.CDIDevices {
		ids = append(ids, d.Name)
	}
	sort.Strings(ids)
	return ids, nil
}

// claimPod builds a pod with one container "c" using every request of the
// ResourceClaim claimName (pod.spec.resourceClaims, container
// resources.claims), as a user writes it.
func claimPod(name, claimName string) *v1.Pod {
	pod := newPod(name, podContainer{Name: "c"})
	pod.Spec.ResourceClaims = []v1.PodResourceClaim{{Name: "dev", ResourceClaimName: ptr.To(claimName)}}
	pod.Spec.Containers[0].Resources.Claims = []v1.ResourceClaim{{Name: "dev"}}
	return pod
}

// allocation is the scheduler's decision for a claim of the tests: one
// request, served by devices of driver in the node's pool.
type allocation struct {
	driver  string
	request string
	devices []string
}

// createAllocatedClaim plays the user and the scheduler: it creates the
// ResourceClaim name asking for len(a.devices) devices of DeviceClass
// a.driver, then writes its status as the scheduler would: allocated to
// a.devices of pool nodeName on the test node, reserved for pod. The claim
// is deleted when the test ends.
func createAllocatedClaim(t testing.TB, api *apiServer, name string, a allocation, pod *v1.Pod) *resourceapi.ResourceClaim {
	t.Helper()
	ctx := context.Background()
	claims := api.client.ResourceV1().ResourceClaims(pod.Namespace)
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pod.Namespace},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
			Requests: []resourceapi.DeviceRequest{{
				Name: a.request,
				Exactly: &resourceapi.ExactDeviceRequest{
					DeviceClassName: a.driver,
					AllocationMode:  resourceapi.DeviceAllocationModeExactCount,
					Count:           int64(len(a.devices)),
				},
			}},
		}},
	}
	created, err := claims.Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create ResourceClaim %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := claims.Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete ResourceClaim %s: %v", name, err)
		}
	})
	results := make([]resourceapi.DeviceRequestAllocationResult, 0, len(a.devices))
	for _, d := range a.devices {
		results = append(results, resourceapi.DeviceRequestAllocationResult{
			Request: a.request, Driver: a.driver, Pool: nodeName, Device: d,
		})
	}
	created.Status.Allocation = &resourceapi.AllocationResult{
		Devices: resourceapi.DeviceAllocationResult{Results: results},
		NodeSelector: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{nodeName}}},
		}}},
	}
	created.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{
		Resource: "pods", Name: pod.Name, UID: pod.UID,
	}}
	updated, err := claims.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("allocate ResourceClaim %s: %v", name, err)
	}
	return updated
}

// sentinelSliceName is the sentinel's ResourceSlice.
const sentinelSliceName = "e2e-sentinel-" + nodeName

// createSentinelSlice creates the node's sentinel slice unless it exists.
func createSentinelSlice(t testing.TB, api *apiServer) {
	t.Helper()
	slice := &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: sentinelSliceName},
		Spec: resourceapi.ResourceSliceSpec{
			Driver:   sentinelDriver,
			Pool:     resourceapi.ResourcePool{Name: nodeName, ResourceSliceCount: 1},
			NodeName: ptr.To(nodeName),
			Devices:  []resourceapi.Device{{Name: "sentinel"}},
		},
	}
	_, err := api.client.ResourceV1().ResourceSlices().Create(context.Background(), slice, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create the sentinel ResourceSlice: %v", err)
	}
}

// nodeSlices lists the ResourceSlices of driver on the test node, by name.
func nodeSlices(api *apiServer, driver string) ([]resourceapi.ResourceSlice, error) {
	list, err := api.client.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{
		FieldSelector: resourceapi.ResourceSliceSelectorNodeName + "=" + nodeName + "," + resourceapi.ResourceSliceSelectorDriver + "=" + driver,
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b resourceapi.ResourceSlice) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return list.Items, nil
}

// sliceDevices is every device of the slices, by name.
func sliceDevices(slices []resourceapi.ResourceSlice) map[string]resourceapi.Device {
	out := map[string]resourceapi.Device{}
	for _, s := range slices {
		for _, d := range s.Spec.Devices {
			out[d.Name] = d
		}
	}
	return out
}

// cdiSpecFiles lists the files in the CDI spec dir whose names start with
// prefix.
func cdiSpecFiles(t testing.TB, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(cdiSpecDir)
	if err != nil {
		t.Fatalf("read %s: %v", cdiSpecDir, err)
	}
	var out []string
	for _, e := range entries {
		if len(e.Name()) >= len(prefix) && e.Name()[:len(prefix)] == prefix {
			out = append(out, filepath.Join(cdiSpecDir, e.Name()))
		}
	}
	return out
}
