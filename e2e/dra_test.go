package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	oci "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
)

// The DRA tests: the built binary serves an `api: dra` resource as a DRA
// driver to the kubelet's own DRA manager (through the kubelet's plugin
// manager on plugins_registry, as the kubeletplugin helper registers) and
// publishes to a real kube-apiserver; a device-plugin resource of the same
// manifest goes to the kubelet's device manager in the same process.

// draFieldManager is the field manager of the DeviceClasses the host applies.
const draFieldManager = "simple-device-plugin"

// maxDevicesPerSlice is the most devices the host puts in one ResourceSlice.
const maxDevicesPerSlice = 64

// draResource is a manifest entry serving count devices of name
// (e2e.example.com/<short>, IDs <short>-<index>) as a DRA driver, with
// typed attributes, a capacity and per-device edits; unhealthy lists IDs
// marked unhealthy.
func draResource(name string, count int, unhealthy ...string) string {
	return resourceEntry(name, count, true, unhealthy...)
}

// pluginResource is the same resource served as a device plugin.
func pluginResource(name string, count int) string {
	return resourceEntry(name, count, false)
}

func resourceEntry(name string, count int, dra bool, unhealthy ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    count: %d\n    idTemplate: \"%s-{{ .Index }}\"\n", name, count, shortName(name))
	if dra {
		b.WriteString(`    api: dra
    dra:
      attributes:
        model: virtual-gadget
        generation: "{{ .Index }}"
        fast: "true"
        firmware: "1.4.2"
      capacity:
        memory: 16Gi
`)
	}
	fmt.Fprintf(&b, "    env:\n      %s: '{{ join .IDs \",\" }}'\n", envName(name))
	b.WriteString(`    mounts:
      - {hostPath: "/var/lib/gadget/{{ .ID }}", containerPath: "/run/gadget/{{ .ID }}", perDevice: true}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/{{ .ID }}", perDevice: true}
`)
	if len(unhealthy) > 0 {
		fmt.Fprintf(&b, "    unhealthy: [%s]\n", strings.Join(unhealthy, ", "))
	}
	return b.String()
}

// envName is the variable a resourceEntry sets to its devices' IDs:
// e2e.example.com/pub -> PUB_IDS (one per resource: the host refuses two
// resources setting one variable to allocation-dependent values).
func envName(resource string) string {
	return strings.ToUpper(strings.ReplaceAll(shortName(resource), "-", "_")) + "_IDS"
}

func draManifest(entries ...string) string {
	return "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n" + strings.Join(entries, "")
}

// shortName is the name part of a resource name: e2e.example.com/gadget -> gadget.
func shortName(resource string) string {
	_, short, _ := strings.Cut(resource, "/")
	return short
}

// driverName is the driver a resource is served as by default:
// <name part>.<domain>.
func driverName(resource string) string {
	domain, short, _ := strings.Cut(resource, "/")
	return short + "." + domain
}

// deviceIDs are the IDs of a resourceEntry of count devices.
func deviceIDs(resource string, count int) []string {
	ids := make([]string, count)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", shortName(resource), i)
	}
	return ids
}

// draSupport is whether the binary under test serves DRA at all: its
// `run --help` lists --dra-plugin-dir.
var draSupport struct {
	once sync.Once
	ok   bool
	help string
}

// requireDRA skips t when the binary under test has no DRA support yet;
// any other reason not to run fails or skips as requireE2E does.
func requireDRA(t testing.TB) {
	t.Helper()
	requireE2E(t)
	bin := hostBinary(t)
	draSupport.once.Do(func() {
		out, _ := exec.Command(bin, "run", "--help").CombinedOutput()
		draSupport.help = string(out)
		draSupport.ok = strings.Contains(draSupport.help, "--dra-plugin-dir")
	})
	if !draSupport.ok {
		t.Skipf("the binary under test has no DRA support: `run --help` lists no --dra-plugin-dir")
	}
}

// startDRAHost starts the binary on manifestPath as a DRA driver for k's
// API server and plugin directories, and as a device plugin registering on
// kubelet.sock.
func startDRAHost(t testing.TB, k *draKubelet, manifestPath string, extra ...string) *host {
	t.Helper()
	args := []string{
		"--kubeconfig", k.api.kubeconfig,
		"--dra-plugin-dir", draPluginDir,
		"--dra-registry-dir", registryDir,
		"--registration", "kubelet-socket",
	}
	return startHost(t, manifestPath, append(args, extra...)...)
}

// draSetup is what every DRA test starts from: the API server, a kubelet
// and a manifest file of the test's own; the DeviceClasses of its drivers
// are deleted when the test ends (the API server outlives the test).
func draSetup(t testing.TB, manifest string, resources ...string) (*draKubelet, string) {
	t.Helper()
	requireDRA(t)
	api := testAPIServer(t)
	k := startDRAKubelet(t, api)
	for _, r := range resources {
		deleteClassAtEnd(t, api, driverName(r))
	}
	return k, writeManifest(t, manifest)
}

func deleteClassAtEnd(t testing.TB, api *apiServer, name string) {
	t.Cleanup(func() {
		err := api.client.ResourceV1().DeviceClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete DeviceClass %s: %v", name, err)
		}
	})
}

// rewriteManifest replaces the manifest file atomically (a new file
// renamed over it), as an editor or a config tool does.
func rewriteManifest(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatalf("write manifest: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("replace manifest: %v", err)
	}
}

// wantSlices is what the node's ResourceSlices of a driver must hold.
type wantSlices struct {
	ids     []string // device names, every one of them
	tainted []string // devices with a NoSchedule taint; the others have none
	slices  int      // how many slices, if not 0
}

// slicesAre is a condition: the node's slices of driver hold exactly want,
// each in the node's pool, at most maxDevicesPerSlice devices each, and
// all of one complete pool generation.
func slicesAre(api *apiServer, driver string, want wantSlices) condition {
	return func() (bool, string) {
		got, err := nodeSlices(api, driver)
		if err != nil {
			return false, err.Error()
		}
		if len(got) == 0 && len(want.ids) > 0 {
			return false, "no slices"
		}
		if want.slices > 0 && len(got) != want.slices {
			return false, fmt.Sprintf("%d slices, want %d", len(got), want.slices)
		}
		for _, s := range got {
			switch {
			case s.Spec.Pool.Name != nodeName:
				return false, fmt.Sprintf("slice %s: pool %q, want %q", s.Name, s.Spec.Pool.Name, nodeName)
			case s.Spec.NodeName == nil || *s.Spec.NodeName != nodeName:
				return false, fmt.Sprintf("slice %s: nodeName %v, want %q", s.Name, s.Spec.NodeName, nodeName)
			case len(s.Spec.Devices) > maxDevicesPerSlice:
				return false, fmt.Sprintf("slice %s: %d devices, more than %d", s.Name, len(s.Spec.Devices), maxDevicesPerSlice)
			case s.Spec.Pool.ResourceSliceCount != int64(len(got)):
				return false, fmt.Sprintf("slice %s: pool of %d slices, %d found", s.Name, s.Spec.Pool.ResourceSliceCount, len(got))
			case s.Spec.Pool.Generation != got[0].Spec.Pool.Generation:
				return false, fmt.Sprintf("slices of pool generations %d and %d", s.Spec.Pool.Generation, got[0].Spec.Pool.Generation)
			}
		}
		devs := sliceDevices(got)
		names := slices.Sorted(maps.Keys(devs))
		if wantIDs := slices.Sorted(slices.Values(want.ids)); !slices.Equal(names, wantIDs) {
			return false, fmt.Sprintf("devices %v, want %v", names, wantIDs)
		}
		for name, d := range devs {
			noSchedule := slices.ContainsFunc(d.Taints, func(t resourceapi.DeviceTaint) bool {
				return t.Effect == resourceapi.DeviceTaintEffectNoSchedule
			})
			if wantTaint := slices.Contains(want.tainted, name); noSchedule != wantTaint {
				return false, fmt.Sprintf("device %s: taints %+v, want a NoSchedule taint: %v", name, d.Taints, wantTaint)
			}
		}
		return true, ""
	}
}

// noSlices is a condition: the node has no ResourceSlices of driver.
func noSlices(api *apiServer, driver string) condition {
	return func() (bool, string) {
		got, err := nodeSlices(api, driver)
		if err != nil {
			return false, err.Error()
		}
		if len(got) > 0 {
			return false, fmt.Sprintf("%d slices left (%s...)", len(got), got[0].Name)
		}
		return true, ""
	}
}

// describeAttributes is a device's attributes as name -> "type value",
// with names of the driver's own domain unqualified (both spellings mean
// the same attribute to CEL).
func describeAttributes(driver string, d resourceapi.Device) map[string]string {
	out := map[string]string{}
	for name, a := range d.Attributes {
		key := strings.TrimPrefix(string(name), driver+"/")
		switch {
		case a.IntValue != nil:
			out[key] = fmt.Sprintf("int %d", *a.IntValue)
		case a.BoolValue != nil:
			out[key] = fmt.Sprintf("bool %v", *a.BoolValue)
		case a.VersionValue != nil:
			out[key] = "version " + *a.VersionValue
		case a.StringValue != nil:
			out[key] = "string " + *a.StringValue
		default:
			out[key] = "empty"
		}
	}
	return out
}

// describeCapacity is a device's capacity as name -> canonical quantity.
func describeCapacity(driver string, d resourceapi.Device) map[string]string {
	out := map[string]string{}
	for name, c := range d.Capacity {
		out[strings.TrimPrefix(string(name), driver+"/")] = c.Value.String()
	}
	return out
}

// wantAttributes is what a device of draResource publishes.
func wantAttributes(id string, index int) map[string]string {
	return map[string]string{
		"model":      "string virtual-gadget",
		"generation": fmt.Sprintf("int %d", index),
		"fast":       "bool true",
		"firmware":   "version 1.4.2",
		"index":      fmt.Sprintf("int %d", index),
		"id":         "string " + id,
	}
}

// Publishing: the driver registers with the kubelet through
// plugins_registry, the device plugin of the same process with the device
// manager; the node's ResourceSlices hold every device with its typed
// attributes and capacity. A manifest reload growing the count updates the
// slice in place, one past a slice's size splits the pool, an unhealthy
// device gets a NoSchedule taint, and removing the resource deletes the
// slices and unregisters the driver.
func TestDRAPublishesResourceSlices(t *testing.T) {
	const (
		res   = "e2e.example.com/pub"
		plain = "e2e.example.com/pubplain"
	)
	driver := driverName(res)
	k, manifestPath := draSetup(t, draManifest(draResource(res, 4), pluginResource(plain, 2)), res)
	api := k.api
	h := startDRAHost(t, k, manifestPath)

	took := eventually(t, registerTimeout, "the driver registered with the kubelet", k.driverRegistered(driver, true))
	t.Logf("host started -> driver registered with the kubelet's DRA manager: %v", took.Round(1e6))
	k.registeredAll(t, map[string]int64{plain: 2})
	eventually(t, registerTimeout, "/readyz", h.statusIs("/readyz", 200))
	eventually(t, registerTimeout, "the node's slices", slicesAre(api, driver, wantSlices{ids: deviceIDs(res, 4), slices: 1}))
	if _, found := k.capacity()[res]; found {
		t.Errorf("the device manager has %s, served as DRA: %s", res, formatCounts(k.capacity()))
	}

	got, err := nodeSlices(api, driver)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Spec.Driver != driver {
		t.Errorf("slice driver %q, want %q", got[0].Spec.Driver, driver)
	}
	devs := sliceDevices(got)
	for i, id := range deviceIDs(res, 4) {
		if a, want := describeAttributes(driver, devs[id]), wantAttributes(id, i); !maps.Equal(a, want) {
			t.Errorf("attributes of %s:\n  got  %v\n  want %v", id, a, want)
		}
		if c, want := describeCapacity(driver, devs[id]), map[string]string{"memory": "16Gi"}; !maps.Equal(c, want) {
			t.Errorf("capacity of %s: %v, want %v", id, c, want)
		}
	}
	first := got[0]

	steps := []struct {
		name     string
		manifest string
		want     wantSlices
		check    func(t *testing.T, slices []resourceapi.ResourceSlice)
	}{
		{
			name:     "grown by two, in place",
			manifest: draManifest(draResource(res, 6), pluginResource(plain, 2)),
			want:     wantSlices{ids: deviceIDs(res, 6), slices: 1},
			check: func(t *testing.T, s []resourceapi.ResourceSlice) {
				if s[0].Name != first.Name || s[0].UID != first.UID {
					t.Errorf("the slice was replaced (%s %s -> %s %s), not updated in place", first.Name, first.UID, s[0].Name, s[0].UID)
				}
			},
		},
		{
			name:     "one device unhealthy",
			manifest: draManifest(draResource(res, 6, "pub-2"), pluginResource(plain, 2)),
			want:     wantSlices{ids: deviceIDs(res, 6), tainted: []string{"pub-2"}, slices: 1},
		},
		{
			name:     "healthy again",
			manifest: draManifest(draResource(res, 6), pluginResource(plain, 2)),
			want:     wantSlices{ids: deviceIDs(res, 6), slices: 1},
		},
		{
			name:     "more than one slice holds",
			manifest: draManifest(draResource(res, maxDevicesPerSlice+6), pluginResource(plain, 2)),
			want:     wantSlices{ids: deviceIDs(res, maxDevicesPerSlice+6), slices: 2},
		},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			rewriteManifest(t, manifestPath, step.manifest)
			took := eventually(t, registerTimeout, "the slices", slicesAre(api, driver, step.want))
			t.Logf("manifest rewritten -> slices: %v", took.Round(1e6))
			if step.check != nil {
				s, err := nodeSlices(api, driver)
				if err != nil {
					t.Fatal(err)
				}
				step.check(t, s)
			}
			if ok, why := k.driverRegistered(driver, true)(); !ok {
				t.Errorf("after the reload: %s", why)
			}
		})
	}

	// The resource removed: its slices go, the driver unregisters, its
	// sockets go; the device plugin stays.
	rewriteManifest(t, manifestPath, draManifest(pluginResource(plain, 2)))
	eventually(t, registerTimeout, "the slices deleted", noSlices(api, driver))
	eventually(t, registerTimeout, "the driver unregistered", k.driverRegistered(driver, false))
	eventually(t, registerTimeout, "the driver's sockets removed", func() (bool, string) {
		for _, p := range []string{filepath.Join(draPluginDir, driver, "dra.sock"), filepath.Join(registryDir, driver+"-reg.sock")} {
			if _, err := os.Lstat(p); err == nil {
				return false, p + " is still there"
			}
		}
		return true, ""
	})
	k.registeredAll(t, map[string]int64{plain: 2})
	if ok, why := h.alive(); !ok {
		t.Fatal(why)
	}
}

// The DeviceClass of a DRA resource: named after the driver, selecting its
// devices, naming the resource as its extended resource, applied by the
// host's field manager. A class of that name someone else created first is
// left as it is, and the host says so in its metric.
func TestDRADeviceClass(t *testing.T) {
	cases := []struct {
		name string
		res  string
		// before is a class of the driver's name another field manager
		// creates before the host starts, if not nil.
		before func(driver string) *resourceapi.DeviceClass
	}{
		{name: "applied", res: "e2e.example.com/cls"},
		{
			name: "someone else's",
			res:  "e2e.example.com/theirs",
			before: func(driver string) *resourceapi.DeviceClass {
				return &resourceapi.DeviceClass{
					ObjectMeta: metav1.ObjectMeta{Name: driver},
					Spec: resourceapi.DeviceClassSpec{Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
						Expression: fmt.Sprintf(`device.driver == %q && device.attributes[%q].model == "special"`, driver, driver),
					}}}},
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			driver := driverName(tc.res)
			k, manifestPath := draSetup(t, draManifest(draResource(tc.res, 2)), tc.res)
			classes := k.api.client.ResourceV1().DeviceClasses()
			ctx := context.Background()
			var before *resourceapi.DeviceClass
			if tc.before != nil {
				var err error
				before, err = classes.Create(ctx, tc.before(driver), metav1.CreateOptions{FieldManager: "someone-else"})
				if err != nil {
					t.Fatalf("create someone else's DeviceClass: %v", err)
				}
			}
			h := startDRAHost(t, k, manifestPath)
			eventually(t, registerTimeout, "the slices", slicesAre(k.api, driver, wantSlices{ids: deviceIDs(tc.res, 2)}))

			if before == nil {
				var class *resourceapi.DeviceClass
				eventually(t, registerTimeout, "the DeviceClass", func() (bool, string) {
					var err error
					class, err = classes.Get(ctx, driver, metav1.GetOptions{})
					return err == nil, fmt.Sprint(err)
				})
				wantExpr := fmt.Sprintf("device.driver == %q", driver)
				if len(class.Spec.Selectors) != 1 || class.Spec.Selectors[0].CEL == nil || class.Spec.Selectors[0].CEL.Expression != wantExpr {
					t.Errorf("selectors %+v, want one CEL selector %s", class.Spec.Selectors, wantExpr)
				}
				if class.Spec.ExtendedResourceName == nil || *class.Spec.ExtendedResourceName != tc.res {
					t.Errorf("extendedResourceName %v, want %s", class.Spec.ExtendedResourceName, tc.res)
				}
				if !slices.ContainsFunc(class.ManagedFields, func(f metav1.ManagedFieldsEntry) bool {
					return f.Manager == draFieldManager && f.Operation == metav1.ManagedFieldsOperationApply
				}) {
					t.Errorf("managed fields %+v: no apply by %s", class.ManagedFields, draFieldManager)
				}
				// The host counts the apply once the API server answered.
				eventually(t, registerTimeout, "sdp_dra_class_applies_total{result=ok}", func() (bool, string) {
					v, _, err := h.metric("sdp_dra_class_applies_total", `resource="`+tc.res+`"`, `result="ok"`)
					return err == nil && v >= 1, fmt.Sprintf("%v (err %v)", v, err)
				})
				return
			}

			// Someone else's class: the host tried, and counted that it
			// did not apply it.
			eventually(t, registerTimeout, "the host to report the class it did not apply", func() (bool, string) {
				all, _, err := h.metric("sdp_dra_class_applies_total", `resource="`+tc.res+`"`)
				if err != nil {
					return false, err.Error()
				}
				ok, _, _ := h.metric("sdp_dra_class_applies_total", `resource="`+tc.res+`"`, `result="ok"`)
				return all-ok >= 1, fmt.Sprintf("applies %v, ok %v", all, ok)
			})
			after, err := classes.Get(ctx, driver, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("someone else's DeviceClass: %v", err)
			}
			if after.ResourceVersion != before.ResourceVersion {
				t.Errorf("someone else's DeviceClass was written: resourceVersion %s -> %s, spec %+v", before.ResourceVersion, after.ResourceVersion, after.Spec)
			}
			if slices.ContainsFunc(after.ManagedFields, func(f metav1.ManagedFieldsEntry) bool { return f.Manager == draFieldManager }) {
				t.Errorf("%s manages fields of someone else's DeviceClass: %+v", draFieldManager, after.ManagedFields)
			}
			if ok, why := k.driverRegistered(driver, true)(); !ok {
				t.Errorf("the driver: %s", why)
			}
		})
	}
}

// cdiEdits applies the CDI devices the kubelet hands the runtime to an
// empty container spec, with the CDI library and the node's spec dirs as
// a runtime does, and describes the result: "env K=V", "mount C <- H",
// "device P". A name no spec defines fails the test.
func cdiEdits(t testing.TB, names []string) []string {
	t.Helper()
	cache, err := cdiapi.NewCache(cdiapi.WithSpecDirs(cdiStaticDir, cdiSpecDir), cdiapi.WithAutoRefresh(false))
	if err != nil {
		t.Fatalf("CDI cache: %v", err)
	}
	spec := &oci.Spec{Process: &oci.Process{}, Linux: &oci.Linux{}}
	if unresolved, err := cache.InjectDevices(spec, names...); err != nil {
		t.Fatalf("a runtime cannot inject %v (unresolved %v): %v; spec files %v", names, unresolved, err, cdiSpecFiles(t, ""))
	}
	var out []string
	for _, e := range spec.Process.Env {
		out = append(out, "env "+e)
	}
	for _, m := range spec.Mounts {
		out = append(out, fmt.Sprintf("mount %s <- %s", m.Destination, m.Source))
	}
	for _, d := range spec.Linux.Devices {
		out = append(out, "device "+d.Path)
	}
	sort.Strings(out)
	return out
}

// wantEdits is what a container using devices ids of a draResource of
// resource gets.
func wantEdits(resource string, ids ...string) []string {
	out := []string{"env " + envName(resource) + "=" + strings.Join(ids, ",")}
	for _, id := range ids {
		out = append(out, fmt.Sprintf("mount /run/gadget/%s <- /var/lib/gadget/%s", id, id), "device /dev/"+id)
	}
	sort.Strings(out)
	return out
}

// claimSpecFile is the CDI spec the host writes for a prepared claim.
func claimSpecFile(driver string, claim *resourceapi.ResourceClaim) string {
	return filepath.Join(cdiSpecDir, fmt.Sprintf("simple-device-plugin-dra_%s_%s.yaml", driver, claim.UID))
}

// preparedClaimsIs is a condition: the host's sdp_dra_prepared_claims of
// resource is n.
func preparedClaimsIs(h *host, resource string, n float64) condition {
	return func() (bool, string) {
		v, _, err := h.metric("sdp_dra_prepared_claims", `resource="`+resource+`"`)
		if err != nil {
			return false, err.Error()
		}
		return v == n, fmt.Sprintf("sdp_dra_prepared_claims = %v, want %v", v, n)
	}
}

// preparedAs checks what the kubelet hands the runtime for pod's container
// "c" after preparing claim: one CDI device of the claim's kind per
// request, defined by the claim's spec file, giving exactly the edits of
// ids.
func preparedAs(t testing.TB, k *draKubelet, resource string, pod *v1.Pod, claim *resourceapi.ResourceClaim, ids ...string) {
	t.Helper()
	driver := driverName(resource)
	names, err := k.cdiDevices(pod, "c")
	if err != nil {
		t.Fatalf("the kubelet's CDI devices for %s: %v", pod.Name, err)
	}
	if want := []string{fmt.Sprintf("%s/claim=%s-dev", driver, claim.UID)}; !slices.Equal(names, want) {
		t.Errorf("CDI devices %v, want %v", names, want)
	}
	if _, err := os.Stat(claimSpecFile(driver, claim)); err != nil {
		t.Errorf("the claim's CDI spec: %v", err)
	}
	if d := diffLines(cdiEdits(t, names), wantEdits(resource, ids...)); d != "" {
		t.Errorf("the container's edits from %v:%s", names, d)
	}
}

// Prepare and unprepare through the kubelet's DRA manager: the CDI devices
// the kubelet gets resolve to the claim's own spec file, which gives the
// container the edits of exactly the allocated devices; two claims get
// their own; unprepare removes the spec. After a kubelet restart whose node
// lost the spec (as /var/run/cdi after a reboot), the kubelet's
// re-admission prepares again and the spec is written again: never a CDI
// name without a spec.
func TestDRAPrepareThroughTheKubelet(t *testing.T) {
	const res = "e2e.example.com/prep"
	driver := driverName(res)
	k, manifestPath := draSetup(t, draManifest(draResource(res, 4)), res)
	h := startDRAHost(t, k, manifestPath)
	eventually(t, registerTimeout, "the driver registered", k.driverRegistered(driver, true))
	eventually(t, registerTimeout, "the slices", slicesAre(k.api, driver, wantSlices{ids: deviceIDs(res, 4)}))

	podA, podB := claimPod("prep-a", "prep-a"), claimPod("prep-b", "prep-b")
	claimA := createAllocatedClaim(t, k.api, "prep-a", allocation{driver: driver, request: "dev", devices: []string{"prep-1", "prep-3"}}, podA)
	claimB := createAllocatedClaim(t, k.api, "prep-b", allocation{driver: driver, request: "dev", devices: []string{"prep-0"}}, podB)

	if err := k.prepare(podA); err != nil {
		t.Fatalf("prepare %s: %v", podA.Name, err)
	}
	preparedAs(t, k, res, podA, claimA, "prep-1", "prep-3")
	if err := k.prepare(podB); err != nil {
		t.Fatalf("prepare %s: %v", podB.Name, err)
	}
	preparedAs(t, k, res, podB, claimB, "prep-0")
	preparedAs(t, k, res, podA, claimA, "prep-1", "prep-3")
	eventually(t, registerTimeout, "two prepared claims", preparedClaimsIs(h, res, 2))

	if err := k.unprepare(podB); err != nil {
		t.Fatalf("unprepare %s: %v", podB.Name, err)
	}
	if _, err := os.Stat(claimSpecFile(driver, claimB)); !os.IsNotExist(err) {
		t.Errorf("after unprepare the spec of %s is still there: %v", claimB.Name, err)
	}
	if _, err := os.Stat(claimSpecFile(driver, claimA)); err != nil {
		t.Errorf("unprepare of %s took the spec of %s: %v", claimB.Name, claimA.Name, err)
	}
	eventually(t, registerTimeout, "one prepared claim", preparedClaimsIs(h, res, 1))

	// The node loses its CDI specs, the kubelet restarts and admits the
	// pod again, which prepares its claim again.
	if err := os.Remove(claimSpecFile(driver, claimA)); err != nil {
		t.Fatal(err)
	}
	k.restart()
	eventually(t, registerTimeout, "the driver registered again", k.driverRegistered(driver, true))
	if err := k.prepare(podA); err != nil {
		t.Fatalf("prepare %s again: %v", podA.Name, err)
	}
	preparedAs(t, k, res, podA, claimA, "prep-1", "prep-3")

	if err := k.unprepare(podA); err != nil {
		t.Fatalf("unprepare %s: %v", podA.Name, err)
	}
	if files := cdiSpecFiles(t, "simple-device-plugin-dra_"+driver+"_"); len(files) > 0 {
		t.Errorf("CDI specs left after every claim was unprepared: %v", files)
	}
	eventually(t, registerTimeout, "no prepared claims", preparedClaimsIs(h, res, 0))
	if got := prepareResults(t, h, res, "error"); got != 0 {
		t.Errorf("sdp_dra_prepares_total{result=error} = %v", got)
	}
}

// prepareResults sums sdp_dra_prepares_total of resource with result.
func prepareResults(t testing.TB, h *host, resource, result string) float64 {
	t.Helper()
	return h.metricValue(t, "sdp_dra_prepares_total", `resource="`+resource+`"`, `result="`+result+`"`)
}

// A restart of the binary: on SIGTERM it deletes its slices and leaves the
// prepared claim's spec; the new process publishes again, registers again,
// and unprepares the claim the old one prepared (from its checkpoint).
func TestDRAHostRestart(t *testing.T) {
	const res = "e2e.example.com/hrst"
	driver := driverName(res)
	k, manifestPath := draSetup(t, draManifest(draResource(res, 3)), res)
	h := startDRAHost(t, k, manifestPath)
	eventually(t, registerTimeout, "the driver registered", k.driverRegistered(driver, true))
	eventually(t, registerTimeout, "the slices", slicesAre(k.api, driver, wantSlices{ids: deviceIDs(res, 3)}))

	pod := claimPod("hrst", "hrst")
	claim := createAllocatedClaim(t, k.api, "hrst", allocation{driver: driver, request: "dev", devices: []string{"hrst-2"}}, pod)
	if err := k.prepare(pod); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	preparedAs(t, k, res, pod, claim, "hrst-2")

	h.stop()
	if code := h.exitCode(); code != 0 {
		t.Errorf("the host exited %d on SIGTERM", code)
	}
	if ok, why := noSlices(k.api, driver)(); !ok {
		t.Errorf("after the host exited: %s", why)
	}
	if _, err := os.Stat(claimSpecFile(driver, claim)); err != nil {
		t.Errorf("the prepared claim's spec went with the host (the pod still uses it): %v", err)
	}

	h2 := startDRAHost(t, k, manifestPath)
	eventually(t, registerTimeout, "the slices again", slicesAre(k.api, driver, wantSlices{ids: deviceIDs(res, 3)}))
	eventually(t, registerTimeout, "the driver registered again", k.driverRegistered(driver, true))
	// The new process read its checkpoint before it registered.
	if ok, why := preparedClaimsIs(h2, res, 1)(); !ok {
		t.Errorf("the new host does not count the claim the old one prepared: %s", why)
	}
	if err := k.unprepare(pod); err != nil {
		t.Fatalf("unprepare through the new host: %v", err)
	}
	if _, err := os.Stat(claimSpecFile(driver, claim)); !os.IsNotExist(err) {
		t.Errorf("the new host did not remove the spec of the claim the old one prepared: %v", err)
	}
	eventually(t, registerTimeout, "no prepared claims", preparedClaimsIs(h2, res, 0))
}

// A kubelet restart: the new DRA manager wipes the node's slices, the new
// plugin manager finds the driver's registration socket, the driver
// publishes its slices again, and the pod's claim, prepared before, is
// prepared again (re-admission) and unprepared.
func TestDRAKubeletRestart(t *testing.T) {
	const res = "e2e.example.com/krst"
	driver := driverName(res)
	k, manifestPath := draSetup(t, draManifest(draResource(res, 2)), res)
	h := startDRAHost(t, k, manifestPath)
	eventually(t, registerTimeout, "the driver registered", k.driverRegistered(driver, true))
	want := wantSlices{ids: deviceIDs(res, 2)}
	eventually(t, registerTimeout, "the slices", slicesAre(k.api, driver, want))

	pod := claimPod("krst", "krst")
	claim := createAllocatedClaim(t, k.api, "krst", allocation{driver: driver, request: "dev", devices: []string{"krst-0", "krst-1"}}, pod)
	if err := k.prepare(pod); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	preparedAs(t, k, res, pod, claim, "krst-0", "krst-1")

	for i := range 2 {
		k.restart() // returns once the new DRA manager has wiped the slices
		took := eventually(t, registerTimeout, "the driver registered again", k.driverRegistered(driver, true))
		took2 := eventually(t, registerTimeout, "the slices published again", slicesAre(k.api, driver, want))
		t.Logf("kubelet restart %d: driver registered %v, slices back %v after the wipe", i+1, took.Round(1e6), (took + took2).Round(1e6))
		if err := k.prepare(pod); err != nil {
			t.Fatalf("prepare after kubelet restart %d: %v", i+1, err)
		}
		preparedAs(t, k, res, pod, claim, "krst-0", "krst-1")
	}
	if err := k.unprepare(pod); err != nil {
		t.Fatalf("unprepare: %v", err)
	}
	if _, err := os.Stat(claimSpecFile(driver, claim)); !os.IsNotExist(err) {
		t.Errorf("spec left after unprepare: %v", err)
	}
	if ok, why := h.alive(); !ok {
		t.Fatal(why)
	}
}
