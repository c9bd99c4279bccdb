package dra

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"

	"simple-device-plugin/cdi"
	"simple-device-plugin/manifest"
)

func resource(t *testing.T, yaml string) *manifest.Resource {
	t.Helper()
	m, err := manifest.Parse([]byte("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n" + yaml))
	if err != nil {
		t.Fatal(err)
	}
	return m.Resources[0]
}

const gadget = `  - name: example.com/gadget
    count: 130
    topology: {numaNodes: 2}
    unhealthy: [gadget-1]
    api: dra
    dra:
      attributes: {model: virtual, gen: "{{ .Index }}", fw: "1.4.2", fast: "true"}
      capacity: {memory: 16Gi}
    env: {GADGET_IDS: '{{ join .IDs "," }}'}
    mounts:
      - {hostPath: "/var/lib/gadget/{{ .ID }}", containerPath: "/dev/gadget/{{ .ID }}", perDevice: true, readOnly: true}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/g{{ .Index }}", perDevice: true}
    cdiDevices:
      - {name: vendor.com/dev=all}
`

func TestResources(t *testing.T) {
	r := resource(t, gadget)
	unhealthy := Unhealthy(r, "n1", nil)
	res, err := Resources(r, "n1", func(id string) bool { return unhealthy[id] })
	if err != nil {
		t.Fatal(err)
	}
	pool := res.Pools["n1"]
	var sizes []int
	for _, s := range pool.Slices {
		sizes = append(sizes, len(s.Devices))
	}
	if !slices.Equal(sizes, []int{64, 64, 2}) {
		t.Fatalf("slice sizes %v, want 64, 64, 2", sizes)
	}
	d := pool.Slices[0].Devices[1]
	if d.Name != "gadget-1" || len(d.Taints) != 1 || d.Taints[0].Effect != resourceapi.DeviceTaintEffectNoSchedule || d.Taints[0].Key != "gadget.example.com/unhealthy" {
		t.Errorf("unhealthy device: %+v", d)
	}
	if len(pool.Slices[0].Devices[0].Taints) != 0 {
		t.Errorf("healthy device tainted: %+v", pool.Slices[0].Devices[0].Taints)
	}
	d = pool.Slices[2].Devices[1] // gadget-129, NUMA node 1
	want := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		"index": {IntValue: new(int64(129))}, "id": {StringValue: new("gadget-129")}, "numaNode": {IntValue: new(int64(1))},
		"model": {StringValue: new("virtual")}, "gen": {IntValue: new(int64(129))}, "fw": {VersionValue: new("1.4.2")}, "fast": {BoolValue: new(true)},
	}
	if !reflect.DeepEqual(d.Attributes, want) {
		t.Errorf("attributes of %s:\n got %v\nwant %v", d.Name, d.Attributes, want)
	}
	if c := d.Capacity["memory"]; c.Value.String() != "16Gi" {
		t.Errorf("capacity %v", d.Capacity)
	}
	objs, err := ResourceSlices(r, "n1", nil)
	if err != nil || len(objs) != 3 || objs[2].Spec.Pool.ResourceSliceCount != 3 || *objs[0].Spec.NodeName != "n1" {
		t.Errorf("ResourceSlices: %d, %v", len(objs), err)
	}
	class := DeviceClass(r)
	if class.Name != "gadget.example.com" || *class.Spec.ExtendedResourceName != "example.com/gadget" || class.Spec.Selectors[0].CEL.Expression != `device.driver == "gadget.example.com"` {
		t.Errorf("DeviceClass %+v", class)
	}
}

func claimOf(uid, name string, results ...resourceapi.DeviceRequestAllocationResult) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Namespace: "default", Name: name},
		Status:     resourceapi.ResourceClaimStatus{Allocation: &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{Results: results}}},
	}
}

func result(request, pool, device string) resourceapi.DeviceRequestAllocationResult {
	return resourceapi.DeviceRequestAllocationResult{Request: request, Driver: "gadget.example.com", Pool: pool, Device: device}
}

func newTestDriver(t *testing.T, dir string, specDir *cdi.Dir, r *manifest.Resource) *driver {
	t.Helper()
	metrics, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := readCheckpoint(checkpointPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	return &driver{name: r.Driver(), resource: r.Name, node: "n1", dir: dir, cdi: specDir, log: slog.New(slog.DiscardHandler), metrics: metrics, res: r, claims: claims}
}

func TestPrepareUnprepare(t *testing.T) {
	r := resource(t, gadget)
	dir, specPath := t.TempDir(), t.TempDir()
	specDir, err := cdi.OpenDir(specPath)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDriver(t, dir, specDir, r)
	ctx := context.Background()
	c1 := claimOf("uid-1", "c1", result("gpu", "n1", "gadget-3"), result("gpu", "n1", "gadget-2"), result("other", "n1", "gadget-7"),
		resourceapi.DeviceRequestAllocationResult{Request: "foreign", Driver: "other.example.com", Pool: "n1", Device: "x"})

	prepare := func(d *driver, c *resourceapi.ResourceClaim) kubeletplugin.PrepareResult {
		t.Helper()
		out, err := d.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c})
		if err != nil {
			t.Fatal(err)
		}
		return out[c.UID]
	}
	got := prepare(d, c1)
	if got.Err != nil {
		t.Fatal(got.Err)
	}
	var names []string
	for _, dev := range got.Devices {
		names = append(names, fmt.Sprintf("%s/%s:%v", dev.Requests[0], dev.DeviceName, dev.CDIDeviceIDs))
	}
	want := []string{
		"gpu/gadget-2:[gadget.example.com/claim=uid-1-gpu vendor.com/dev=all]", "gpu/gadget-3:[]",
		"other/gadget-7:[gadget.example.com/claim=uid-1-other vendor.com/dev=all]",
	}
	if !slices.Equal(names, want) {
		t.Errorf("devices:\n got %v\nwant %v", names, want)
	}

	// The spec holds exactly the request's devices, read back as the
	// runtime reads it.
	file := filepath.Join(specPath, cdi.ClaimFileName("gadget.example.com", "uid-1"))
	spec, err := cdiapi.ReadSpec(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	gpu := spec.GetDevice("uid-1-gpu")
	if gpu == nil {
		t.Fatalf("no device uid-1-gpu in %s", file)
	}
	edits := gpu.ContainerEdits
	if !slices.Equal(edits.Env, []string{"GADGET_IDS=gadget-2,gadget-3"}) || len(edits.Mounts) != 2 || edits.Mounts[1].ContainerPath != "/dev/gadget/gadget-3" ||
		!slices.Contains(edits.Mounts[0].Options, "ro") || len(edits.DeviceNodes) != 2 || edits.DeviceNodes[0].Path != "/dev/g0" {
		t.Errorf("edits of request gpu: %+v", edits)
	}

	// Prepared again (a kubelet restart): the same answer; a spec that went
	// (a reboot) is written again.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if again := prepare(d, c1); again.Err != nil || !reflect.DeepEqual(again.Devices, got.Devices) {
		t.Errorf("prepared again: %+v, want %+v", again, got)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("spec not rewritten: %v", err)
	}

	// Failures are per claim, and say why.
	for _, tt := range []struct {
		claim *resourceapi.ResourceClaim
		msg   string
	}{
		{claimOf("uid-2", "c2", result("r", "n1", "gadget-2")), "gadget-2 is already prepared for claim default/c1"},
		{claimOf("uid-3", "c3", result("r", "n2", "gadget-9")), "pool n2; this node's pool is n1"},
		{claimOf("uid-4", "c4", result("r", "n1", "gadget-999")), "gadget-999"},
		{&resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{UID: "uid-5", Name: "c5"}}, "not allocated"},
	} {
		if res := prepare(d, tt.claim); res.Err == nil || !strings.Contains(res.Err.Error(), tt.msg) {
			t.Errorf("claim %s: %v, want an error with %q", tt.claim.Name, res.Err, tt.msg)
		}
	}

	// A new process (a restarted driver) unprepares from the checkpoint.
	d2 := newTestDriver(t, dir, specDir, r)
	out, err := d2.UnprepareResourceClaims(ctx, []kubeletplugin.NamespacedObject{{UID: "uid-1"}, {UID: "never-prepared"}})
	if err != nil || out["uid-1"] != nil || out["never-prepared"] != nil {
		t.Fatalf("unprepare: %v %v", out, err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("spec still there after unprepare: %v", err)
	}
	if claims, _ := readCheckpoint(checkpointPath(dir)); len(claims) != 0 {
		t.Errorf("checkpoint still holds %v", claims)
	}
	// The device is free for another claim now.
	if res := prepare(d2, claimOf("uid-2", "c2", result("r", "n1", "gadget-2"))); res.Err != nil {
		t.Errorf("after unprepare: %v", res.Err)
	}
}

func TestDamagedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(checkpointPath(dir), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readCheckpoint(checkpointPath(dir)); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("damaged checkpoint: %v", err)
	}
}

func TestApplyClass(t *testing.T) {
	r := resource(t, gadget)
	ctx := context.Background()
	tests := []struct {
		name    string
		manager string // of a class there before; "" for none
		err     string
	}{
		{"created", "", ""},
		{"ours already", FieldManager, ""},
		{"someone else's", "kubectl-create", "not ours (managed by [kubectl-create])"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset()
			if tt.manager != "" {
				c := &resourceapi.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: "gadget.example.com", Labels: map[string]string{"made-by": tt.manager}}}
				if _, err := client.ResourceV1().DeviceClasses().Create(ctx, c, metav1.CreateOptions{FieldManager: tt.manager}); err != nil {
					t.Fatal(err)
				}
			}
			m := New(Config{Client: nil})
			m.client = client
			err := m.applyClass(ctx, r)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				got, _ := client.ResourceV1().DeviceClasses().Get(ctx, "gadget.example.com", metav1.GetOptions{})
				if got.Spec.ExtendedResourceName != nil {
					t.Errorf("someone else's class was changed: %+v", got.Spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := client.ResourceV1().DeviceClasses().Get(ctx, "gadget.example.com", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Spec.ExtendedResourceName == nil || *got.Spec.ExtendedResourceName != "example.com/gadget" || len(got.Spec.Selectors) != 1 {
				t.Errorf("class spec %+v", got.Spec)
			}
		})
	}
}

// The manager against client-go's fake API: a driver started (the helper's
// real sockets in temp dirs, no kubelet), its DeviceClass applied, slices
// deleted for exactly this node and driver when it goes, and the class
// deleted once no resource has its driver (a rename included).
func TestManagerLifecycle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}})
	var mu sync.Mutex
	var deletions []string // field selectors of slice deletions
	client.PrependReactor("delete-collection", "resourceslices", func(a clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		deletions = append(deletions, a.(clienttesting.DeleteCollectionActionImpl).GetListOptions().FieldSelector)
		return true, nil, nil
	})
	specDir, err := cdi.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := New(Config{PluginDir: t.TempDir(), RegistryDir: t.TempDir(), Node: "n1", CDI: specDir, Retry: 10 * time.Millisecond,
		Client: func() (kubernetes.Interface, error) { return client, nil }})
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	classOf := func(name string) (*resourceapi.DeviceClass, error) {
		return client.ResourceV1().DeviceClasses().Get(ctx, name, metav1.GetOptions{})
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 30 s: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	r := resource(t, gadget)
	inUse := func(driver string) bool { return driver == r.Driver() }
	m.Apply([]*manifest.Resource{r}, inUse)
	waitUntil("the DeviceClass applied", func() bool { _, err := classOf("gadget.example.com"); return err == nil })
	if w := m.Waiting(); !slices.Equal(w, []string{"example.com/gadget"}) {
		t.Errorf("waiting %v: no kubelet has registered the driver", w)
	}

	// Renamed: the old driver stops, its slices and class go.
	renamed := resource(t, strings.Replace(gadget, "    dra:\n", "    dra:\n      driver: gizmo.example.com\n", 1))
	m.Apply([]*manifest.Resource{renamed}, func(driver string) bool { return driver == "gizmo.example.com" })
	mu.Lock()
	got := slices.Clone(deletions)
	mu.Unlock()
	if want := "spec.driver=gadget.example.com,spec.nodeName=n1"; !slices.Contains(got, want) {
		t.Errorf("slice deletions %q, want %q", got, want)
	}
	if _, err := classOf("gadget.example.com"); err == nil {
		t.Error("the old driver's DeviceClass is still there")
	}
	waitUntil("the new driver's DeviceClass applied", func() bool { _, err := classOf("gizmo.example.com"); return err == nil })

	// Gone from this node only (another node still has the driver): the
	// class stays.
	m.Apply(nil, func(string) bool { return true })
	if _, err := classOf("gizmo.example.com"); err != nil {
		t.Errorf("a class still in use elsewhere was deleted: %v", err)
	}
	if w := m.Waiting(); len(w) != 0 {
		t.Errorf("waiting %v after every resource went", w)
	}
}
