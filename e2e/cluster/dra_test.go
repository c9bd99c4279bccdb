package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The DRA steps: a resource of the manifest served as a DRA driver
// (api: dra) by the same DaemonSet pod that serves the device plugins.
// Gadgets are virtual devices like the fpgas: a device node (/dev/null) and
// a per-device mount of a host directory holding a file that names the
// device, so a container's own report (podinfo) tells which devices it
// got; here the plugin hands them out per claim, through a CDI spec of the
// claim's own.
const (
	gadget       = "example.com/gadget"
	gadgetDriver = "gadget.example.com" // the default driver name of example.com/gadget
	// On the host, one directory per gadget; cluster.sh down removes it too.
	gadgetHostDir = "/var/lib/gadget"
	// The kubelet's DRA dirs, which the DaemonSet mounts.
	draPluginDir   = "/var/lib/kubelet/plugins"
	draRegistryDir = "/var/lib/kubelet/plugins_registry"
	// The label of every pod, claim and claim template the DRA steps make,
	// by which the cleanup finds them.
	draLabel = "sdp-e2e/dra"
	// pluginAccount is the plugin's service account, as the API server
	// names its requests.
	pluginAccount = "system:serviceaccount:" + pluginNS + ":" + pluginName
)

// gadgetResource is the manifest's gadget resource with count devices,
// gadget-0 ...: generation is the index, so a CEL selector can pick
// devices by it.
func gadgetResource(count int) map[string]any {
	return map[string]any{
		"name":       gadget,
		"count":      count,
		"idTemplate": "gadget-{{ .Index }}",
		"api":        "dra",
		"dra": map[string]any{
			"attributes": map[string]any{
				"model":      "virtual-gadget",
				"generation": "{{ .Index }}",
				"firmware":   "1.4.2",
			},
			"capacity": map[string]any{"memory": "16Gi"},
		},
		"env":     map[string]any{"GADGET_IDS": `{{ join .IDs "," }}`},
		"mounts":  []any{map[string]any{"hostPath": gadgetHostDir + "/{{ .ID }}", "containerPath": "/dev/gadget/{{ .ID }}", "perDevice": true}},
		"devices": []any{map[string]any{"hostPath": "/dev/null", "containerPath": "/dev/{{ .ID }}", "permissions": "rw", "perDevice": true}},
	}
}

func gadgetIDs(from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("gadget-%d", i))
	}
	return ids
}

// draState is what the DRA steps hand on to the next: the pods that must
// keep running, as last seen.
type draState struct {
	pods map[string]*corev1.Pod // name -> pod
}

// stepDRAPublish (a): the ConfigMap gets a gadget resource with api: dra;
// the node's ResourceSlices of driver gadget.example.com list its four
// devices with their attributes and capacity, the DeviceClass
// gadget.example.com is applied by the plugin (server-side) with the
// resource's name as its extendedResourceName, the driver's sockets are
// in the kubelet's dirs, and the resource is no device plugin (not in
// the Node's allocatable). The admission policy holds the plugin's
// account to its own node's slices.
func (f *fixture) stepDRAPublish(t *testing.T) {
	f.dra = draState{pods: map[string]*corev1.Pod{}}
	makeGadgetDirs(t, 6)
	plugin := f.pluginPod(t)
	applied := f.updateManifest(t, func(resources []any) []any { return append(resources, gadgetResource(4)) })
	t.Logf("ConfigMap updated: %s added, api: dra, 4 devices", gadget)
	published := f.waitGadgetDevices(t, gadgetIDs(0, 4), applied)
	classApplied := f.waitDeviceClass(t, applied)
	fmt.Printf("=== dra: ConfigMap applied → the node's ResourceSlices list 4 gadgets in %d ms, DeviceClass %s applied in %d ms\n",
		published.Sub(applied).Milliseconds(), gadgetDriver, classApplied.Sub(applied).Milliseconds())
	f.checkGadgetSlices(t, 4)
	f.waitDaemonSetReady(t, time.Minute) // /readyz: the driver registered with the kubelet too
	for _, sock := range []string{draPluginDir + "/" + gadgetDriver + "/dra.sock", draRegistryDir + "/" + gadgetDriver + "-reg.sock"} {
		if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("the driver's socket %s on the node: %v (mode %v)", sock, err, fi)
		}
	}
	// A DRA resource is published as slices, not as the Node's capacity.
	node, err := f.cs.CoreV1().Nodes().Get(f.ctx, f.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q, ok := node.Status.Allocatable[gadget]; ok {
		t.Errorf("the Node's allocatable has %s %s: an api: dra resource must not be a device plugin too", gadget, q.String())
	}
	samePod(t, "plugin pod", plugin, f.pluginPod(t))
	f.checkSlicePolicy(t)
}

// stepDRAClaimByAttribute (b): a pod whose ResourceClaimTemplate asks for
// two gadgets of generation 2 or more (a CEL selector on the published
// attribute) runs with exactly gadget-2 and gadget-3: the claim's
// allocation says so, and so does the container (env, per-device mounts,
// device nodes, from the claim's CDI spec on the node). How long the pod
// took to run is printed beside a device-plugin pod's.
func (f *fixture) stepDRAClaimByAttribute(t *testing.T) {
	const name = "dra-gen2"
	f.createClaimTemplate(t, name, 2, `device.attributes["`+gadgetDriver+`"].generation >= 2`)
	pod, took := f.startTimed(t, draPod(name, corev1.PodResourceClaim{Name: "gadgets", ResourceClaimTemplateName: new(name)}))
	f.dra.pods[name] = pod
	claim := f.podClaim(t, pod, "gadgets")
	ids := f.checkAllocation(t, claim, gadgetIDs(2, 4))
	checkGadgetContainer(t, name, parsePodinfo(t, f.containerLogs(t, name, "c")), ids)
	f.checkClaimSpec(t, claim)
	f.waitPreparedClaims(t, 1)

	// The same path for a device plugin's resource, in the same run: a pod
	// with one fpga (its devices and mounts also from a CDI spec).
	dp, dpTook := f.startTimed(t, podinfoPod("dra-compare-fpga", corev1.ResourceList{fpga: resource.MustParse("1")}))
	f.deletePodAndWait(t, dp.Name)
	fmt.Printf("=== dra: pod with a claim (2 gadgets) created → Running in %d ms; pod with a device plugin's resource (1 fpga) created → Running in %d ms\n",
		took.Milliseconds(), dpTook.Milliseconds())
}

// stepDRAExtendedResource (c): an unchanged pod asking for
// `limits: {example.com/gadget: 1}` runs, served through the DeviceClass's
// extendedResourceName: the scheduler made it a claim (the pod's
// extendedResourceClaimStatus), allocated one of the two gadgets left.
func (f *fixture) stepDRAExtendedResource(t *testing.T) {
	const name = "dra-limits"
	p := podinfoPod(name, corev1.ResourceList{gadget: resource.MustParse("1")})
	p.Spec.Containers[0].Args = []string{"/dev/gadget"}
	pod, took := f.startTimed(t, p)
	f.dra.pods[name] = pod
	status := pod.Status.ExtendedResourceClaimStatus
	if status == nil || status.ResourceClaimName == "" {
		t.Fatalf("%s: no extendedResourceClaimStatus: the pod was not served through DRA (%+v)", name, pod.Status)
	}
	if !slices.ContainsFunc(status.RequestMappings, func(m corev1.ContainerExtendedResourceRequest) bool {
		return m.ContainerName == "c" && m.ResourceName == gadget
	}) {
		t.Errorf("%s: request mappings %+v, want container c's %s", name, status.RequestMappings, gadget)
	}
	claim, err := f.cs.ResourceV1().ResourceClaims(podNS).Get(f.ctx, status.ResourceClaimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := f.checkAllocation(t, claim, nil)
	if len(ids) != 1 || !slices.Contains(gadgetIDs(0, 2), ids[0]) {
		t.Errorf("%s: allocated %v, want one of gadget-0 and gadget-1 (dra-gen2 holds 2 and 3)", name, ids)
	}
	checkGadgetContainer(t, name, parsePodinfo(t, f.containerLogs(t, name, "c")), ids)
	f.checkClaimSpec(t, claim)
	f.waitPreparedClaims(t, 2)
	fmt.Printf("=== dra: pod with limits %s: 1 (the DeviceClass's extendedResourceName) created → Running in %d ms\n", gadget, took.Milliseconds())
}

// stepDRASharedClaim (d): one ResourceClaim, two pods: both run with the
// same gadget (the last free one), both reserve the claim, and the claim
// is prepared once (one CDI spec).
func (f *fixture) stepDRASharedClaim(t *testing.T) {
	const claimName = "gadget-shared"
	claim := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimName, Namespace: podNS, Labels: map[string]string{draLabel: "true"}},
		Spec:       resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{gadgetRequest("gadget", 1, "")}}},
	}
	if _, err := f.cs.ResourceV1().ResourceClaims(podNS).Create(f.ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []podinfo
	for _, name := range []string{"dra-shared-1", "dra-shared-2"} {
		pod, _ := f.startTimed(t, draPod(name, corev1.PodResourceClaim{Name: "gadgets", ResourceClaimName: new(claimName)}))
		f.dra.pods[name] = pod
		got = append(got, parsePodinfo(t, f.containerLogs(t, name, "c")))
	}
	claim, err := f.cs.ResourceV1().ResourceClaims(podNS).Get(f.ctx, claimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := f.checkAllocation(t, claim, nil)
	if len(ids) != 1 {
		t.Fatalf("%s: allocated %v, want one gadget", claimName, ids)
	}
	for i, g := range got {
		checkGadgetContainer(t, fmt.Sprintf("dra-shared-%d", i+1), g, ids)
	}
	var reserved []string
	for _, r := range claim.Status.ReservedFor {
		reserved = append(reserved, r.Name)
	}
	slices.Sort(reserved)
	if !slices.Equal(reserved, []string{"dra-shared-1", "dra-shared-2"}) {
		t.Errorf("%s reserved for %v, want both pods", claimName, reserved)
	}
	f.checkClaimSpec(t, claim)
	f.waitPreparedClaims(t, 3)
	// Every gadget is taken now: gen2 holds two, the limits pod one, the
	// shared claim the last.
}

// stepDRAReload (e): the ConfigMap grows gadget from 4 to 6: the slices
// list gadget-4 and gadget-5, the running pods and the plugin pod go on
// untouched, and a claim asking for a gadget of index 4 or more (the
// reserved attribute) gets one of the new ones, with its own mount.
func (f *fixture) stepDRAReload(t *testing.T) {
	plugin := f.pluginPod(t)
	applied := f.updateManifest(t, func(resources []any) []any {
		return replaceResource(resources, gadget, gadgetResource(6))
	})
	published := f.waitGadgetDevices(t, gadgetIDs(0, 6), applied)
	fmt.Printf("=== dra: reload, 4 → 6 gadgets: ConfigMap applied → 6 in the node's ResourceSlices in %d ms\n", published.Sub(applied).Milliseconds())
	f.checkGadgetSlices(t, 6)
	f.waitDaemonSetReady(t, time.Minute)
	samePod(t, "plugin pod", plugin, f.pluginPod(t))
	f.checkDRAPodsRunning(t)

	const name = "dra-new"
	f.createClaimTemplate(t, name, 1, `device.attributes["`+gadgetDriver+`"].index >= 4`)
	pod, _ := f.startTimed(t, draPod(name, corev1.PodResourceClaim{Name: "gadgets", ResourceClaimTemplateName: new(name)}))
	f.dra.pods[name] = pod
	claim := f.podClaim(t, pod, "gadgets")
	ids := f.checkAllocation(t, claim, nil)
	if len(ids) != 1 || !slices.Contains(gadgetIDs(4, 6), ids[0]) {
		t.Errorf("%s: allocated %v, want gadget-4 or gadget-5 (index >= 4)", name, ids)
	}
	checkGadgetContainer(t, name, parsePodinfo(t, f.containerLogs(t, name, "c")), ids)
	f.checkClaimSpec(t, claim)
	f.waitPreparedClaims(t, 4)
}

// stepDRAPluginPodDeleted (f): the plugin pod deleted, the claims it
// prepared stay prepared: their pods run on and their CDI specs stay on
// the node while no plugin runs; the replacement publishes the slices
// again and counts the same prepared claims (from its checkpoint); a
// container of the shared claim restarted replays its CDI name and gets
// the same gadget. A pod deleted afterwards is unprepared by the new
// plugin: its claim's CDI spec goes.
func (f *fixture) stepDRAPluginPodDeleted(t *testing.T) {
	old := f.pluginPod(t)
	claims := f.runningClaims(t)
	if err := f.cs.CoreV1().Pods(pluginNS).Delete(f.ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "the old plugin pod gone", func() (bool, string) {
		_, err := f.cs.CoreV1().Pods(pluginNS).Get(f.ctx, old.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprintf("get: %v", err)
	})
	for _, c := range claims {
		if _, err := os.Stat(claimSpecFile(c.UID)); err != nil {
			t.Errorf("claim %s: its CDI spec, with no plugin running: %v", c.Name, err)
		}
	}
	poll(t, 2*time.Minute, "replacement plugin pod ready", func() (bool, string) {
		p, err := f.findPluginPod()
		if err != nil {
			return false, err.Error()
		}
		return p.UID != old.UID && podReady(p), fmt.Sprintf("pod %s ready=%v", p.Name, podReady(p))
	})
	f.waitGadgetDevices(t, gadgetIDs(0, 6), time.Now())
	f.checkDRAPodsRunning(t)
	for _, c := range claims {
		f.checkClaimSpec(t, c)
	}
	f.waitPreparedClaims(t, len(claims))

	// A container restarting now needs its claim's CDI spec (see step 5 for
	// why the exec's own exit status does not count).
	const restarted = "dra-shared-1"
	if _, err := run(f.ctx, t, f.kubectl, "exec", "-n", podNS, restarted, "-c", "c", "--", "/podinfo", "stop"); err != nil {
		t.Logf("kubectl exec podinfo stop: %v", err)
	}
	poll(t, 2*time.Minute, restarted+" restarted and running", func() (bool, string) {
		p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, restarted, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if len(p.Status.ContainerStatuses) != 1 {
			return false, "no container status"
		}
		s := p.Status.ContainerStatuses[0]
		return s.RestartCount >= 1 && s.State.Running != nil && s.Ready, fmt.Sprintf("restarts %d, state %+v", s.RestartCount, s.State)
	})
	f.dra.pods[restarted] = f.waitPodRunning(t, restarted, 10*time.Second)
	shared := f.podClaim(t, f.dra.pods[restarted], "gadgets")
	checkGadgetContainer(t, restarted+" (restarted)", parsePodinfo(t, f.containerLogs(t, restarted, "c")), f.checkAllocation(t, shared, nil))

	// Unprepared by the new plugin once the pod is gone.
	gen2 := f.podClaim(t, f.dra.pods["dra-gen2"], "gadgets")
	f.deletePodAndWait(t, "dra-gen2")
	delete(f.dra.pods, "dra-gen2")
	poll(t, time.Minute, "dra-gen2's claim unprepared (its CDI spec removed)", func() (bool, string) {
		_, err := os.Stat(claimSpecFile(gen2.UID))
		return os.IsNotExist(err), fmt.Sprintf("stat: %v", err)
	})
	poll(t, time.Minute, "dra-gen2's claim deleted with its pod", func() (bool, string) {
		_, err := f.cs.ResourceV1().ResourceClaims(podNS).Get(f.ctx, gen2.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprintf("get: %v", err)
	})
	f.waitPreparedClaims(t, len(claims)-1)
}

// stepDRAKubeletRestarted (g): the kubelet process restarted: the plugin
// pod and the claim pods run on untouched, the driver registers with the
// new kubelet by itself, and a new claim pod still runs (prepared through
// the new kubelet) and, deleted, is unprepared.
func (f *fixture) stepDRAKubeletRestarted(t *testing.T) {
	plugin := f.pluginPod(t)
	restartedAt := time.Now()
	mustRun(f.ctx, t, f.clusterScript, "restart-kubelet")
	f.waitNodeHeartbeatAfter(t, restartedAt)
	f.waitDaemonSetReady(t, time.Minute)
	samePod(t, "plugin pod", plugin, f.pluginPod(t))
	f.checkDRAPodsRunning(t)

	const name = "dra-after-kubelet-restart"
	// gadget-2, freed with dra-gen2 in the step before.
	f.createClaimTemplate(t, name, 1, `device.attributes["`+gadgetDriver+`"].generation == 2`)
	pod, took := f.startTimed(t, draPod(name, corev1.PodResourceClaim{Name: "gadgets", ResourceClaimTemplateName: new(name)}))
	claim := f.podClaim(t, pod, "gadgets")
	ids := f.checkAllocation(t, claim, []string{"gadget-2"})
	checkGadgetContainer(t, name, parsePodinfo(t, f.containerLogs(t, name, "c")), ids)
	fmt.Printf("=== dra: after the kubelet restart, a pod with a claim created → Running in %d ms\n", took.Milliseconds())
	f.deletePodAndWait(t, name)
	poll(t, time.Minute, name+"'s claim unprepared (its CDI spec removed)", func() (bool, string) {
		_, err := os.Stat(claimSpecFile(claim.UID))
		return os.IsNotExist(err), fmt.Sprintf("stat: %v", err)
	})
	f.checkDRAPodsRunning(t)
}

// stepDRASwitchAPI (h): with its claims gone, gadget is switched by a
// reload to a device plugin: its slices and the driver's sockets go, the
// Node offers 6, and a limits pod gets one through the device plugin.
// Then gadget leaves the manifest, and every DRA object the steps made is
// removed: no pod, claim, claim template, DeviceClass or slice is left.
func (f *fixture) stepDRASwitchAPI(t *testing.T) {
	f.deleteDRAWorkloads(t)
	f.dra.pods = map[string]*corev1.Pod{}
	f.waitPreparedClaims(t, 0)
	if left, _ := filepath.Glob(filepath.Join(hostCDISpecDir, "simple-device-plugin-dra_"+gadgetDriver+"_*")); len(left) > 0 {
		t.Errorf("claims' CDI specs left once every claim is gone: %v", left)
	}

	plugin := f.pluginPod(t)
	applied := f.updateManifest(t, func(resources []any) []any {
		r := gadgetResource(6)
		r["api"] = "devicePlugin"
		delete(r, "dra")
		return replaceResource(resources, gadget, r)
	})
	gone := f.waitGadgetDevices(t, nil, applied)
	f.waitAllocatable(t, map[string]int64{gadget: 6}, 2*time.Minute)
	offered := time.Now()
	for _, sock := range []string{draPluginDir + "/" + gadgetDriver + "/dra.sock", draRegistryDir + "/" + gadgetDriver + "-reg.sock"} {
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("the driver's socket %s is still on the node: %v", sock, err)
		}
	}
	samePod(t, "plugin pod", plugin, f.pluginPod(t))
	const name = "dra-switched"
	p := podinfoPod(name, corev1.ResourceList{gadget: resource.MustParse("1")})
	p.Spec.Containers[0].Args = []string{"/dev/gadget"}
	pod, took := f.startTimed(t, p)
	if pod.Status.ExtendedResourceClaimStatus != nil {
		t.Errorf("%s was served through DRA (%+v), want the device plugin", name, pod.Status.ExtendedResourceClaimStatus)
	}
	ids := f.podResources(t, name)["c"][gadget]
	if len(ids) != 1 {
		t.Errorf("%s: the kubelet gave it %s %v, want one device", name, gadget, ids)
	}
	checkGadgetContainer(t, name, parsePodinfo(t, f.containerLogs(t, name, "c")), ids)
	f.deletePodAndWait(t, name)
	fmt.Printf("=== dra: api switched to devicePlugin by a reload: slices gone in %d ms, allocatable 6 within %d ms; its pod created → Running in %d ms\n",
		gone.Sub(applied).Milliseconds(), offered.Sub(applied).Milliseconds(), took.Milliseconds())

	// Back to the manifest before the DRA steps; nothing of theirs left.
	f.updateManifest(t, func(resources []any) []any {
		return slices.DeleteFunc(resources, func(r any) bool { return r.(map[string]any)["name"] == gadget })
	})
	f.waitAllocatable(t, map[string]int64{gadget: 0}, 2*time.Minute)
	f.removeDRALeftovers(t)
	f.checkNoDRALeft(t)
}

// ---------------------------------------------------------------- objects

// gadgetRequest asks for count gadgets of the class gadget.example.com,
// those selector picks ("": any).
func gadgetRequest(name string, count int64, selector string) resourcev1.DeviceRequest {
	exact := &resourcev1.ExactDeviceRequest{DeviceClassName: gadgetDriver, AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: count}
	if selector != "" {
		exact.Selectors = []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: selector}}}
	}
	return resourcev1.DeviceRequest{Name: name, Exactly: exact}
}

// createClaimTemplate makes a ResourceClaimTemplate of one request,
// "gadget", for count gadgets that selector picks.
func (f *fixture) createClaimTemplate(t *testing.T, name string, count int64, selector string) {
	t.Helper()
	tmpl := &resourcev1.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: podNS, Labels: map[string]string{draLabel: "true"}},
		Spec: resourcev1.ResourceClaimTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{draLabel: "true"}},
			Spec:       resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{gadgetRequest("gadget", count, selector)}}},
		},
	}
	if _, err := f.cs.ResourceV1().ResourceClaimTemplates(podNS).Create(f.ctx, tmpl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// draPod is a podinfo pod whose container uses the pod's one claim, and
// shows the files of the gadgets' mounts.
func draPod(name string, claim corev1.PodResourceClaim) *corev1.Pod {
	p := podinfoPod(name, nil)
	p.Spec.ResourceClaims = []corev1.PodResourceClaim{claim}
	p.Spec.Containers[0].Args = []string{"/dev/gadget"}
	p.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: claim.Name}}
	return p
}

// replaceResource puts r in place of the resource named name.
func replaceResource(resources []any, name string, r map[string]any) []any {
	for i, res := range resources {
		if res.(map[string]any)["name"] == name {
			resources[i] = r
		}
	}
	return resources
}

// makeGadgetDirs creates the host directories of the gadgets' per-device
// mounts, each with a file naming its gadget.
func makeGadgetDirs(t *testing.T, n int) {
	t.Helper()
	for _, id := range gadgetIDs(0, n) {
		dir := filepath.Join(gadgetHostDir, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ID"), []byte(id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ---------------------------------------------------------------- waits

// updateManifest edits the ConfigMap's manifest and returns when the
// update was accepted.
func (f *fixture) updateManifest(t *testing.T, edit func([]any) []any) time.Time {
	t.Helper()
	cm, err := f.cs.CoreV1().ConfigMaps(pluginNS).Get(f.ctx, pluginName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["manifest.yaml"] = editResources(t, cm.Data["manifest.yaml"], edit)
	if _, err := f.cs.CoreV1().ConfigMaps(pluginNS).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// fastPoll is poll more often, for what the test times; it returns when
// check first reported done.
func fastPoll(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		now := time.Now()
		done, status := check()
		if done {
			return now
		}
		if now.After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gadgetDevices lists the devices in the node's ResourceSlices of the
// gadget driver, by name.
func (f *fixture) gadgetDevices() (map[string]resourcev1.Device, []resourcev1.ResourceSlice, error) {
	list, err := f.cs.ResourceV1().ResourceSlices().List(f.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + f.node + ",spec.driver=" + gadgetDriver})
	if err != nil {
		return nil, nil, err
	}
	devices := map[string]resourcev1.Device{}
	for _, s := range list.Items {
		for _, d := range s.Spec.Devices {
			devices[d.Name] = d
		}
	}
	return devices, list.Items, nil
}

// waitGadgetDevices waits until the node's slices list exactly ids (none:
// no slice left) and returns when it saw them.
func (f *fixture) waitGadgetDevices(t *testing.T, ids []string, since time.Time) time.Time {
	t.Helper()
	want := slices.Sorted(slices.Values(ids))
	return fastPoll(t, 2*time.Minute, fmt.Sprintf("the node's %s slices listing %v", gadgetDriver, want), func() (bool, string) {
		devices, sl, err := f.gadgetDevices()
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for name := range devices {
			got = append(got, name)
		}
		slices.Sort(got)
		if len(want) == 0 {
			return len(sl) == 0, fmt.Sprintf("%d slices, devices %v", len(sl), got)
		}
		return slices.Equal(got, want), fmt.Sprintf("%d slices, devices %v (%.1fs)", len(sl), got, time.Since(since).Seconds())
	})
}

// waitDeviceClass waits for the DeviceClass the plugin applies, checks
// it, and returns when it saw it.
func (f *fixture) waitDeviceClass(t *testing.T, since time.Time) time.Time {
	t.Helper()
	var class *resourcev1.DeviceClass
	seen := fastPoll(t, time.Minute, "DeviceClass "+gadgetDriver, func() (bool, string) {
		c, err := f.cs.ResourceV1().DeviceClasses().Get(f.ctx, gadgetDriver, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		class = c
		return true, ""
	})
	if got := class.Spec.ExtendedResourceName; got == nil || *got != gadget {
		t.Errorf("DeviceClass %s: extendedResourceName %v, want %s", gadgetDriver, got, gadget)
	}
	wantSelector := `device.driver == "` + gadgetDriver + `"`
	if !slices.ContainsFunc(class.Spec.Selectors, func(s resourcev1.DeviceSelector) bool { return s.CEL != nil && s.CEL.Expression == wantSelector }) {
		t.Errorf("DeviceClass %s: selectors %+v, want the CEL %s", gadgetDriver, class.Spec.Selectors, wantSelector)
	}
	if !slices.ContainsFunc(class.ManagedFields, func(m metav1.ManagedFieldsEntry) bool {
		return m.Manager == "simple-device-plugin" && m.Operation == metav1.ManagedFieldsOperationApply
	}) {
		t.Errorf("DeviceClass %s: managed fields %v, want an Apply by simple-device-plugin", gadgetDriver, managers(class.ManagedFields))
	}
	return seen
}

func managers(fields []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, m := range fields {
		out = append(out, string(m.Operation)+" by "+m.Manager)
	}
	return out
}

// checkGadgetSlices checks the node's slices of the gadget driver: the
// pool is the node's, and each of the n devices has the manifest's
// attributes and capacity and the reserved index and id, and no taint.
func (f *fixture) checkGadgetSlices(t *testing.T, n int) {
	t.Helper()
	devices, sl, err := f.gadgetDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sl {
		if s.Spec.Pool.Name != f.node || s.Spec.NodeName == nil || *s.Spec.NodeName != f.node {
			t.Errorf("slice %s: pool %q, nodeName %v; want both the node's, %s", s.Name, s.Spec.Pool.Name, s.Spec.NodeName, f.node)
		}
	}
	for i, id := range gadgetIDs(0, n) {
		d, ok := devices[id]
		if !ok {
			t.Errorf("device %s not in the slices", id)
			continue
		}
		want := map[string]string{
			"model":      "string virtual-gadget",
			"generation": "int " + strconv.Itoa(i),
			"firmware":   "version 1.4.2",
			"index":      "int " + strconv.Itoa(i),
			"id":         "string " + id,
		}
		for name, w := range want {
			if got := attribute(d, name); got != w {
				t.Errorf("device %s: attribute %s = %q, want %q", id, name, got, w)
			}
		}
		if q, ok := capacity(d, "memory"); !ok || q.Cmp(resource.MustParse("16Gi")) != 0 {
			t.Errorf("device %s: capacity memory = %v (set %v), want 16Gi", id, q.String(), ok)
		}
		if len(d.Taints) > 0 {
			t.Errorf("device %s: taints %+v, want none (healthy)", id, d.Taints)
		}
	}
}

// attribute is a device's attribute as "TYPE VALUE", by its name in the
// driver's domain (written with the domain or without).
func attribute(d resourcev1.Device, name string) string {
	a, ok := d.Attributes[resourcev1.QualifiedName(gadgetDriver+"/"+name)]
	if !ok {
		a, ok = d.Attributes[resourcev1.QualifiedName(name)]
	}
	switch {
	case !ok:
		return ""
	case a.IntValue != nil:
		return fmt.Sprintf("int %d", *a.IntValue)
	case a.BoolValue != nil:
		return fmt.Sprintf("bool %v", *a.BoolValue)
	case a.VersionValue != nil:
		return "version " + *a.VersionValue
	case a.StringValue != nil:
		return "string " + *a.StringValue
	}
	return "?"
}

func capacity(d resourcev1.Device, name string) (resource.Quantity, bool) {
	c, ok := d.Capacity[resourcev1.QualifiedName(gadgetDriver+"/"+name)]
	if !ok {
		c, ok = d.Capacity[resourcev1.QualifiedName(name)]
	}
	return c.Value, ok
}

// checkSlicePolicy: as the plugin's service account, on this node (what
// its pod's token says), writing a ResourceSlice of another node is
// refused by the admission policy, and so is any slice written with a
// token that names no node.
func (f *fixture) checkSlicePolicy(t *testing.T) {
	t.Helper()
	as := func(extra map[string][]string) kubernetes.Interface {
		cfg := rest.CopyConfig(f.cfg)
		cfg.Impersonate = rest.ImpersonationConfig{
			UserName: pluginAccount,
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + pluginNS, "system:authenticated"},
			Extra:    extra,
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	slice := func(node string) *resourcev1.ResourceSlice {
		return &resourcev1.ResourceSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "sdp-e2e-policy-check"},
			Spec: resourcev1.ResourceSliceSpec{
				Driver:   gadgetDriver,
				Pool:     resourcev1.ResourcePool{Name: node, Generation: 1, ResourceSliceCount: 1},
				NodeName: new(node),
				Devices:  []resourcev1.Device{{Name: "policy-check"}},
			},
		}
	}
	onThisNode := as(map[string][]string{"authentication.kubernetes.io/node-name": {f.node}})
	for _, tc := range []struct {
		what string
		cs   kubernetes.Interface
		node string
		want string
	}{
		{"another node's slice", onThisNode, "sdp-e2e-elsewhere", "may write only that node's ResourceSlices"},
		{"a slice, with a token naming no node", as(nil), f.node, "only with its pod's token"},
	} {
		_, err := tc.cs.ResourceV1().ResourceSlices().Create(f.ctx, slice(tc.node), metav1.CreateOptions{})
		if err == nil {
			f.cs.ResourceV1().ResourceSlices().Delete(context.Background(), "sdp-e2e-policy-check", metav1.DeleteOptions{})
			t.Errorf("the plugin's account created %s: want the admission policy to refuse it", tc.what)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("the plugin's account creating %s: %v; want the policy's %q", tc.what, err, tc.want)
			continue
		}
		t.Logf("the plugin's account creating %s: refused: %v", tc.what, err)
	}
}

// startTimed creates pod, labelled as the DRA steps' (for the cleanup),
// and waits, polling often, until it runs and is ready; it returns the pod
// and how long that took from the create call.
func (f *fixture) startTimed(t *testing.T, pod *corev1.Pod) (*corev1.Pod, time.Duration) {
	t.Helper()
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[draLabel] = "true"
	start := time.Now()
	if _, err := f.cs.CoreV1().Pods(podNS).Create(f.ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	running := fastPoll(t, 2*time.Minute, "pod "+pod.Name+" running", func() (bool, string) {
		p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got = p
		return p.Status.Phase == corev1.PodRunning && podReady(p), podSummary(p) + " " + conditions(p)
	})
	t.Logf("pod %s running after %.1fs", pod.Name, running.Sub(start).Seconds())
	return got, running.Sub(start)
}

// deletePodAndWait deletes a pod, with its grace period (the kubelet then
// unprepares its claims as it stops it), and waits until it is gone.
func (f *fixture) deletePodAndWait(t *testing.T, name string) {
	t.Helper()
	err := f.cs.CoreV1().Pods(podNS).Delete(f.ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	poll(t, 2*time.Minute, "pod "+name+" gone", func() (bool, string) {
		_, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprintf("get: %v", err)
	})
}

// waitNodeHeartbeatAfter waits until the Node is Ready with a heartbeat
// from after since: a restarted kubelet posted it.
func (f *fixture) waitNodeHeartbeatAfter(t *testing.T, since time.Time) {
	t.Helper()
	poll(t, 2*time.Minute, "node status posted by the new kubelet", func() (bool, string) {
		node, err := f.cs.CoreV1().Nodes().Get(f.ctx, f.node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue && c.LastHeartbeatTime.After(since.Add(time.Second)),
					fmt.Sprintf("Ready=%s heartbeat %s", c.Status, c.LastHeartbeatTime)
			}
		}
		return false, "no Ready condition"
	})
}

var preparedClaimsLine = regexp.MustCompile(`(?m)^sdp_dra_prepared_claims\{resource="` + regexp.QuoteMeta(gadget) + `"\} (\S+)$`)

// waitPreparedClaims waits until the plugin's /metrics counts n prepared
// claims of the gadget resource. A count that never comes fails the step
// but lets it go on: what follows checks the claims themselves.
func (f *fixture) waitPreparedClaims(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var status string
	for {
		status = f.preparedClaims(n)
		if status == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("sdp_dra_prepared_claims %d: not after 1m: %s", n, status)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// preparedClaims is "" when the plugin's /metrics counts n prepared claims
// of the gadget resource (none: the series may be absent), else what it
// says.
func (f *fixture) preparedClaims(n int) string {
	p, err := f.findPluginPod()
	if err != nil {
		return err.Error()
	}
	body, err := httpGet("http://" + p.Status.PodIP + ":8080/metrics")
	if err != nil {
		return err.Error()
	}
	m := preparedClaimsLine.FindStringSubmatch(body)
	switch {
	case m == nil && n == 0:
		return ""
	case m == nil:
		return "no sdp_dra_prepared_claims for " + gadget
	case m[1] != strconv.Itoa(n):
		return "sdp_dra_prepared_claims " + m[1]
	}
	return ""
}

// ---------------------------------------------------------------- claims

// podClaim is the ResourceClaim the pod's claim name stands for.
func (f *fixture) podClaim(t *testing.T, pod *corev1.Pod, name string) *resourcev1.ResourceClaim {
	t.Helper()
	var claimName string
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.Name == name && s.ResourceClaimName != nil {
			claimName = *s.ResourceClaimName
		}
	}
	for _, c := range pod.Spec.ResourceClaims {
		if c.Name == name && c.ResourceClaimName != nil {
			claimName = *c.ResourceClaimName
		}
	}
	if claimName == "" {
		t.Fatalf("pod %s: no claim for %s in %+v", pod.Name, name, pod.Status.ResourceClaimStatuses)
	}
	claim, err := f.cs.ResourceV1().ResourceClaims(podNS).Get(f.ctx, claimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return claim
}

// checkAllocation checks the claim is allocated on this node's pool of the
// gadget driver, and returns its devices, sorted; want (nil: any) is
// what they must be.
func (f *fixture) checkAllocation(t *testing.T, claim *resourcev1.ResourceClaim, want []string) []string {
	t.Helper()
	if claim.Status.Allocation == nil {
		t.Fatalf("claim %s: not allocated", claim.Name)
	}
	var ids []string
	for _, r := range claim.Status.Allocation.Devices.Results {
		if r.Driver != gadgetDriver || r.Pool != f.node {
			t.Errorf("claim %s: device %s of driver %s, pool %s; want driver %s, the node's pool", claim.Name, r.Device, r.Driver, r.Pool, gadgetDriver)
			continue
		}
		ids = append(ids, r.Device)
	}
	slices.Sort(ids)
	if want != nil && !slices.Equal(ids, want) {
		t.Errorf("claim %s: allocated %v, want exactly %v", claim.Name, ids, want)
	}
	t.Logf("claim %s (%s): %v", claim.Name, claim.UID, ids)
	return ids
}

// claimSpecFile is the CDI spec the plugin writes for a prepared claim.
func claimSpecFile(uid types.UID) string {
	return filepath.Join(hostCDISpecDir, "simple-device-plugin-dra_"+gadgetDriver+"_"+string(uid)+".yaml")
}

// checkClaimSpec reads a prepared claim's CDI spec on the node: kind
// gadget.example.com/claim, one device per request of the claim.
func (f *fixture) checkClaimSpec(t *testing.T, claim *resourcev1.ResourceClaim) {
	t.Helper()
	kind, got, err := readSpecFile(claimSpecFile(claim.UID))
	if err != nil {
		t.Errorf("claim %s: its CDI spec: %v", claim.Name, err)
		return
	}
	var want []string
	for _, r := range claim.Spec.Devices.Requests {
		want = append(want, string(claim.UID)+"-"+r.Name)
	}
	if claim.Status.Allocation != nil && len(want) == 0 {
		// An extended resource's claim: its requests are the scheduler's.
		for _, r := range claim.Status.Allocation.Devices.Results {
			if name := string(claim.UID) + "-" + r.Request; !slices.Contains(want, name) {
				want = append(want, name)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if kind != gadgetDriver+"/claim" || !slices.Equal(got, want) {
		t.Errorf("claim %s: CDI spec kind %s, devices %v; want %s/claim, %v", claim.Name, kind, got, gadgetDriver, want)
	}
}

// runningClaims are the claims of the DRA steps' running pods, each once.
func (f *fixture) runningClaims(t *testing.T) []*resourcev1.ResourceClaim {
	t.Helper()
	var out []*resourcev1.ResourceClaim
	seen := map[types.UID]bool{}
	for _, name := range slices.Sorted(maps.Keys(f.dra.pods)) {
		pod, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var claimName string
		if s := pod.Status.ExtendedResourceClaimStatus; s != nil {
			claimName = s.ResourceClaimName
		}
		for _, c := range pod.Spec.ResourceClaims {
			claimName = f.podClaim(t, pod, c.Name).Name
		}
		claim, err := f.cs.ResourceV1().ResourceClaims(podNS).Get(f.ctx, claimName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("pod %s's claim %q: %v", name, claimName, err)
		}
		if !seen[claim.UID] {
			seen[claim.UID] = true
			out = append(out, claim)
		}
	}
	return out
}

// checkDRAPodsRunning checks the DRA steps' pods still run, untouched
// since last seen.
func (f *fixture) checkDRAPodsRunning(t *testing.T) {
	t.Helper()
	for name, before := range f.dra.pods {
		after := f.waitPodRunning(t, name, 30*time.Second)
		samePod(t, "pod "+name, before, after)
	}
}

// checkGadgetContainer compares what a container got with what the
// manifest declares for the gadgets ids: GADGET_IDS naming them (in any
// order), a per-device mount of each one's host directory (its ID file
// inside), a device node each; and no other gadget's.
func checkGadgetContainer(t *testing.T, name string, got podinfo, ids []string) {
	t.Helper()
	env := strings.Split(got.env["GADGET_IDS"], ",")
	slices.Sort(env)
	if want := slices.Sorted(slices.Values(ids)); !slices.Equal(env, want) {
		t.Errorf("%s: env GADGET_IDS=%q, want %v", name, got.env["GADGET_IDS"], want)
	}
	for _, id := range ids {
		if m, want := got.mounts["/dev/gadget/"+id], "root="+gadgetHostDir+"/"+id+" rw"; m != want {
			t.Errorf("%s: mount /dev/gadget/%s: %q, want %q", name, id, m, want)
		}
		if f := got.files["/dev/gadget/"+id+"/ID"]; f != id {
			t.Errorf("%s: file /dev/gadget/%s/ID: %q, want %q", name, id, f, id)
		}
		if d := got.devices["/dev/"+id]; d != "char 1:3" {
			t.Errorf("%s: device /dev/%s: %q, want char 1:3", name, id, d)
		}
	}
	gadgetNode := regexp.MustCompile(`^/dev/(gadget/)?(gadget-\d+)$`)
	for _, paths := range []map[string]string{got.mounts, got.devices} {
		for path := range paths {
			if m := gadgetNode.FindStringSubmatch(path); m != nil && !slices.Contains(ids, m[2]) {
				t.Errorf("%s: %s, of a gadget it was not given (it has %v)", name, path, ids)
			}
		}
	}
	if !t.Failed() {
		t.Logf("%s: GADGET_IDS, mounts and device nodes as the manifest says for %v", name, ids)
	}
}

// ---------------------------------------------------------------- cleanup

// deleteDRAWorkloads deletes the DRA steps' pods, then their claims and
// claim templates, and waits until they are gone: the pods with their
// grace period, so the kubelet unprepares their claims while the plugin
// still runs.
func (f *fixture) deleteDRAWorkloads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	selector := metav1.ListOptions{LabelSelector: draLabel}
	var errs []error
	pods := f.cs.CoreV1().Pods(podNS)
	errs = append(errs, pods.DeleteCollection(ctx, metav1.DeleteOptions{}, selector))
	claims := f.cs.ResourceV1().ResourceClaims(podNS)
	templates := f.cs.ResourceV1().ResourceClaimTemplates(podNS)
	errs = append(errs, templates.DeleteCollection(ctx, metav1.DeleteOptions{}, selector))
	errs = append(errs, claims.DeleteCollection(ctx, metav1.DeleteOptions{}, selector))
	for {
		p, err1 := pods.List(ctx, selector)
		c, err2 := claims.List(ctx, metav1.ListOptions{})
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, err)
			break
		}
		// Claims the scheduler made for a limits pod carry no label of
		// ours: any claim left counts.
		if len(p.Items) == 0 && len(c.Items) == 0 {
			break
		}
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("left after 2 minutes: %d pods, %d claims", len(p.Items), len(c.Items)))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("deleting the DRA steps' pods and claims: %v", err)
	}
}

// removeDRALeftovers deletes the DeviceClass and any ResourceSlice of the
// gadget driver (the plugin's to delete, unless a failure cut a step
// short), and the gadgets' host directories.
func (f *fixture) removeDRALeftovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if err := f.cs.ResourceV1().DeviceClasses().Delete(ctx, gadgetDriver, metav1.DeleteOptions{}); err == nil {
		t.Logf("DeviceClass %s deleted (the plugin had left it)", gadgetDriver)
	} else if !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	errs = append(errs, f.cs.ResourceV1().ResourceSlices().DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{FieldSelector: "spec.driver=" + gadgetDriver}))
	errs = append(errs, os.RemoveAll(gadgetHostDir))
	if err := errors.Join(errs...); err != nil {
		t.Errorf("removing the DRA steps' leftovers: %v", err)
	}
}

// checkNoDRALeft: no pod, claim, claim template, DeviceClass or
// ResourceSlice of the DRA steps is left.
func (f *fixture) checkNoDRALeft(t *testing.T) {
	t.Helper()
	poll(t, time.Minute, "nothing of the DRA steps left", func() (bool, string) {
		var left []string
		count := func(what string, n int, err error) {
			if err != nil {
				left = append(left, what+": "+err.Error())
			} else if n > 0 {
				left = append(left, fmt.Sprintf("%d %s", n, what))
			}
		}
		pods, err := f.cs.CoreV1().Pods(podNS).List(f.ctx, metav1.ListOptions{LabelSelector: draLabel})
		if err == nil {
			count("pods", len(pods.Items), nil)
		} else {
			count("pods", 0, err)
		}
		claims, err := f.cs.ResourceV1().ResourceClaims(podNS).List(f.ctx, metav1.ListOptions{})
		if err == nil {
			count("claims", len(claims.Items), nil)
		} else {
			count("claims", 0, err)
		}
		templates, err := f.cs.ResourceV1().ResourceClaimTemplates(podNS).List(f.ctx, metav1.ListOptions{})
		if err == nil {
			count("claim templates", len(templates.Items), nil)
		} else {
			count("claim templates", 0, err)
		}
		sl, err := f.cs.ResourceV1().ResourceSlices().List(f.ctx, metav1.ListOptions{FieldSelector: "spec.driver=" + gadgetDriver})
		if err == nil {
			count("slices", len(sl.Items), nil)
		} else {
			count("slices", 0, err)
		}
		if _, err := f.cs.ResourceV1().DeviceClasses().Get(f.ctx, gadgetDriver, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("DeviceClass %s (%v)", gadgetDriver, err))
		}
		return len(left) == 0, strings.Join(left, "; ")
	})
}
