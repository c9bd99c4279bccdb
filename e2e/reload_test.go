package e2e

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

const (
	keep  = "e2e.example.com/keep"
	grow  = "e2e.example.com/grow"
	gone  = "e2e.example.com/gone"
	added = "e2e.example.com/added"
)

// reloadKeep starts both reload manifests: their header and keep, written
// once so that keep is the same in both by construction (the test checks
// it never re-registers).
const reloadKeep = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/keep
    count: 4
    env:
      KEEP_IDS: '{{ join .IDs "," }}'
    mounts:
      - hostPath: "/var/lib/keep/{{ .ID }}"
        containerPath: "/keep/{{ .ID }}"
        perDevice: true
`

// reloadBefore: keep stays as it is, grow grows, gone goes.
const reloadBefore = reloadKeep + `  - name: e2e.example.com/grow
    count: 2
  - name: e2e.example.com/gone
    count: 3
`

// reloadAfter: keep unchanged, grow 2 -> 5, gone removed, added new.
const reloadAfter = reloadKeep + `  - name: e2e.example.com/grow
    count: 5
  - name: e2e.example.com/added
    count: 2
`

// reloadInvalid has an unknown field and a resource name the kubelet
// would refuse.
const reloadInvalid = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/keep
    count: 4
    cuont: 5
  - name: not a resource name
    count: 1
`

// reloadsMetric counts the host's manifest reloads by result, the failed
// ones included: the tests' way to know the host has seen a new manifest,
// before checking that nothing changed.
const reloadsMetric = "sdp_manifest_reloads_total"

// Hot reload from a ConfigMap laid out as the kubelet projects it. A pod
// holds devices of a resource that stays unchanged; the new manifest grows
// one resource, adds one and removes one. The kubelet's capacity follows,
// the unchanged resource never re-registers and the pod keeps its
// allocation. Then an invalid manifest changes nothing.
func TestConfigMapHotReload(t *testing.T) {
	k := startKubelet(t)
	cm := newConfigMapVolume(t, "manifest.yaml", reloadBefore)
	h := startHost(t, cm.path())
	k.registeredAll(t, manifestCounts(t, []byte(reloadBefore)))

	holder := newPod("holder", podContainer{Name: "c", Limits: map[string]int64{keep: 2}})
	if err := k.admit(holder); err != nil {
		t.Fatalf("admit holder: %v", err)
	}
	heldIDs := k.devices(holder, "c")
	heldRun := describeRun(k.runOptions(holder, "c"))
	t.Logf("holder/c holds %v: %q", heldIDs, heldRun)

	before := registrationsOf(t, keep, grow, gone, added)
	swapped := time.Now()
	cm.update(reloadAfter)
	want := map[string]resourceCounts{
		keep:  {4, 4},
		grow:  {5, 5},
		gone:  {0, 0}, // the kubelet keeps the name for a grace period, with nothing in it
		added: {2, 2},
	}
	took := eventually(t, registerTimeout, "the kubelet's capacity to follow the new ConfigMap", k.capacityIs(want))
	t.Logf("ConfigMap swap -> kubelet capacity updated: %v", took.Round(time.Millisecond))
	eventually(t, registerTimeout, "the removed resource's socket to be deleted", func() (bool, string) {
		if left := ourSockets([]string{gone}); len(left) > 0 {
			return false, fmt.Sprintf("%v still there %v after the swap", left, time.Since(swapped).Round(time.Millisecond))
		}
		return true, ""
	})
	eventually(t, registerTimeout, "/readyz 200 on the new manifest", h.statusIs("/readyz", 200))

	after := registrationsOf(t, keep, grow, gone, added)
	if after[keep] != before[keep] {
		t.Errorf("%s is unchanged but registered again with the kubelet (counter %d -> %d)", keep, before[keep], after[keep])
	}
	if after[grow] != before[grow] {
		t.Errorf("%s only changed its device count but registered again (counter %d -> %d); a count change is a ListAndWatch update, no re-registration", grow, before[grow], after[grow])
	}
	if after[added] <= before[added] {
		t.Errorf("%s never registered (counter %d)", added, after[added])
	}

	// The pod's allocation is intact, and the rest of keep, the new grow
	// devices and the added resource are all served.
	if got := k.devices(holder, "c"); !sameIDs(got, heldIDs) {
		t.Errorf("holder's devices changed across the reload: %v, were %v", got, heldIDs)
	}
	if got := describeRun(k.runOptions(holder, "c")); !slices.Equal(got, heldRun) {
		t.Errorf("holder's run options changed across the reload:%s", diffLines(got, heldRun))
	}
	next := newPod("next", podContainer{Name: "c", Limits: map[string]int64{keep: 2, grow: 5, added: 1}})
	if err := k.admit(next); err != nil {
		t.Fatalf("admit next after the reload: %v", err)
	}
	nextIDs := k.devices(next, "c")
	for _, id := range nextIDs[keep] {
		if slices.Contains(heldIDs[keep], id) {
			t.Errorf("%s %s handed to next while holder holds it", keep, id)
		}
	}
	if n := len(nextIDs[grow]); n != 5 {
		t.Errorf("next got %d of the grown %s, want 5: %v", n, grow, nextIDs[grow])
	}

	// An invalid manifest changes nothing: same capacity, no registration,
	// the process alive and still ready.
	invalidBefore := reloadCount(t, h, "invalid")
	stable := registrationsOf(t, keep, grow, gone, added)
	cm.update(reloadInvalid)
	eventually(t, registerTimeout, "the host to count the invalid manifest", func() (bool, string) {
		n := reloadCount(t, h, "invalid")
		return n > invalidBefore, fmt.Sprintf(`%s{result="invalid"} still %v`, reloadsMetric, n)
	})
	holds(t, time.Second, "the last good manifest after an invalid one", func() (bool, string) {
		if ok, why := h.alive(); !ok {
			return false, why
		}
		if ok, why := k.capacityIs(want)(); !ok {
			return false, why
		}
		if got := registrationsOf(t, keep, grow, gone, added); !maps.Equal(got, stable) {
			return false, fmt.Sprintf("registrations %v -> %v", stable, got)
		}
		return h.statusIs("/readyz", 200)()
	})

	// And the next valid manifest is applied again: its new template
	// serves the next Allocate.
	appliedBefore := reloadCount(t, h, "applied")
	cm.update(reloadAfter + "    env:\n      ADDED: \"{{ .Count }}\"\n")
	eventually(t, registerTimeout, "the host to apply a valid manifest after the invalid one", func() (bool, string) {
		n := reloadCount(t, h, "applied")
		return n > appliedBefore, fmt.Sprintf(`%s{result="applied"} still %v`, reloadsMetric, n)
	})
	rest := newPod("rest", podContainer{Name: "c", Limits: map[string]int64{added: 1}})
	if err := k.admit(rest); err != nil {
		t.Fatalf("admit rest: %v", err)
	}
	if run := describeRun(k.runOptions(rest, "c")); !slices.Contains(run, "env ADDED=1") {
		t.Errorf("rest/c got %q, want env ADDED=1 from the manifest applied last", run)
	}
}

// reloadCount reads the host's reload counter for one result.
func reloadCount(t testing.TB, h *host, result string) float64 {
	t.Helper()
	v, found, err := h.metric(reloadsMetric, fmt.Sprintf("result=%q", result))
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	if !found {
		t.Fatalf(`/metrics has no %s{result=%q}`, reloadsMetric, result)
	}
	return v
}
