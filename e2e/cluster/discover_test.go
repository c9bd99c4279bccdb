package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The host's own device nodes, served by a discover: resource: devices
// that read as zeros under names of the test's own, in a directory of the
// host's /dev that the plugin sees through its DaemonSet's read-only mount.
// zero0 is the zero device (char 1:5); zero1, made later, the full device
// (1:7), which reads as zeros too: two names of one device node are one
// device to the plugin (a link and its target), so zero1 needs numbers of
// its own to be a second device.
const (
	zero         = "example.com/zero"
	zeroDir      = "/dev/sdp-e2e" // on the host; cluster.sh down removes it too
	zeroPattern  = zeroDir + "/zero*"
	memMajor     = 1
	zeroMinor    = 5
	fullMinor    = 7
	zeroReadSize = 16
)

// stepDiscoverHotplug: a resource that discovers the host's device nodes
// is added to the ConfigMap; the Node offers the one node there is, a pod
// asking for it gets it (the runtime creates it in the container from the
// host's path) and reads zeros from it; a second node created on the host
// while the plugin runs reaches the Node's allocatable within seconds, on
// the same registration and in the same plugin pod, and leaves it when it
// is removed.
func (f *fixture) stepDiscoverHotplug(t *testing.T) {
	if err := os.MkdirAll(zeroDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(zeroDir) })
	mknod(t, filepath.Join(zeroDir, "zero0"), zeroMinor)
	plugin := f.pluginPod(t)

	cm, err := f.cs.CoreV1().ConfigMaps(pluginNS).Get(f.ctx, pluginName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["manifest.yaml"] = editResources(t, cm.Data["manifest.yaml"], func(resources []any) []any {
		return append(resources, map[string]any{
			"name":     zero,
			"discover": map[string]any{"paths": []any{zeroPattern}},
		})
	})
	if _, err := f.cs.CoreV1().ConfigMaps(pluginNS).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ConfigMap updated: %s added, discover: {paths: [%s]}", zero, zeroPattern)
	f.waitAllocatable(t, map[string]int64{zero: 1}, 2*time.Minute)

	// The pod gets the host's node at the same path, and can read it.
	const pod = "pod-zero"
	f.startPodinfo(t, pod, corev1.ResourceList{zero: resource.MustParse("1")})
	if ids := f.podResources(t, pod)["c"][zero]; !slices.Equal(ids, []string{"zero0"}) {
		t.Errorf("%s got %s devices %v, want [zero0] (the match's base name)", pod, zero, ids)
	}
	node := filepath.Join(zeroDir, "zero0")
	got := parsePodinfo(t, f.containerLogs(t, pod, "c"))
	if d, want := got.devices[node], fmt.Sprintf("char %d:%d", memMajor, zeroMinor); d != want {
		t.Errorf("%s: device %s: %q, want %q (the host's node, created by the runtime)", pod, node, d, want)
	}
	out := mustRun(f.ctx, t, f.kubectl, "exec", "-n", podNS, pod, "-c", "c", "--", "/podinfo", "read", node, strconv.Itoa(zeroReadSize))
	if want := fmt.Sprintf("read %s %s\n", node, strings.Repeat("00", zeroReadSize)); out != want {
		t.Errorf("%s: podinfo read %s: %q, want %q", pod, node, out, want)
	}
	t.Logf("%s: %s", pod, strings.TrimSpace(out))

	// Hotplug: a node created on the host reaches the kubelet through the
	// plugin's watch of the mounted /dev, without registering again; the
	// plugin's count of matches, then the Node, follow.
	regBefore := f.kubeletRegistrations(t)
	metrics := "http://" + plugin.Status.PodIP + ":8080/metrics"
	created := time.Now()
	mknod(t, filepath.Join(zeroDir, "zero1"), fullMinor)
	seen, offered := f.waitDiscovered(t, metrics, 2, created)
	fmt.Printf("=== hotplug: node created → plugin's sdp_discovered_matches 2 in %d ms, allocatable 2 in %d ms\n",
		seen.Sub(created).Milliseconds(), offered.Sub(created).Milliseconds())

	removed := time.Now()
	if err := os.Remove(filepath.Join(zeroDir, "zero1")); err != nil {
		t.Fatal(err)
	}
	seen, offered = f.waitDiscovered(t, metrics, 1, removed)
	fmt.Printf("=== hotplug: node removed → plugin's sdp_discovered_matches 1 in %d ms, allocatable 1 in %d ms\n",
		seen.Sub(removed).Milliseconds(), offered.Sub(removed).Milliseconds())

	if reg := f.kubeletRegistrations(t); reg[zero] != regBefore[zero] || reg[zero] < 1 {
		t.Errorf("%s registrations: %v before the node came and went, %v after: want the same, at least one", zero, regBefore[zero], reg[zero])
	}
	samePod(t, "plugin pod", plugin, f.pluginPod(t))
	f.deletePod(t, pod)
}

// waitDiscovered waits until the plugin's /metrics counts n matches of the
// zero resource and the Node's allocatable offers n, and returns when each
// was first seen. It polls more often than poll does: it times them.
func (f *fixture) waitDiscovered(t *testing.T, metrics string, n int64, since time.Time) (seen, offered time.Time) {
	t.Helper()
	line := regexp.MustCompile(`(?m)^sdp_discovered_matches\{resource="` + regexp.QuoteMeta(zero) + `"\} (\S+)$`)
	const interval = 50 * time.Millisecond
	deadline := since.Add(30 * time.Second)
	var status string
	for {
		now := time.Now()
		if seen.IsZero() {
			if body, err := httpGet(metrics); err != nil {
				status = "metrics: " + err.Error()
			} else if m := line.FindStringSubmatch(body); m == nil {
				status = "no sdp_discovered_matches for " + zero
			} else if m[1] == strconv.FormatInt(n, 10) {
				seen = now
			} else {
				status = "sdp_discovered_matches " + m[1]
			}
		}
		if offered.IsZero() {
			if node, err := f.cs.CoreV1().Nodes().Get(f.ctx, f.node, metav1.GetOptions{}); err != nil {
				status += "; node: " + err.Error()
			} else if q := node.Status.Allocatable[corev1.ResourceName(zero)]; q.Value() == n {
				offered = now
			} else {
				status += "; allocatable " + q.String()
			}
		}
		if !seen.IsZero() && !offered.IsZero() {
			return seen, offered
		}
		if now.After(deadline) {
			t.Fatalf("%d %s devices: not within 30s: %s", n, zero, status)
		}
		status = ""
		time.Sleep(interval)
	}
}

// mknod creates a character device node of major 1 (memory devices) at
// path.
func mknod(t *testing.T, path string, minor uint32) {
	t.Helper()
	if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(memMajor, minor))); err != nil {
		t.Fatalf("mknod %s c %d %d: %v", path, memMajor, minor, err)
	}
}
