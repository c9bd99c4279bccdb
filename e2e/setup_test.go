package e2e

import (
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// registerTimeout bounds every wait for an event (the kubelet seeing our
// resources, a log line, an exit). Its only job is to turn a hang into a
// failure, so it is far above anything a loaded machine running the race
// detector needs: the tests assert what happens, the benchmarks say how fast.
const registerTimeout = time.Minute

// threeResources is the manifest most scenarios serve: generated IDs, an
// explicit ID list, and a larger count.
const threeResources = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/fpga
    count: 4
  - name: e2e.example.com/seat
    ids: [seat-a, seat-b, seat-c]
  - name: e2e.example.com/share
    count: 16
`

// manifestCounts reads a manifest's resource names and device counts
// (count, or the length of ids) the simple way, independently of the main
// module's loader.
func manifestCounts(t testing.TB, manifestYAML []byte) map[string]int64 {
	t.Helper()
	var m struct {
		Resources []struct {
			Name  string   `json:"name"`
			Count *int64   `json:"count"`
			IDs   []string `json:"ids"`
			Nodes []string `json:"nodes"`
		} `json:"resources"`
	}
	if err := yaml.Unmarshal(manifestYAML, &m); err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	counts := map[string]int64{}
	for _, r := range m.Resources {
		if len(r.Nodes) > 0 {
			t.Fatalf("manifestCounts: %s has nodes: %v; the tests run as %q and do not evaluate globs", r.Name, r.Nodes, nodeName)
		}
		switch {
		case r.Count != nil:
			counts[r.Name] = *r.Count
		default:
			counts[r.Name] = int64(len(r.IDs))
		}
	}
	return counts
}

func resourceNames(counts map[string]int64) []string {
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// capacityIs is a condition: the kubelet reports exactly want for those
// resources.
func (k *kubelet) capacityIs(want map[string]resourceCounts) condition {
	return func() (bool, string) { return countsMatch(k.capacity(), want) }
}

// registeredAll waits until the kubelet has every resource of counts with
// all its devices healthy, and returns how long that took.
func (k *kubelet) registeredAll(t testing.TB, counts map[string]int64) time.Duration {
	t.Helper()
	return eventually(t, registerTimeout, fmt.Sprintf("the kubelet to see %v", counts), k.capacityIs(allHealthy(counts)))
}

// serve starts a kubelet and a host on manifestYAML (a plain file) and
// waits until everything is registered.
func serve(t testing.TB, manifestYAML string) (*kubelet, *host, map[string]int64) {
	t.Helper()
	k := startKubelet(t)
	counts := manifestCounts(t, []byte(manifestYAML))
	h := startHost(t, writeManifest(t, manifestYAML))
	k.registeredAll(t, counts)
	return k, h, counts
}

// ourSockets lists the sockets of resources that exist in the plugin dir.
func ourSockets(resources []string) []string {
	var left []string
	for _, r := range resources {
		if _, err := os.Lstat(socketPath(r)); err == nil {
			left = append(left, socketPath(r))
		}
	}
	return left
}

// socketsExist is a condition: every resource's socket is in the plugin dir.
func socketsExist(resources []string) condition {
	return func() (bool, string) {
		for _, r := range resources {
			if _, err := os.Lstat(socketPath(r)); err != nil {
				return false, fmt.Sprintf("socket of %s: %v", r, err)
			}
		}
		return true, ""
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
