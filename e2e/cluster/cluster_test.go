package cluster

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestCluster is the end-to-end test on a real single-node cluster that
// cluster.sh brought up: the deploy/ base installed with kubectl apply -k,
// the example manifest served by one DaemonSet pod, a pod whose containers
// ask for several resources, a hot reload through the ConfigMap, the plugin
// pod and the kubelet restarted, a request that cannot fit, the host's
// own device nodes served as they come and go, a resource served as a DRA
// driver (claims by attribute, a plain limits: pod, a shared claim, a
// reload, the plugin pod and the kubelet restarted, a switch back to a
// device plugin), and a node reboot; then
// the same manifest served by the node service (deploy/node-service)
// through three reboots, still following the ConfigMap. The steps run in
// order; the first failure stops the rest.
func TestCluster(t *testing.T) {
	f := newFixture(t)
	// The plugin's CDI specs outlive it on purpose; the test leaves none.
	t.Cleanup(func() {
		if out, err := exec.Command(repoRoot+"/bin/simple-device-plugin", "cleanup", "--cdi-spec-dir", hostCDISpecDir).CombinedOutput(); err != nil {
			t.Errorf("cleanup: %v\n%s", err, out)
		}
	})
	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"1_install", f.stepInstall},
		{"2_daemonset_ready", f.stepDaemonSetReady},
		{"3_mixed_pod", f.stepMixedPod},
		{"4_hot_reload", f.stepHotReload},
		{"5_restarts", f.stepRestarts},
		{"6_insufficient", f.stepInsufficient},
		{"7_spec_follows_the_manifest", f.stepSpecFollowsTheManifest},
		{"8_discover_hotplug", f.stepDiscoverHotplug},
		{"9_dra_publish", f.stepDRAPublish},
		{"10_dra_claim_by_attribute", f.stepDRAClaimByAttribute},
		{"11_dra_extended_resource", f.stepDRAExtendedResource},
		{"12_dra_shared_claim", f.stepDRASharedClaim},
		{"13_dra_reload", f.stepDRAReload},
		{"14_dra_plugin_pod_deleted", f.stepDRAPluginPodDeleted},
		{"15_dra_kubelet_restarted", f.stepDRAKubeletRestarted},
		{"16_dra_switch_api", f.stepDRASwitchAPI},
		{"17_reboot_daemonset_mode", f.stepRebootDaemonSetMode},
		{"18_uninstall", f.stepUninstall},
		{"19_node_service_install", f.stepNodeServiceInstall},
		{"20_reboot_node_service", f.stepRebootNodeService},
		{"21_node_service_sync", f.stepNodeServiceSync},
		{"22_node_service_remove", f.stepNodeServiceRemove},
	}
	for _, s := range steps {
		start := time.Now()
		ok := t.Run(s.name, s.run)
		fmt.Printf("=== step %s: %s in %.1fs\n", s.name, map[bool]string{true: "ok", false: "FAILED"}[ok], time.Since(start).Seconds())
		if !ok {
			f.diagnose(t)
			t.FailNow()
		}
	}
}

// Resource names of the example manifest, and the one step 4 adds.
const (
	fpga   = "example.com/fpga"
	seat   = "example.com/license-seat"
	vaccel = "example.com/vaccel-share"
	dongle = "example.com/dongle"
	acc    = "example.com/vendor-acc" // names a vendor's CDI devices that no spec defines

	pluginNS   = "simple-device-plugin"
	pluginName = "simple-device-plugin"
	mixedPod   = "pod-mixed"
	podNS      = "default"
)

// What the node offers after install, and after the step 4 edit
// (0: absent or zero).
var (
	installed = map[string]int64{fpga: 4, seat: 3, vaccel: 16}
	reloaded  = map[string]int64{fpga: 6, seat: 0, vaccel: 16, dongle: 2, acc: 0}
	// The resources a plugin pod started after the step 4 edit serves
	// (vendor-acc with no healthy device). Not license-seat, though the
	// mixed pod still holds one: that pod never served it.
	servedAfterReload = []string{fpga, vaccel, dongle, acc}
)

// stepInstall: make image, import it, apply the test overlay of deploy/.
func (f *fixture) stepInstall(t *testing.T) {
	f.makeHostFixture(t)
	tarball, err := filepath.Abs("_out/images/simple-device-plugin.tar")
	if err != nil {
		t.Fatal(err)
	}
	mustRun(f.ctx, t, "make", "-C", repoRoot, "image", "IMAGE="+pluginImage, "IMAGE_TAR="+tarball)
	mustRun(f.ctx, t, f.clusterScript, "import", tarball)
	t.Log(mustRun(f.ctx, t, f.kubectl, "apply", "-k", "overlay"))
}

// stepDaemonSetReady: the plugin pod becomes ready (/readyz: every resource
// registered) and the Node offers every resource of the manifest.
func (f *fixture) stepDaemonSetReady(t *testing.T) {
	f.waitDaemonSetReady(t, 3*time.Minute)
	f.waitAllocatable(t, installed, time.Minute)
	pod := f.pluginPod(t)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		body, err := httpGet("http://" + pod.Status.PodIP + ":8080" + path)
		if err != nil {
			t.Errorf("GET %s of the plugin pod: %v", path, err)
		} else if path == "/metrics" && !strings.Contains(body, "# TYPE") {
			t.Errorf("GET /metrics: no Prometheus text:\n%.500s", body)
		}
	}
	f.registrations = f.kubeletRegistrations(t)
	t.Logf("kubelet registrations: %v", f.registrations)
	for name := range installed {
		if f.registrations[name] < 1 {
			t.Errorf("kubelet counted no registration of %s", name)
		}
	}
}

// stepMixedPod: the pod whose two containers ask for several resources
// runs, and each container got exactly what the manifest says for the
// devices the kubelet assigned it.
func (f *fixture) stepMixedPod(t *testing.T) {
	pod := f.waitPodRunning(t, mixedPod, 2*time.Minute)
	sawRunning := time.Now()
	assigned := f.podResources(t, mixedPod)
	t.Logf("devices assigned (kubelet pod-resources API): %v", assigned)
	f.mixedBefore = pod
	f.mixedDevices = assigned

	// The plugin tells the same: which container holds each device, and
	// how many are free (the rest of the step checks these are the devices
	// each container really got).
	shown, _ := f.checkHolders(t, slices.Sorted(maps.Keys(installed)), time.Time{})
	ready := readySince(pod)
	fmt.Printf("=== who holds what: the mixed pod's devices in the plugin's /metrics %.1fs after the pod was Ready (%s, whole seconds), %.1fs after the test saw it Running\n",
		shown.Sub(ready).Seconds(), ready.Format(time.TimeOnly), shown.Sub(sawRunning).Seconds())

	want := map[string]map[string]int{
		"trainer": {fpga: 2, seat: 1, vaccel: 4},
		"sidecar": {fpga: 1, vaccel: 2},
	}
	seen := map[string]string{} // device ID -> container, to check no device is shared
	for _, c := range pod.Spec.Containers {
		ids := assigned[c.Name]
		for res, n := range want[c.Name] {
			if len(ids[res]) != n {
				t.Errorf("%s: %d %s devices assigned, want %d", c.Name, len(ids[res]), res, n)
			}
			for _, id := range ids[res] {
				if other, dup := seen[res+"/"+id]; dup {
					t.Errorf("%s %s given to both %s and %s", res, id, other, c.Name)
				}
				seen[res+"/"+id] = c.Name
			}
		}
		logs := f.containerLogs(t, mixedPod, c.Name)
		got := parsePodinfo(t, logs)
		checkContainer(t, c.Name, got, ids)
		f.checkAnnotations(t, c.Name, ids)
	}
	// The device nodes and per-device mounts came from the CDI spec the
	// plugin wrote on the node: the Allocate answer no longer has them.
	f.checkSpecFile(t, fpga, "fpga-0", "fpga-1", "fpga-2", "fpga-3")
	// Allocation policies: vaccel-share hands out the lowest first, in
	// container order; fpga packs a container's devices on one NUMA node.
	if got := assigned["trainer"][vaccel]; !slices.Equal(got, []string{"vaccel-share-0", "vaccel-share-1", "vaccel-share-2", "vaccel-share-3"}) {
		t.Errorf("trainer's vaccel-share = %v, want the four lowest (allocationPolicy first)", got)
	}
	if got := assigned["trainer"][fpga]; !(slices.Equal(got, []string{"fpga-0", "fpga-1"}) || slices.Equal(got, []string{"fpga-2", "fpga-3"})) {
		t.Errorf("trainer's fpga = %v, want both on one NUMA node (allocationPolicy packed)", got)
	}
}

// stepHotReload: editing the ConfigMap grows fpga, adds dongle and removes
// license-seat; the Node follows, and neither the plugin pod nor the
// running pod restarts.
func (f *fixture) stepHotReload(t *testing.T) {
	pluginBefore := f.pluginPod(t)
	regBefore := f.kubeletRegistrations(t)

	cm, err := f.cs.CoreV1().ConfigMaps(pluginNS).Get(f.ctx, pluginName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	edited := editManifest(t, cm.Data["manifest.yaml"])
	cm.Data["manifest.yaml"] = edited
	if _, err := f.cs.CoreV1().ConfigMaps(pluginNS).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ConfigMap updated: fpga 4 -> 6, dongle and vendor-acc added, license-seat removed")
	f.waitAllocatable(t, reloaded, 2*time.Minute)
	f.waitDaemonSetReady(t, time.Minute)
	// The kubelet has the new devices: so has the CDI spec (written first).
	f.checkSpecFile(t, fpga, "fpga-0", "fpga-1", "fpga-2", "fpga-3", "fpga-4", "fpga-5")
	f.checkSpecFile(t, dongle, "dongle-a", "dongle-b")

	pluginAfter := f.pluginPod(t)
	samePod(t, "plugin pod", pluginBefore, pluginAfter)
	mixed := f.waitPodRunning(t, mixedPod, 10*time.Second)
	samePod(t, "mixed pod", f.mixedBefore, mixed)

	reg := f.kubeletRegistrations(t)
	t.Logf("kubelet registrations: before %v, after %v", regBefore, reg)
	// Unchanged resources keep their plugins; a device-list-only change is
	// a ListAndWatch update, not a new registration.
	for _, name := range []string{vaccel, fpga} {
		if reg[name] != regBefore[name] {
			t.Errorf("%s registered again (%v -> %v): the reload should have left it registered", name, regBefore[name], reg[name])
		}
	}
	for _, name := range []string{dongle, acc} {
		if reg[name] < 1 {
			t.Errorf("the new resource %s was not registered", name)
		}
	}

	// A pod started after the reload gets the new devices' edits from the
	// rewritten spec: three fpgas are left (the mixed pod holds three), so
	// it gets fpga-4 and fpga-5 among them.
	after := f.startPodinfo(t, "pod-after-reload", corev1.ResourceList{fpga: resource.MustParse("3"), dongle: resource.MustParse("1")})
	got := parsePodinfo(t, f.containerLogs(t, after.Name, "c"))
	ids := f.podResources(t, after.Name)["c"]
	checkContainer(t, after.Name, got, ids)
	if !slices.Contains(ids[fpga], "fpga-4") || !slices.Contains(ids[fpga], "fpga-5") {
		t.Errorf("pod-after-reload got fpga %v, want fpga-4 and fpga-5 among them", ids[fpga])
	}
	for _, id := range ids[dongle] {
		if d := got.devices["/dev/"+id]; d != "char 1:3" {
			t.Errorf("pod-after-reload: device /dev/%s from the dongle's CDI spec: %q, want char 1:3", id, d)
		}
	}
	f.deletePod(t, after.Name)

	// vendor-acc's CDI devices resolve nowhere: its devices are Unhealthy,
	// so a pod asking for one is never scheduled onto the node (and never
	// reaches CreateContainerError).
	f.waitUnschedulable(t, "pod-acc", corev1.ResourceList{acc: resource.MustParse("1")}, "Insufficient "+acc)
}

// stepRestarts: the plugin pod deleted, its replacement registers every
// resource again; the kubelet process restarted, every resource comes
// back; the mixed pod runs on, untouched, through both.
func (f *fixture) stepRestarts(t *testing.T) {
	t.Run("plugin_pod_deleted", func(t *testing.T) {
		old := f.pluginPod(t)
		regBefore := f.kubeletRegistrations(t)
		if err := f.cs.CoreV1().Pods(pluginNS).Delete(f.ctx, old.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, 2*time.Minute, "replacement plugin pod ready", func() (bool, string) {
			p, err := f.findPluginPod()
			if err != nil {
				return false, err.Error()
			}
			return p.UID != old.UID && podReady(p), fmt.Sprintf("pod %s ready=%v", p.Name, podReady(p))
		})
		poll(t, time.Minute, "every resource registered again", func() (bool, string) {
			reg := f.kubeletRegistrationsOrNil()
			for name, n := range reloaded {
				if n > 0 && reg[name] <= regBefore[name] {
					return false, fmt.Sprintf("registrations %v, before %v", reg, regBefore)
				}
			}
			return true, ""
		})
		f.waitAllocatable(t, reloaded, time.Minute)
		samePod(t, "mixed pod", f.mixedBefore, f.waitPodRunning(t, mixedPod, 10*time.Second))

		// A container that restarts now replays its CDI names: the spec
		// outlived the plugin pod it came from, so the container starts.
		// When PID 1 ends, the kernel kills the container's other
		// processes, the exec'd one too, so kubectl exec may report exit
		// 137 or not, by a race; the restart below is the proof.
		if _, err := run(f.ctx, t, f.kubectl, "exec", "-n", podNS, mixedPod, "-c", "trainer", "--", "/podinfo", "stop"); err != nil {
			t.Logf("kubectl exec podinfo stop: %v", err)
		}
		poll(t, 2*time.Minute, "trainer restarted and running", func() (bool, string) {
			p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, mixedPod, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, s := range p.Status.ContainerStatuses {
				if s.Name == "trainer" {
					return s.RestartCount >= 1 && s.State.Running != nil, fmt.Sprintf("restarts %d, state %+v", s.RestartCount, s.State)
				}
			}
			return false, "no trainer status"
		})
		f.mixedBefore = f.waitPodRunning(t, mixedPod, 10*time.Second)
		checkContainer(t, "trainer (restarted)", parsePodinfo(t, f.containerLogs(t, mixedPod, "trainer")), f.podResources(t, mixedPod)["trainer"])
	})
	t.Run("kubelet_restarted", func(t *testing.T) {
		plugin := f.pluginPod(t)
		restartedAt := time.Now()
		mustRun(f.ctx, t, f.clusterScript, "restart-kubelet")
		// The new kubelet's counters start at zero: each resource counted
		// there registered with the new process.
		poll(t, 2*time.Minute, "every resource registered with the new kubelet", func() (bool, string) {
			reg := f.kubeletRegistrationsOrNil()
			for name, n := range reloaded {
				if n > 0 && reg[name] < 1 {
					return false, fmt.Sprintf("registrations %v", reg)
				}
			}
			return true, ""
		})
		poll(t, time.Minute, "node status posted by the new kubelet", func() (bool, string) {
			node, err := f.cs.CoreV1().Nodes().Get(f.ctx, f.node, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady {
					return c.Status == corev1.ConditionTrue && c.LastHeartbeatTime.After(restartedAt.Add(time.Second)),
						fmt.Sprintf("Ready=%s heartbeat %s", c.Status, c.LastHeartbeatTime)
				}
			}
			return false, "no Ready condition"
		})
		f.waitAllocatable(t, reloaded, time.Minute)
		f.waitDaemonSetReady(t, time.Minute)
		// The plugin re-registered by itself: same pod, no container restart.
		samePod(t, "plugin pod", plugin, f.pluginPod(t))
		samePod(t, "mixed pod", f.mixedBefore, f.waitPodRunning(t, mixedPod, 30*time.Second))
		// And it reads who holds what from the new kubelet's PodResources
		// server: the mixed pod's devices, the node's free ones.
		_, refreshed := f.checkHolders(t, servedAfterReload, restartedAt)
		fmt.Printf("=== who holds what after the kubelet restart: read from the new kubelet %.1fs after the restart began, %.1fs ago\n",
			refreshed.Sub(restartedAt).Seconds(), time.Since(refreshed).Seconds())
	})
}

// stepInsufficient: a pod asking for more fpgas than the node has stays
// Pending, and the scheduler says why.
func (f *fixture) stepInsufficient(t *testing.T) {
	const name = "pod-too-many"
	f.waitUnschedulable(t, name, corev1.ResourceList{fpga: resource.MustParse(fmt.Sprint(reloaded[fpga] + 1))}, "Insufficient "+fpga)
	time.Sleep(3 * time.Second)
	p, err := f.cs.CoreV1().Pods(podNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" {
		t.Errorf("pod-too-many: phase %s on node %q, want Pending and unscheduled", p.Status.Phase, p.Spec.NodeName)
	}
}

// stepSpecFollowsTheManifest: a resource removed from the manifest takes
// its CDI spec along; the others keep theirs.
func (f *fixture) stepSpecFollowsTheManifest(t *testing.T) {
	cm, err := f.cs.CoreV1().ConfigMaps(pluginNS).Get(f.ctx, pluginName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["manifest.yaml"] = removeResource(t, cm.Data["manifest.yaml"], dongle)
	if _, err := f.cs.CoreV1().ConfigMaps(pluginNS).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 2*time.Minute, "the dongle's CDI spec removed", func() (bool, string) {
		_, err := os.Stat(specFile(dongle))
		return os.IsNotExist(err), fmt.Sprintf("stat: %v", err)
	})
	f.waitAllocatable(t, map[string]int64{dongle: 0}, time.Minute)
	f.checkSpecFile(t, fpga, "fpga-0", "fpga-1", "fpga-2", "fpga-3", "fpga-4", "fpga-5")
}

// stepUninstall: kubectl delete -k; the plugin stops on SIGTERM and takes
// its sockets with it. Its CDI specs stay, for containers that may still
// restart, until the cleanup command removes them.
func (f *fixture) stepUninstall(t *testing.T) {
	mustRun(f.ctx, t, f.kubectl, "delete", "-k", "overlay", "--wait", "--timeout=2m")
	poll(t, time.Minute, "plugin sockets removed", func() (bool, string) {
		socks := f.pluginSockets(t)
		return len(socks) == 0, fmt.Sprintf("left: %v", socks)
	})
	f.waitAllocatable(t, map[string]int64{fpga: 0, seat: 0, vaccel: 0, dongle: 0, acc: 0, zero: 0}, time.Minute)
	f.checkSpecFile(t, fpga, "fpga-0", "fpga-1", "fpga-2", "fpga-3", "fpga-4", "fpga-5")
	t.Log(mustRun(f.ctx, t, repoRoot+"/bin/simple-device-plugin", "cleanup", "--cdi-spec-dir", hostCDISpecDir))
	if _, err := os.Stat(specFile(fpga)); !os.IsNotExist(err) {
		t.Errorf("the fpga spec is still there after cleanup: %v", err)
	}
}

// removeResource drops one resource from a manifest.
func removeResource(t *testing.T, manifest, name string) string {
	t.Helper()
	return editResources(t, manifest, func(resources []any) []any {
		return slices.DeleteFunc(resources, func(r any) bool { return r.(map[string]any)["name"] == name })
	})
}

// editResources rewrites a manifest's resources list with edit.
func editResources(t *testing.T, manifest string, edit func([]any) []any) string {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &m); err != nil {
		t.Fatal(err)
	}
	m["resources"] = edit(m["resources"].([]any))
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// editManifest grows fpga to 6, removes license-seat, adds dongle (whose
// CDI spec the plugin writes) and vendor-acc (naming a vendor's CDI
// devices that no spec defines).
func editManifest(t *testing.T, manifest string) string {
	t.Helper()
	return editResources(t, manifest, func(resources []any) []any {
		var kept []any
		for _, r := range resources {
			res := r.(map[string]any)
			switch res["name"] {
			case seat:
				continue
			case fpga:
				res["count"] = 6
			}
			kept = append(kept, res)
		}
		return append(kept, map[string]any{
			"name":    dongle,
			"ids":     []any{"dongle-a", "dongle-b"},
			"env":     map[string]any{"DONGLE_IDS": `{{ join .IDs "," }}`},
			"cdi":     map[string]any{"spec": true},
			"devices": []any{map[string]any{"hostPath": "/dev/null", "containerPath": "/dev/{{ .ID }}", "perDevice": true}},
		}, map[string]any{
			"name":       acc,
			"ids":        []any{"acc-0", "acc-1"},
			"cdiDevices": []any{map[string]any{"name": "vendor.example/acc={{ .ID }}", "perDevice": true}},
		})
	})
}

// samePod fails unless after is the same pod as before, with the same
// containers and no restart.
func samePod(t *testing.T, what string, before, after *corev1.Pod) {
	t.Helper()
	if before.UID != after.UID {
		t.Errorf("%s replaced: %s -> %s", what, before.UID, after.UID)
		return
	}
	ids := func(p *corev1.Pod) map[string]string {
		m := map[string]string{}
		for _, s := range p.Status.ContainerStatuses {
			m[s.Name] = fmt.Sprintf("%s restarts=%d", s.ContainerID, s.RestartCount)
		}
		return m
	}
	b, a := ids(before), ids(after)
	for name := range b {
		if b[name] != a[name] {
			t.Errorf("%s container %s changed: %s -> %s", what, name, b[name], a[name])
		}
	}
}

// makeHostFixture creates the host directories the manifest mounts, each
// with a file naming it, so the test can tell which one a container got.
// The test's cleanup removes them (and cluster.sh down, should the test be
// killed).
func (f *fixture) makeHostFixture(t *testing.T) {
	write := func(dir, file, content string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("/var/lib/fpga/shared", "SHARED", "shared")
	for i := range 6 {
		id := fmt.Sprintf("fpga-%d", i)
		write("/var/lib/fpga/"+id, "ID", id)
	}
}
