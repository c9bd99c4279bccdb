package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
)

// allocationManifest uses every kind of allocation output: env, annotations,
// shared and per-device mounts, shared and per-device device nodes, shared
// and per-device CDI devices, and every template field.
const allocationManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/fpga
    count: 4
    idTemplate: "fpga-{{ .Index }}"
    env:
      FPGA_IDS: '{{ join .IDs "," }}'
      FPGA_COUNT: "{{ .Count }}"
      FPGA_NODE: "{{ .Node }}"
    annotations:
      e2e.example.com/fpga.ids: '{{ join .IDs "," }}'
    mounts:
      - hostPath: /var/lib/fpga/shared
        containerPath: /opt/fpga
        readOnly: true
      - hostPath: "/var/lib/fpga/{{ .ID }}"
        containerPath: "/dev/fpga/{{ .ID }}"
        perDevice: true
    devices:
      - hostPath: /dev/null
        containerPath: "/dev/fpga{{ .Index }}"
        permissions: rw
        perDevice: true
    cdiDevices:
      - name: "e2e.example.com/fpga={{ .ID }}"
        perDevice: true
  - name: e2e.example.com/seat
    ids: [seat-a, seat-b, seat-c]
    env:
      SEAT_IDS: '{{ join .IDs " " }}'
      SEAT_RESOURCE: "{{ .Resource }}"
    annotations:
      e2e.example.com/seats: "{{ .Count }}"
    mounts:
      - hostPath: "/srv/seats/{{ .ID }}.lic"
        containerPath: "/etc/seats/{{ .ID }}.lic"
        readOnly: true
        perDevice: true
    cdiDevices:
      - name: e2e.example.com/seat=pool
  - name: e2e.example.com/share
    count: 8
    env:
      SHARE_COUNT: "{{ .Count }}"
    devices:
      - hostPath: /dev/zero
        containerPath: /dev/share
        permissions: r
`

const (
	fpga  = "e2e.example.com/fpga"
	seat  = "e2e.example.com/seat"
	share = "e2e.example.com/share"
)

// expectedRun is what allocationManifest says a container gets for the
// device IDs the kubelet chose, resource -> IDs. Written out by hand from
// the manifest, not computed by the main module's renderer. IDs are in
// manifest order, which for these IDs is also sorted order.
func expectedRun(ids map[string][]string) []string {
	var want []string
	add := func(format string, args ...any) { want = append(want, fmt.Sprintf(format, args...)) }
	if got := ids[fpga]; len(got) > 0 {
		add("env FPGA_IDS=%s", strings.Join(got, ","))
		add("env FPGA_COUNT=%d", len(got))
		add("env FPGA_NODE=%s", nodeName)
		add("annotation e2e.example.com/fpga.ids=%s", strings.Join(got, ","))
		add("mount /opt/fpga <- /var/lib/fpga/shared ro")
		for i, id := range got {
			add("mount /dev/fpga/%s <- /var/lib/fpga/%s rw", id, id)
			add("device /dev/fpga%d <- /dev/null rw", i)
			add("cdi e2e.example.com/fpga=%s", id)
		}
	}
	if got := ids[seat]; len(got) > 0 {
		add("env SEAT_IDS=%s", strings.Join(got, " "))
		add("env SEAT_RESOURCE=%s", seat)
		add("annotation e2e.example.com/seats=%d", len(got))
		for _, id := range got {
			add("mount /etc/seats/%s.lic <- /srv/seats/%s.lic ro", id, id)
		}
		add("cdi e2e.example.com/seat=pool")
	}
	if got := ids[share]; len(got) > 0 {
		add("env SHARE_COUNT=%d", len(got))
		add("device /dev/share <- /dev/zero r")
	}
	sort.Strings(want)
	return want
}

// describeRun flattens the kubelet's run options for a container into the
// same lines as expectedRun, sorted: the kubelet merges resources by
// ranging over a map, so order across resources means nothing.
func describeRun(opts *devicemanager.DeviceRunContainerOptions) []string {
	var got []string
	for _, e := range opts.Envs {
		got = append(got, fmt.Sprintf("env %s=%s", e.Name, e.Value))
	}
	for _, a := range opts.Annotations {
		got = append(got, fmt.Sprintf("annotation %s=%s", a.Name, a.Value))
	}
	for _, m := range opts.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		got = append(got, fmt.Sprintf("mount %s <- %s %s", m.ContainerPath, m.HostPath, mode))
	}
	for _, d := range opts.Devices {
		got = append(got, fmt.Sprintf("device %s <- %s %s", d.PathInContainer, d.PathOnHost, d.Permissions))
	}
	for _, c := range opts.CDIDevices {
		got = append(got, "cdi "+c.Name)
	}
	sort.Strings(got)
	return got
}

// diffLines says which lines are missing from got and which are extra.
func diffLines(got, want []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "\n  missing: %s", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "\n  extra:   %s", g)
		}
	}
	if b.Len() == 0 && !slices.Equal(got, want) {
		fmt.Fprintf(&b, "\n  got  %q\n  want %q", got, want)
	}
	return b.String()
}

// A pod of two containers asking for a mix of resources is
// admitted by the kubelet; each container gets exactly what the manifest
// says for the devices the kubelet chose, the two get disjoint devices,
// and a request beyond what is left is refused by the kubelet while the
// host keeps serving.
func TestPodWithMixedResources(t *testing.T) {
	k := startKubelet(t)
	// The vendor's spec that the manifest's cdiDevices name: without it
	// the devices would be Unhealthy.
	writeVendorSpec(t, "e2e.example.com/fpga", "fpga-0", "fpga-1", "fpga-2", "fpga-3")
	writeVendorSpec(t, "e2e.example.com/seat", "pool")
	counts := manifestCounts(t, []byte(allocationManifest))
	h := startHost(t, writeManifest(t, allocationManifest))
	k.registeredAll(t, counts)

	requests := map[string]map[string]int64{
		"trainer": {fpga: 2, seat: 1, share: 3},
		"sidecar": {fpga: 1, seat: 2},
	}
	pod := newPod("mixed",
		podContainer{Name: "trainer", Limits: requests["trainer"]},
		podContainer{Name: "sidecar", Limits: requests["sidecar"]},
	)
	if err := k.admit(pod); err != nil {
		t.Fatalf("the kubelet refused pod mixed: %v", err)
	}

	held := map[string]map[string][]string{} // container -> resource -> IDs
	for _, c := range []string{"trainer", "sidecar"} {
		ids := k.devices(pod, c)
		held[c] = ids
		for res, n := range requests[c] {
			if int64(len(ids[res])) != n {
				t.Errorf("%s got %d %s (%v), asked for %d", c, len(ids[res]), res, ids[res], n)
			}
		}
		got, want := describeRun(k.runOptions(pod, c)), expectedRun(ids)
		if d := diffLines(got, want); d != "" {
			t.Errorf("container %s (devices %v): run options differ from the manifest:%s", c, ids, d)
		}
	}
	for _, res := range []string{fpga, seat} {
		for _, id := range held["trainer"][res] {
			if slices.Contains(held["sidecar"][res], id) {
				t.Errorf("%s %s given to both containers (trainer %v, sidecar %v)", res, id, held["trainer"][res], held["sidecar"][res])
			}
		}
	}

	// 1 fpga, 0 seats, 5 shares are left.
	for _, over := range []map[string]int64{{seat: 1}, {fpga: 2}, {share: 6}, {fpga: 1, seat: 1}} {
		greedy := newPod("greedy", podContainer{Name: "c", Limits: over})
		if err := k.admit(greedy); err == nil {
			t.Errorf("the kubelet admitted %v with 1 fpga, 0 seats, 5 shares left", over)
		} else {
			t.Logf("refused as expected: %v: %v", over, err)
		}
	}
	if ok, why := h.alive(); !ok {
		t.Fatalf("after the refused requests: %s", why)
	}
	if ok, why := k.capacityIs(allHealthy(counts))(); !ok {
		t.Fatalf("after the refused requests: %s", why)
	}

	// What is left is still handed out, and the first pod keeps its devices.
	rest := newPod("rest", podContainer{Name: "c", Limits: map[string]int64{fpga: 1, share: 5}})
	if err := k.admit(rest); err != nil {
		t.Fatalf("the kubelet refused the last fpga and shares: %v", err)
	}
	restIDs := k.devices(rest, "c")
	if d := diffLines(describeRun(k.runOptions(rest, "c")), expectedRun(restIDs)); d != "" {
		t.Errorf("pod rest (devices %v): run options differ from the manifest:%s", restIDs, d)
	}
	for _, c := range []string{"trainer", "sidecar"} {
		if got := k.devices(pod, c); !sameIDs(got, held[c]) {
			t.Errorf("%s's devices changed: %v, were %v", c, got, held[c])
		}
	}
	var fpgas []string
	for _, ids := range []map[string][]string{held["trainer"], held["sidecar"], restIDs} {
		fpgas = append(fpgas, ids[fpga]...)
	}
	sort.Strings(fpgas)
	if want := []string{"fpga-0", "fpga-1", "fpga-2", "fpga-3"}; !slices.Equal(fpgas, want) {
		t.Errorf("fpgas handed out across the pods: %v, want each of %v once", fpgas, want)
	}
}

func sameIDs(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for res, ids := range a {
		if !slices.Equal(ids, b[res]) {
			return false
		}
	}
	return true
}
