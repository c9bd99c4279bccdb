package e2e

import (
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// exampleResource is what the tests read of a shipped manifest's resource.
type exampleResource struct {
	Name        string   `json:"name"`
	Count       *int64   `json:"count"`
	IDs         []string `json:"ids"`
	Unhealthy   []string `json:"unhealthy"`
	Nodes       []string `json:"nodes"`
	HealthCheck any      `json:"healthCheck"`
	Discover    *struct {
		Share *int64 `json:"share"`
	} `json:"discover"`
	API string `json:"api"`
	DRA *struct {
		Driver string `json:"driver"`
	} `json:"dra"`
}

// isDRA reports whether the resource is served as a DRA driver.
func (r exampleResource) isDRA() bool { return r.API == "dra" }

// driver is the DRA driver the resource is served as.
func (r exampleResource) driver() string {
	if r.DRA != nil && r.DRA.Driver != "" {
		return r.DRA.Driver
	}
	return driverName(r.Name)
}

// count is the resource's device count (count, or the length of ids).
func (r exampleResource) count() int64 {
	if r.Count != nil {
		return *r.Count
	}
	return int64(len(r.IDs))
}

// share is how many devices each match of a discover: resource makes.
func (r exampleResource) share() int64 {
	if r.Discover == nil || r.Discover.Share == nil {
		return 1
	}
	return *r.Discover.Share
}

// discovered is what a host's /metrics says discovery found on this
// machine for one resource.
type discovered struct{ matches, leftOut int64 }

// discoveredOf reads the host's sdp_discovered_matches and
// sdp_discover_left_out for each discover: resource; a resource whose
// first scan has not been reported yet is a reason to wait.
func discoveredOf(h *host, resources []exampleResource) (map[string]discovered, string) {
	out := map[string]discovered{}
	for _, r := range resources {
		if r.Discover == nil || !servedHere(r.Nodes) {
			continue
		}
		label := `resource="` + r.Name + `"`
		matches, found, err := h.metric("sdp_discovered_matches", label)
		if err != nil || !found {
			return nil, fmt.Sprintf("sdp_discovered_matches{%s}: not reported yet (%v)", label, err)
		}
		leftOut, _, err := h.metric("sdp_discover_left_out", label)
		if err != nil {
			return nil, err.Error()
		}
		out[r.Name] = discovered{int64(matches), int64(leftOut)}
	}
	return out, ""
}

// Every manifest in examples/ registers with the real kubelet: each
// resource served on this node (no nodes: globs, or one matching
// --node-name test-node) has capacity = its device count and allocatable =
// count minus its unhealthy list; the others are not there at all. With a
// healthCheck, allocatable depends on this machine's paths and is only
// bounded. A discover: resource serves this machine's own nodes: its
// capacity is what the host's /metrics says it matched times share
// (bounded when something was left out), and one of its devices, if it
// has any, reaches a pod as device nodes that exist here. An api: dra
// resource is never in the device manager: its driver registers with the
// kubelet's DRA manager, the node's ResourceSlices in the test API server
// hold its devices, and a claim of one is prepared into CDI devices. And
// examples/pod-mixed.yaml is admitted on examples/manifest.yaml, its
// containers getting what they asked for, never the same device.
func TestShippedExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/*.yaml (%v)", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Kind      string            `json:"kind"`
			Resources []exampleResource `json:"resources"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if doc.Kind != "Manifest" {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			var k *kubelet
			var h *host
			var dk *draKubelet
			if slices.ContainsFunc(doc.Resources, func(r exampleResource) bool { return r.isDRA() && servedHere(r.Nodes) }) {
				// api: dra resources: to the kubelet's DRA manager,
				// published to the test API server.
				requireDRA(t)
				dk = startDRAKubelet(t, testAPIServer(t))
				for _, r := range doc.Resources {
					if r.isDRA() {
						deleteClassAtEnd(t, dk.api, r.driver())
					}
				}
				k, h = dk.kubelet, startDRAHost(t, dk, writeManifest(t, string(data)))
			} else {
				k = startKubelet(t)
				h = startHost(t, writeManifest(t, string(data)))
			}
			eventually(t, registerTimeout, "the kubelet to see the served resources", func() (bool, string) {
				found, why := discoveredOf(h, doc.Resources)
				if why != "" {
					return false, why
				}
				return exampleServed(k.capacity(), doc.Resources, found)
			})
			for _, r := range doc.Resources {
				if r.Discover != nil {
					checkDiscoveredHere(t, k, r.Name)
				}
				if r.isDRA() && servedHere(r.Nodes) {
					checkDRAExample(t, dk, r)
				}
			}
			eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
		})
	}

	t.Run("pod-mixed.yaml on manifest.yaml", func(t *testing.T) {
		manifestYAML, err := os.ReadFile(filepath.Join("..", "examples", "manifest.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		podYAML, err := os.ReadFile(filepath.Join("..", "examples", "pod-mixed.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		pod := &v1.Pod{}
		if err := yaml.UnmarshalStrict(podYAML, pod); err != nil {
			t.Fatalf("examples/pod-mixed.yaml: %v", err)
		}
		pod.UID = types.UID("uid-" + pod.Name)
		if pod.Namespace == "" {
			pod.Namespace = "default"
		}
		k, _, _ := serve(t, string(manifestYAML))
		if err := k.admit(pod); err != nil {
			t.Fatalf("the kubelet refused examples/pod-mixed.yaml: %v", err)
		}
		if len(pod.Spec.Containers) < 2 {
			t.Errorf("examples/pod-mixed.yaml has %d container(s); it shows several containers sharing resources", len(pod.Spec.Containers))
		}
		holder := map[string]string{} // resource + "/" + device ID -> container
		for _, c := range pod.Spec.Containers {
			got := k.devices(pod, c.Name)
			for res, q := range c.Resources.Limits {
				if !strings.Contains(string(res), "/") {
					continue
				}
				if int64(len(got[string(res)])) != q.Value() {
					t.Errorf("container %s: %d %s, asked for %d", c.Name, len(got[string(res)]), res, q.Value())
				}
				for _, id := range got[string(res)] {
					if other, taken := holder[string(res)+"/"+id]; taken {
						t.Errorf("%s device %s given to both %s and %s", res, id, other, c.Name)
					}
					holder[string(res)+"/"+id] = c.Name
				}
			}
			if opts := k.runOptions(pod, c.Name); len(opts.Envs) == 0 {
				t.Errorf("container %s: no env vars from the example manifest", c.Name)
			} else {
				t.Logf("container %s gets %q", c.Name, describeRun(opts))
			}
		}
	})
}

// exampleServed compares the kubelet's counts with what the example's
// resources should give on this node, found being what discovery found
// here for the discover: resources.
func exampleServed(got map[string]resourceCounts, resources []exampleResource, found map[string]discovered) (bool, string) {
	want := map[string]resourceCounts{}
	bounded := map[string]bool{}
	for _, r := range resources {
		count := r.count()
		if !servedHere(r.Nodes) || r.isDRA() {
			// Not here, or not a device plugin: never in the device
			// manager (checkDRAExample checks the DRA side).
			want[r.Name] = resourceCounts{}
			continue
		}
		if r.Discover != nil {
			// Each match is share devices. What was left out (a
			// regular file matched, an ID taken twice) costs at most
			// one match's devices each. Its unhealthy IDs may not
			// be on this machine at all.
			f := found[r.Name]
			most, least := f.matches*r.share(), max(f.matches-f.leftOut, 0)*r.share()
			if g := got[r.Name]; f.leftOut > 0 && least <= g.Capacity && g.Capacity <= most && g.Allocatable <= g.Capacity {
				continue
			}
			want[r.Name] = resourceCounts{Capacity: most, Allocatable: most}
			bounded[r.Name] = len(r.Unhealthy) > 0
			continue
		}
		want[r.Name] = resourceCounts{Capacity: count, Allocatable: count - int64(len(r.Unhealthy))}
		bounded[r.Name] = r.HealthCheck != nil
	}
	for name, w := range want {
		g := got[name]
		if bounded[name] && g.Capacity == w.Capacity && g.Allocatable <= w.Allocatable {
			continue
		}
		if g != w {
			ok, why := countsMatch(got, map[string]resourceCounts{name: w})
			return ok, why
		}
	}
	return true, ""
}

// servedHere reports whether a resource with these nodes: globs is served
// on the tests' node.
func servedHere(globs []string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, nodeName); ok {
			return true
		}
	}
	return false
}

// checkDiscoveredHere logs what a discover: resource serves on this
// machine and, if it serves anything, admits a pod asking for one device:
// every node the kubelet hands the runtime is a device node on this
// machine.
func checkDiscoveredHere(t *testing.T, k *kubelet, resource string) {
	t.Helper()
	c := k.capacity()[resource]
	t.Logf("%s on this machine: %s", resource, c)
	if c.Allocatable == 0 {
		return
	}
	pod := newPod("uses-"+path.Base(resource), podContainer{Name: "c", Limits: map[string]int64{resource: 1}})
	if err := k.admit(pod); err != nil {
		t.Fatalf("the kubelet refused one %s: %v", resource, err)
	}
	defer k.remove(pod)
	opts := k.runOptions(pod, "c")
	if len(opts.Devices) == 0 {
		t.Errorf("one %s (%v) carries no device node", resource, k.devices(pod, "c")[resource])
	}
	for _, d := range opts.Devices {
		fi, err := os.Stat(d.PathOnHost)
		if err != nil || fi.Mode()&os.ModeDevice == 0 {
			t.Errorf("%s hands the runtime %s -> %s, not a device node here (%v)", resource, d.PathOnHost, d.PathInContainer, err)
		}
	}
	t.Logf("one %s runs with %q", resource, describeRun(opts))
}

// checkDRAExample checks an api: dra resource of a shipped manifest: the
// driver registers with the kubelet's DRA manager, the node's slices hold
// every device (the unhealthy ones tainted), and a claim for the first
// device is prepared through the kubelet into CDI devices a runtime
// resolves, then unprepared.
func checkDRAExample(t *testing.T, k *draKubelet, r exampleResource) {
	t.Helper()
	driver := r.driver()
	eventually(t, registerTimeout, "the driver "+driver+" registered with the kubelet", k.driverRegistered(driver, true))
	var ids []string
	eventually(t, registerTimeout, "the slices of "+driver, func() (bool, string) {
		got, err := nodeSlices(k.api, driver)
		if err != nil {
			return false, err.Error()
		}
		ids = slices.Sorted(maps.Keys(sliceDevices(got)))
		if int64(len(ids)) != r.count() {
			return false, fmt.Sprintf("%d devices, want %d", len(ids), r.count())
		}
		return slicesAre(k.api, driver, wantSlices{ids: ids, tainted: r.Unhealthy})()
	})
	pod := claimPod("example-"+shortName(r.Name), "example-"+shortName(r.Name))
	createAllocatedClaim(t, k.api, pod.Name, allocation{driver: driver, request: "dev", devices: ids[:1]}, pod)
	if err := k.prepare(pod); err != nil {
		t.Fatalf("prepare one %s: %v", r.Name, err)
	}
	names, err := k.cdiDevices(pod, "c")
	if err != nil || len(names) == 0 {
		t.Fatalf("CDI devices of one %s: %v (err %v)", r.Name, names, err)
	}
	t.Logf("one %s (%s) runs with %q", r.Name, ids[0], cdiEdits(t, names))
	if err := k.unprepare(pod); err != nil {
		t.Fatalf("unprepare: %v", err)
	}
}
