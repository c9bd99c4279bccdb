package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
)

// npuResource is a resource whose CDI spec the host writes, with devices ids.
func npuResource(ids string) string {
	return `  - name: e2e.example.com/npu
    ids: [` + ids + `]
    cdi: {spec: true}
    env: {NPU_IDS: '{{ join .IDs "," }}'}
    mounts:
      - {hostPath: /var/lib/npu/shared, containerPath: /opt/npu, readOnly: true}
      - {hostPath: "/var/lib/npu/{{ .ID }}", containerPath: "/run/npu/{{ .ID }}", perDevice: true}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/{{ .ID }}", perDevice: true}
`
}

const cdiHeader = "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n"

// cdiBefore: the npu, and a resource naming a vendor's CDI devices.
var cdiBefore = cdiHeader + npuResource("npu-0, npu-1, npu-2") + `  - name: e2e.example.com/vendor
    ids: [v-0, v-1, v-2]
    cdiDevices:
      - {name: "vendor.example/acc={{ .ID }}", perDevice: true}
`

// cdiGrown: the npu grows a device; the vendor resource is gone.
var cdiGrown = cdiHeader + npuResource("npu-0, npu-1, npu-2, npu-3")

const (
	npu    = "e2e.example.com/npu"
	vendor = "e2e.example.com/vendor"
)

// writeVendorSpec puts a spec of someone else's into the node's /etc/cdi.
func writeVendorSpec(t testing.TB, kind string, names ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "cdiVersion: 0.6.0\nkind: %s\ndevices:\n", kind)
	for _, n := range names {
		fmt.Fprintf(&b, "  - {name: %s, containerEdits: {env: [VENDOR_DEVICE=%s]}}\n", n, n)
	}
	path := filepath.Join(cdiStaticDir, strings.ReplaceAll(kind, "/", "_")+".yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// specDevices reads the host's spec of a resource with the CDI library,
// which validates it, and returns its devices' edits as lines.
func specDevices(t testing.TB, resource string) map[string][]string {
	t.Helper()
	path := filepath.Join(cdiSpecDir, "simple-device-plugin-"+strings.ReplaceAll(resource, "/", "_")+".yaml")
	spec, err := cdiapi.ReadSpec(path, 0)
	if err != nil {
		t.Fatalf("the CDI library cannot read the host's spec: %v", err)
	}
	out := map[string][]string{}
	for _, d := range spec.Devices {
		var edits []string
		for _, m := range d.ContainerEdits.Mounts {
			edits = append(edits, fmt.Sprintf("mount %s <- %s", m.ContainerPath, m.HostPath))
		}
		for _, n := range d.ContainerEdits.DeviceNodes {
			edits = append(edits, fmt.Sprintf("device %s <- %s", n.Path, n.HostPath))
		}
		out[spec.Kind+"="+d.Name] = edits
	}
	return out
}

// The kubelet's device manager gets CDI names for a resource with
// cdi.spec, and the spec the host wrote (read by the CDI library) holds
// exactly the per-device edits the kubelet no longer gets; a vendor's CDI
// name that no spec defines makes its device Unhealthy, so the kubelet
// never hands it out; a reload rewrites the spec before the kubelet sees
// the new device, and a removed resource takes its spec along, leaving
// files of others alone.
func TestCDISpecsWithTheKubelet(t *testing.T) {
	k := startKubelet(t)
	writeVendorSpec(t, "vendor.example/acc", "v-0", "v-1") // no v-2
	foreign := filepath.Join(cdiSpecDir, "someone-else.yaml")
	if err := os.WriteFile(foreign, []byte("cdiVersion: 0.6.0\nkind: other.example/x\ndevices: [{name: a, containerEdits: {env: [A=1]}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cm := newConfigMapVolume(t, "manifest.yaml", cdiBefore)
	h := startHost(t, cm.path())
	eventually(t, registerTimeout, "npu healthy, v-2 unhealthy", k.capacityIs(map[string]resourceCounts{npu: {3, 3}, vendor: {3, 2}}))
	if v := h.metricValue(t, "sdp_cdi_unresolved", `cdi_device="vendor.example/acc=v-2"`); v != 1 {
		t.Errorf("sdp_cdi_unresolved for v-2 = %v, want 1", v)
	}
	if !strings.Contains(h.logs(), "vendor.example/acc=v-2") {
		t.Errorf("the host's logs do not name vendor.example/acc=v-2:\n%s", h.logs())
	}

	pod := newPod("cdi", podContainer{Name: "c", Limits: map[string]int64{npu: 2, vendor: 2}})
	if err := k.admit(pod); err != nil {
		t.Fatalf("admit: %v", err)
	}
	ids := k.devices(pod, "c")
	if slices.Contains(ids[vendor], "v-2") {
		t.Errorf("the kubelet handed out v-2, whose CDI device does not resolve")
	}
	var want []string
	want = append(want, "env NPU_IDS="+strings.Join(ids[npu], ","), "mount /opt/npu <- /var/lib/npu/shared ro")
	for _, id := range ids[npu] {
		want = append(want, "cdi "+npu+"="+id)
	}
	for _, id := range ids[vendor] {
		want = append(want, "cdi vendor.example/acc="+id)
	}
	slices.Sort(want)
	if d := diffLines(describeRun(k.runOptions(pod, "c")), want); d != "" {
		t.Errorf("run options (devices %v):%s", ids, d)
	}
	spec := specDevices(t, npu)
	for _, id := range []string{"npu-0", "npu-1", "npu-2"} {
		wantEdits := []string{fmt.Sprintf("mount /run/npu/%s <- /var/lib/npu/%s", id, id), fmt.Sprintf("device /dev/%s <- /dev/null", id)}
		if got := spec[npu+"="+id]; !slices.Equal(got, wantEdits) {
			t.Errorf("spec of %s: %q, want %q", id, got, wantEdits)
		}
	}
	if len(spec) != 3 {
		t.Errorf("spec has %d devices, want 3", len(spec))
	}
	over := newPod("over", podContainer{Name: "c", Limits: map[string]int64{vendor: 1}})
	if err := k.admit(over); err == nil {
		t.Errorf("the kubelet admitted a pod for the unresolved v-2")
	}

	// The missing spec appears: v-2 is healthy again.
	writeVendorSpec(t, "vendor.example/acc", "v-0", "v-1", "v-2")
	eventually(t, registerTimeout, "v-2 healthy", k.capacityIs(map[string]resourceCounts{npu: {3, 3}, vendor: {3, 3}}))

	// The reload: whenever the kubelet has npu-3, the spec has it.
	cm.update(cdiGrown)
	eventually(t, registerTimeout, "the grown npu", k.capacityIs(map[string]resourceCounts{npu: {4, 4}, vendor: {0, 0}}))
	if _, ok := specDevices(t, npu)[npu+"=npu-3"]; !ok {
		t.Errorf("the kubelet has npu-3 but the spec does not")
	}
	eventually(t, registerTimeout, "the vendor resource's metric gone", func() (bool, string) {
		_, found, err := h.metric("sdp_cdi_unresolved")
		return err == nil && !found, fmt.Sprintf("found %v, err %v", found, err)
	})
	next := newPod("next", podContainer{Name: "c", Limits: map[string]int64{npu: 2}})
	if err := k.admit(next); err != nil {
		t.Fatalf("admit next: %v", err)
	}
	if got := k.devices(next, "c")[npu]; !slices.Contains(got, "npu-3") {
		t.Errorf("next got %v: with the first pod holding two of npu-0..2, npu-3 must be among its two", got)
	}

	// Removed from the manifest: the spec goes, the foreign file stays.
	cm.update("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources: [{name: e2e.example.com/plain, count: 1}]\n")
	eventually(t, registerTimeout, "the npu spec removed", func() (bool, string) {
		_, err := os.Stat(filepath.Join(cdiSpecDir, "simple-device-plugin-e2e.example.com_npu.yaml"))
		return os.IsNotExist(err), fmt.Sprintf("stat: %v", err)
	})
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a spec the host did not write was touched: %v", err)
	}
}
