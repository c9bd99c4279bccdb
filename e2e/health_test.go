package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const healthRes = "e2e.example.com/dev"

// Device health from the manifest's unhealthy list, hot-reloaded: the
// kubelet's allocatable drops by one and comes back, the kubelet hands the
// unhealthy device to nobody, and the resource never re-registers (a
// health change is a ListAndWatch update).
func TestUnhealthyListFollowsTheManifest(t *testing.T) {
	const base = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/dev
    count: 4
    idTemplate: "dev-{{ .Index }}"
`
	k := startKubelet(t)
	cm := newConfigMapVolume(t, "manifest.yaml", base)
	startHost(t, cm.path())
	k.registeredAll(t, map[string]int64{healthRes: 4})
	before := registrations(t, healthRes)

	cm.update(base + "    unhealthy: [dev-2]\n")
	took := eventually(t, registerTimeout, "dev-2 unhealthy in the kubelet",
		k.capacityIs(map[string]resourceCounts{healthRes: {Capacity: 4, Allocatable: 3}}))
	t.Logf("unhealthy: [dev-2] -> kubelet allocatable 3: %v", took.Round(time.Millisecond))

	all := newPod("all", podContainer{Name: "c", Limits: map[string]int64{healthRes: 4}})
	if err := k.admit(all); err == nil {
		t.Errorf("the kubelet admitted 4 %s with dev-2 unhealthy", healthRes)
	}
	three := newPod("three", podContainer{Name: "c", Limits: map[string]int64{healthRes: 3}})
	if err := k.admit(three); err != nil {
		t.Fatalf("admit three healthy devices: %v", err)
	}
	if got := k.devices(three, "c")[healthRes]; slices.Contains(got, "dev-2") {
		t.Errorf("the kubelet handed out the unhealthy dev-2: %v", got)
	}
	k.remove(three)

	cm.update(base)
	took = eventually(t, registerTimeout, "dev-2 healthy again", k.capacityIs(allHealthy(map[string]int64{healthRes: 4})))
	t.Logf("unhealthy list emptied -> kubelet allocatable 4: %v", took.Round(time.Millisecond))
	if after := registrations(t, healthRes); after != before {
		t.Errorf("%s registered again for a health change (counter %d -> %d); a health change is a ListAndWatch update", healthRes, before, after)
	}
}

// Device health from a healthCheck: a device is healthy while its
// templated host path exists, probed every 200 ms.
func TestHealthCheckFollowsHostPaths(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		touch(t, filepath.Join(dir, fmt.Sprintf("dev-%d", i)))
	}
	k := startKubelet(t)
	startHost(t, writeManifest(t, fmt.Sprintf(`apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/dev
    count: 4
    idTemplate: "dev-{{ .Index }}"
    healthCheck:
      path: "%s/{{ .ID }}"
      interval: 200ms
`, dir)))
	k.registeredAll(t, map[string]int64{healthRes: 4})
	before := registrations(t, healthRes)

	if err := os.Remove(filepath.Join(dir, "dev-1")); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, registerTimeout, "dev-1 unhealthy once its path is gone",
		k.capacityIs(map[string]resourceCounts{healthRes: {Capacity: 4, Allocatable: 3}}))
	t.Logf("path removed -> kubelet allocatable 3: %v (interval 200ms)", took.Round(time.Millisecond))

	touch(t, filepath.Join(dir, "dev-1"))
	took = eventually(t, registerTimeout, "dev-1 healthy once its path is back",
		k.capacityIs(allHealthy(map[string]int64{healthRes: 4})))
	t.Logf("path back -> kubelet allocatable 4: %v (interval 200ms)", took.Round(time.Millisecond))
	if after := registrations(t, healthRes); after != before {
		t.Errorf("%s registered again for a health change (counter %d -> %d)", healthRes, before, after)
	}
}

func touch(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
