package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	kubeletmetrics "k8s.io/kubernetes/pkg/kubelet/metrics"
)

// kubeletLogEnv=1 shows the device manager's own logs (klog, -v=4).
const kubeletLogEnv = "SDP_E2E_KUBELET_LOG"

// initKlog silences klog unless kubeletLogEnv=1: the device manager logs
// through the global klog logger from inside gRPC handlers, where no logger
// of ours reaches.
func initKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if os.Getenv(kubeletLogEnv) == "1" {
		_ = fs.Parse([]string{"-logtostderr=true", "-v=4"})
		return
	}
	_ = fs.Parse([]string{"-logtostderr=false", "-alsologtostderr=false", "-stderrthreshold=FATAL", "-v=0"})
	klog.SetOutput(io.Discard)
}

func kubeletLogger() logr.Logger {
	if os.Getenv(kubeletLogEnv) == "1" {
		return klog.Background()
	}
	return logr.Discard()
}

// registrations is the kubelet's own count of Register calls for resource
// (kubelet_device_plugin_registration_total), across every manager of this
// test binary: compare before and after. (newKubelet registers the
// kubelet's metrics: until then the counter is a no-op.)
func registrations(t testing.TB, resource string) int {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(kubeletmetrics.DevicePluginRegistrationCount.WithLabelValues(resource))
	if err != nil {
		t.Fatalf("read kubelet registration counter for %s: %v", resource, err)
	}
	return int(v)
}

// registrationsOf reads the counter for several resources at once.
func registrationsOf(t testing.TB, resources ...string) map[string]int {
	t.Helper()
	out := make(map[string]int, len(resources))
	for _, r := range resources {
		out[r] = registrations(t, r)
	}
	return out
}

// kubelet is the kubelet's real device manager on /var/lib/kubelet/device-plugins,
// plus the bits of the kubelet around it that the tests need: the active
// pods and admission of a pod, container by container.
type kubelet struct {
	t      testing.TB
	logger logr.Logger

	mu      sync.Mutex
	manager *devicemanager.ManagerImpl
	pods    []*v1.Pod
}

// sourcesReady says every pod source was seen, as on a kubelet in its
// steady state (so terminated pods' devices are released).
type sourcesReady struct{}

func (sourcesReady) AddSource(string) {}
func (sourcesReady) AllReady() bool   { return true }

// cleanPluginDir empties the device plugin directory, checkpoint included,
// so one test's kubelet state never leaks into the next.
func cleanPluginDir(t testing.TB) {
	t.Helper()
	// The CDI dirs too: each test starts from a node without specs.
	for _, dir := range []string{cdiSpecDir, cdiStaticDir} {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatalf("clean %s: %v", dir, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("make %s: %v", dir, err)
		}
	}
	entries, err := os.ReadDir(pluginDir)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatalf("read %s: %v", pluginDir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(pluginDir, e.Name())); err != nil {
			t.Fatalf("clean %s: %v", pluginDir, err)
		}
	}
}

// newKubelet returns a kubelet that is not started yet, on a clean plugin
// directory; it is stopped when the test ends.
func newKubelet(t testing.TB) *kubelet {
	t.Helper()
	requireE2E(t)
	kubeletmetrics.Register() // once per process; idempotent
	cleanPluginDir(t)
	k := &kubelet{t: t, logger: kubeletLogger()}
	t.Cleanup(func() {
		k.stop()
		cleanPluginDir(t)
	})
	return k
}

// startKubelet returns a running kubelet on a clean plugin directory.
func startKubelet(t testing.TB) *kubelet {
	t.Helper()
	k := newKubelet(t)
	k.start()
	return k
}

// start starts a new device manager. Like a starting kubelet it removes
// every socket in the plugin directory and creates kubelet.sock.
func (k *kubelet) start() {
	k.t.Helper()
	m, err := devicemanager.NewManagerImpl(k.logger, nil, topologymanager.NewFakeManager(k.logger))
	if err != nil {
		k.t.Fatalf("kubelet: new device manager: %v", err)
	}
	if err := m.Start(k.logger, k.activePods, sourcesReady{}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		k.t.Fatalf("kubelet: start device manager: %v", err)
	}
	k.mu.Lock()
	k.manager = m
	k.mu.Unlock()
}

// stop stops the device manager (a kubelet going down): kubelet.sock stays
// on disk, unanswered, as after a crash.
func (k *kubelet) stop() {
	k.mu.Lock()
	m := k.manager
	k.manager = nil
	k.mu.Unlock()
	if m != nil {
		if err := m.Stop(k.logger); err != nil {
			k.t.Errorf("kubelet: stop device manager: %v", err)
		}
	}
}

// restart is a kubelet restart: the old manager stops, a new one starts and
// wipes the sockets. The pods stay active, as their containers keep running.
func (k *kubelet) restart() {
	k.t.Helper()
	k.stop()
	k.start()
}

func (k *kubelet) dm() *devicemanager.ManagerImpl {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.manager == nil {
		k.t.Fatalf("kubelet is not running")
	}
	return k.manager
}

func (k *kubelet) activePods() []*v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.pods)
}

// resourceCounts is what the kubelet reports for one extended resource.
type resourceCounts struct {
	Capacity, Allocatable int64
}

func (c resourceCounts) String() string {
	return fmt.Sprintf("%d/%d", c.Capacity, c.Allocatable)
}

// capacity is the kubelet's GetCapacity as resource -> capacity/allocatable.
// Resources the kubelet lists as deleted are left out.
func (k *kubelet) capacity() map[string]resourceCounts {
	capacity, allocatable, _ := k.dm().GetCapacity(k.logger)
	out := make(map[string]resourceCounts, len(capacity))
	for name, q := range capacity {
		c := out[string(name)]
		c.Capacity = q.Value()
		out[string(name)] = c
	}
	for name, q := range allocatable {
		c := out[string(name)]
		c.Allocatable = q.Value()
		out[string(name)] = c
	}
	return out
}

// formatCounts prints counts in a stable order: "a=4/4 b=2/1" (capacity/allocatable).
func formatCounts(counts map[string]resourceCounts) string {
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", n, counts[n])
	}
	if b.Len() == 0 {
		return "(nothing)"
	}
	return b.String()
}

// countsMatch reports whether every resource in want has exactly those
// counts (a resource missing from got counts as 0/0), and says what differs.
func countsMatch(got, want map[string]resourceCounts) (bool, string) {
	var diffs []string
	for name, w := range want {
		if g := got[name]; g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", name, g, w))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		return false, "capacity/allocatable " + strings.Join(diffs, "; ") + " (kubelet: " + formatCounts(got) + ")"
	}
	return true, ""
}

// allHealthy is the expected counts when every device is healthy.
func allHealthy(counts map[string]int64) map[string]resourceCounts {
	out := make(map[string]resourceCounts, len(counts))
	for n, c := range counts {
		out[n] = resourceCounts{Capacity: c, Allocatable: c}
	}
	return out
}

// admit admits pod as the kubelet does: the pod becomes active, then each
// container is allocated its devices in order. A pod the kubelet refuses is
// not active any more (its devices are released) and the error is returned.
func (k *kubelet) admit(pod *v1.Pod) error {
	k.t.Helper()
	m := k.dm()
	k.mu.Lock()
	k.pods = append(k.pods, pod)
	k.mu.Unlock()
	ctx := klog.NewContext(context.Background(), k.logger)
	for i := range pod.Spec.Containers {
		if err := m.Allocate(ctx, pod, &pod.Spec.Containers[i], lifecycle.AddOperation); err != nil {
			k.remove(pod)
			return fmt.Errorf("container %s: %w", pod.Spec.Containers[i].Name, err)
		}
	}
	return nil
}

// remove ends pod: it is no longer active and its devices are released at
// the next allocation.
func (k *kubelet) remove(pod *v1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pods = slices.DeleteFunc(k.pods, func(p *v1.Pod) bool { return p.UID == pod.UID })
}

// runOptions is what the kubelet hands the container runtime for container
// name of pod: merged envs, mounts, devices, annotations and CDI devices.
func (k *kubelet) runOptions(pod *v1.Pod, name string) *devicemanager.DeviceRunContainerOptions {
	k.t.Helper()
	ctx := klog.NewContext(context.Background(), k.logger)
	opts, err := k.dm().GetDeviceRunContainerOptions(ctx, pod, container(k.t, pod, name))
	if err != nil {
		k.t.Fatalf("kubelet: run options of %s/%s: %v", pod.Name, name, err)
	}
	if opts == nil {
		k.t.Fatalf("kubelet: no run options for %s/%s", pod.Name, name)
	}
	return opts
}

// devices is resource -> device IDs (sorted) the kubelet assigned to
// container name of pod.
func (k *kubelet) devices(pod *v1.Pod, name string) map[string][]string {
	out := map[string][]string{}
	for res, devs := range k.dm().GetDevices(string(pod.UID), name) {
		ids := make([]string, 0, len(devs))
		for id := range devs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		out[res] = ids
	}
	return out
}

// newPod builds a pod with one container per entry of containers, each
// asking for the given extended resources (limits, requests equal).
func newPod(name string, containers ...podContainer) *v1.Pod {
	pod := &v1.Pod{}
	pod.Name, pod.Namespace, pod.UID = name, "default", types.UID("uid-"+name)
	for _, c := range containers {
		limits := v1.ResourceList{}
		for res, n := range c.Limits {
			limits[v1.ResourceName(res)] = *resource.NewQuantity(n, resource.DecimalSI)
		}
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{
			Name:      c.Name,
			Resources: v1.ResourceRequirements{Limits: limits, Requests: limits.DeepCopy()},
		})
	}
	return pod
}

// podContainer is one container of newPod.
type podContainer struct {
	Name   string
	Limits map[string]int64
}

func container(t testing.TB, pod *v1.Pod, name string) *v1.Container {
	t.Helper()
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	t.Fatalf("pod %s has no container %s", pod.Name, name)
	return nil
}
