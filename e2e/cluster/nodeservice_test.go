package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Node-service mode on the test node: the installer's dirs are under the
// cluster's root (as the test overlay sets them), and the service's HTTP
// address is on loopback only.
const (
	nodeServiceDS     = "simple-device-plugin-node"
	nodeServiceListen = "127.0.0.1:9468"
)

func nodeServiceDir(sub string) string { return filepath.Join(clusterRoot(), "node-service", sub) }

// hostManifest is the node service's manifest file, which sync writes.
func hostManifest() string { return filepath.Join(nodeServiceDir("etc"), "manifest.yaml") }

// stepNodeServiceInstall: deploy/node-service applied (through the test
// overlay). Its init container installs the binary, the unit, the env
// file and the enable links on the node; sync writes the ConfigMap's
// manifest once the installed binary validates it. This node has no
// systemd, so the test starts the service as systemd would on `systemctl
// start` (cluster.sh start-node-service: the unit's ExecStart= and
// EnvironmentFile=, READY=1 awaited). It registers every resource.
func (f *fixture) stepNodeServiceInstall(t *testing.T) {
	t.Log(mustRun(f.ctx, t, f.kubectl, "apply", "-k", "overlay-node-service"))
	for _, p := range []string{
		nodeServiceDir("bin") + "/simple-device-plugin",
		nodeServiceDir("systemd") + "/simple-device-plugin.service",
		nodeServiceDir("systemd") + "/kubelet.service.wants/simple-device-plugin.service",
		nodeServiceDir("systemd") + "/multi-user.target.wants/simple-device-plugin.service",
		nodeServiceDir("etc") + "/env",
	} {
		poll(t, 2*time.Minute, "installed: "+p, func() (bool, string) {
			_, err := os.Stat(p)
			return err == nil, fmt.Sprint(err)
		})
	}
	f.waitNodeServiceDaemonSetReady(t, 2*time.Minute)
	f.checkHostManifest(t)
	t.Log(mustRun(f.ctx, t, f.clusterScript, "start-node-service"))
	f.waitAllocatable(t, installed, time.Minute)
	poll(t, 30*time.Second, "the node service's /readyz", func() (bool, string) {
		body, err := httpGet("http://" + nodeServiceListen + "/readyz")
		return err == nil, fmt.Sprint(body, err)
	})
}

// stepRebootNodeService: three reboots in a row with the plugin served
// by the node service, started before the kubelet. Every watched pod must
// be running again with its devices each time, and no pod rejected.
func (f *fixture) stepRebootNodeService(t *testing.T) {
	f.startRebootPods(t)
	nodeServiceLog := func(time.Time) string {
		data, err := os.ReadFile(clusterRoot() + "/logs/node-service.log")
		if err != nil {
			t.Logf("node service log: %v", err)
		}
		return string(data)
	}
	var regMS, runningS []float64
	for i := 1; i <= 3; i++ {
		out := f.rebootAndSettle(t, nodeServiceLog)
		fmt.Printf("=== reboot %d, node-service mode: %s\n", i, out)
		if len(out.running) != len(rebootPods) || out.events != 0 {
			t.Errorf("reboot %d: %s; rejected %v, other %v", i, out, out.rejected, out.other)
		}
		if out.registered.IsZero() || out.kubeletStarted.IsZero() {
			t.Errorf("reboot %d: kubelet start (%v) or registration (%v) not found in the logs", i, out.kubeletStarted, out.registered)
		} else {
			regMS = append(regMS, msSince(out.kubeletStarted, out.registered))
			runningS = append(runningS, out.settled.Sub(out.kubeletStarted).Seconds())
		}
		f.checkRebootPods(t)
	}
	fmt.Printf("=== node-service mode over 3 reboots: registered %v ms after the kubelet started; pods running again %v s after it\n",
		rounded(regMS, 0), rounded(runningS, 1))
}

func rounded(v []float64, digits int) []string {
	var out []string
	for _, x := range v {
		out = append(out, strconv.FormatFloat(x, 'f', digits, 64))
	}
	return out
}

// stepNodeServiceSync: the ConfigMap still drives the node. An edit
// reaches the node's file and the service reloads it; an invalid edit
// changes nothing on the node, and the sync pod reports it (not ready,
// sdp_sync_total{result="invalid"}); the valid one back is synced again.
func (f *fixture) stepNodeServiceSync(t *testing.T) {
	cm, err := f.cs.CoreV1().ConfigMaps(pluginNS).Get(f.ctx, pluginName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	original := cm.Data["manifest.yaml"]
	setCount := func(n int) string {
		return editResources(t, original, func(resources []any) []any {
			for _, r := range resources {
				if r.(map[string]any)["name"] == vaccel {
					r.(map[string]any)["count"] = n
				}
			}
			return resources
		})
	}
	update := func(manifest string) {
		cm.Data["manifest.yaml"] = manifest
		if cm, err = f.cs.CoreV1().ConfigMaps(pluginNS).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	update(setCount(12))
	f.waitHostManifest(t, setCount(12))
	f.waitAllocatable(t, map[string]int64{vaccel: 12}, time.Minute)

	// count: 0 is refused by the node's binary: nothing changes on the node.
	update(setCount(0))
	poll(t, 2*time.Minute, "the sync pod not ready, counting the invalid manifest", func() (bool, string) {
		p, err := f.syncPod()
		if err != nil {
			return false, err.Error()
		}
		body, err := httpGet("http://" + p.Status.PodIP + ":8081/metrics")
		if err != nil {
			return false, err.Error()
		}
		invalid := metricValue(body, `sdp_sync_total{result="invalid"}`)
		return !podReady(p) && invalid >= 1, fmt.Sprintf("ready %v, invalid %v", podReady(p), invalid)
	})
	if data, err := os.ReadFile(hostManifest()); err != nil || string(data) != setCount(12) {
		t.Errorf("the node's manifest changed after an invalid ConfigMap (%v):\n%s", err, data)
	}
	f.waitAllocatable(t, map[string]int64{vaccel: 12}, 10*time.Second)

	update(original)
	f.waitHostManifest(t, original)
	f.waitNodeServiceDaemonSetReady(t, time.Minute)
	f.waitAllocatable(t, installed, time.Minute)
}

// stepNodeServiceRemove: the DaemonSet deleted, the service stopped (as
// `systemctl stop` would) and `install --remove` run on the node: the
// service's files and links are gone, its sockets too, the node offers
// nothing.
func (f *fixture) stepNodeServiceRemove(t *testing.T) {
	mustRun(f.ctx, t, f.kubectl, "delete", "-k", "overlay-node-service", "--wait", "--timeout=2m")
	t.Log(mustRun(f.ctx, t, f.clusterScript, "stop-node-service"))
	t.Log(mustRun(f.ctx, t, repoRoot+"/bin/simple-device-plugin", "install", "--remove", "--host-root", "/", "--start", "never",
		"--bin-dir", nodeServiceDir("bin"), "--unit-dir", nodeServiceDir("systemd"), "--config-dir", nodeServiceDir("etc")))
	for _, p := range []string{
		nodeServiceDir("bin") + "/simple-device-plugin",
		nodeServiceDir("systemd") + "/simple-device-plugin.service",
		nodeServiceDir("systemd") + "/kubelet.service.wants/simple-device-plugin.service",
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after install --remove: %v", p, err)
		}
	}
	poll(t, time.Minute, "plugin sockets removed", func() (bool, string) {
		socks := f.pluginSockets(t)
		return len(socks) == 0, fmt.Sprintf("left: %v", socks)
	})
	f.waitAllocatable(t, map[string]int64{fpga: 0, seat: 0, vaccel: 0}, time.Minute)
}

func (f *fixture) syncPod() (*corev1.Pod, error) {
	pods, err := f.cs.CoreV1().Pods(pluginNS).List(f.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node-service"})
	if err != nil {
		return nil, err
	}
	if len(pods.Items) != 1 {
		return nil, fmt.Errorf("%d sync pods", len(pods.Items))
	}
	return &pods.Items[0], nil
}

func (f *fixture) waitNodeServiceDaemonSetReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, "node-service DaemonSet ready (the node's manifest in sync)", func() (bool, string) {
		ds, err := f.cs.AppsV1().DaemonSets(pluginNS).Get(f.ctx, nodeServiceDS, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := ds.Status
		status := fmt.Sprintf("desired %d ready %d", s.DesiredNumberScheduled, s.NumberReady)
		if p, err := f.syncPod(); err == nil {
			status += "; pod " + p.Name + " " + podSummary(p)
		}
		return s.DesiredNumberScheduled == 1 && s.NumberReady == 1 && s.ObservedGeneration == ds.Generation, status
	})
}

// checkHostManifest: the node's file is the ConfigMap's manifest.
func (f *fixture) checkHostManifest(t *testing.T) {
	t.Helper()
	cm, err := f.cs.CoreV1().ConfigMaps(pluginNS).Get(f.ctx, pluginName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.waitHostManifest(t, cm.Data["manifest.yaml"])
}

func (f *fixture) waitHostManifest(t *testing.T, want string) {
	t.Helper()
	poll(t, 2*time.Minute, "the node's manifest equal to the ConfigMap's", func() (bool, string) {
		data, err := os.ReadFile(hostManifest())
		return err == nil && string(data) == want, fmt.Sprintf("%d bytes, %v", len(data), err)
	})
}

// metricValue is the value of a Prometheus text sample, or -1.
func metricValue(body, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// stopNodeService leaves no node service running whatever a failed step
// left behind (cluster.sh down would stop it too).
func (f *fixture) stopNodeService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run(ctx, t, f.kubectl, "delete", "-k", "overlay-node-service", "--ignore-not-found", "--wait", "--timeout=90s")
	run(ctx, t, f.clusterScript, "stop-node-service")
}
