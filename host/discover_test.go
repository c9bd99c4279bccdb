package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/cdi"
	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
)

// hostRoot is a temporary host root with dev/ for device nodes.
func hostRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// mknod makes a character device node under root, as the kernel would
// (the null device's numbers with another minor each); without the
// privilege the test is skipped.
func mknod(t *testing.T, root, path string, minor uint32) {
	t.Helper()
	full := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(full, syscall.S_IFCHR|0o666, int(unix.Mkdev(1, minor))); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mknod %s: %v (run as root)", path, err)
		}
		t.Fatal(err)
	}
}

// listed is the device IDs the stand-in kubelet has from resource's stream.
func listed(k *kubeletsim.Kubelet, resource string) []string {
	var ids []string
	for _, d := range k.Record(resource).Devices {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	return ids
}

func waitListed(t *testing.T, k *kubeletsim.Kubelet, resource string, want ...string) {
	t.Helper()
	waitFor(t, resource+" listing "+strings.Join(want, ","), func() bool { return slices.Equal(listed(k, resource), want) })
}

// Discovered devices follow the host: a node that appears is listed, one
// that goes is not, on the same registration and without touching the
// other resource; an allocation carries the node.
func TestDiscoveredDevicesFollowTheHost(t *testing.T) {
	root := hostRoot(t)
	mknod(t, root, "dev/ttyUSB0", 3)
	if err := os.WriteFile(filepath.Join(root, "dev/ttyUSB9"), nil, 0o644); err != nil { // a regular file: skipped
		t.Fatal(err)
	}
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	m := mustParse(t, `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/tty
    discover: {paths: ["/dev/ttyUSB*"], containerPath: "/dev/serial/{{ .Base }}"}
    env: {TTY_IDS: '{{ join .IDs "," }}'}
  - name: example.com/other
    count: 2
`)
	rh := runHost(t, m, host.Config{DevicePluginDir: dir, NodeName: "node-1", HostRoot: root, PollInterval: 200 * time.Millisecond})
	waitRegistered(t, k, "example.com/tty", "example.com/other")
	waitListed(t, k, "example.com/tty", "ttyUSB0")

	mknod(t, root, "dev/ttyUSB1", 5)
	waitListed(t, k, "example.com/tty", "ttyUSB0", "ttyUSB1")
	resp, err := k.Endpoint("example.com/tty").Client.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"ttyUSB1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.ContainerResponses[0]
	if len(got.Devices) != 1 || got.Devices[0].HostPath != "/dev/ttyUSB1" || got.Devices[0].ContainerPath != "/dev/serial/ttyUSB1" || got.Envs["TTY_IDS"] != "ttyUSB1" {
		t.Errorf("allocation of ttyUSB1: %+v", got)
	}

	if err := os.Remove(filepath.Join(root, "dev/ttyUSB0")); err != nil {
		t.Fatal(err)
	}
	waitListed(t, k, "example.com/tty", "ttyUSB1")
	for _, r := range []string{"example.com/tty", "example.com/other"} {
		if n := k.Record(r).Registrations; n != 1 {
			t.Errorf("%s registered %d times, want once", r, n)
		}
	}
	if n := k.Record("example.com/other").Lists; n != 1 {
		t.Errorf("example.com/other got %d device lists, want 1: hotplug touched it", n)
	}
	metrics := get(t, rh.Handler(), "/metrics")
	for _, want := range []string{`sdp_discovered_matches{resource="example.com/tty"} 1`, `sdp_discover_left_out{resource="example.com/tty"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A reload that changes what to discover starts over with the new
// patterns; one that turns a counted resource into a discovered one too.
func TestReloadChangesWhatIsDiscovered(t *testing.T) {
	root := hostRoot(t)
	mknod(t, root, "dev/ttyUSB0", 3)
	mknod(t, root, "dev/ttyACM0", 5)
	mknod(t, root, "dev/fuse", 7)
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	manifest := func(tty, fuse string) string {
		return "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/tty\n" + tty + "\n  - name: example.com/fuse\n" + fuse + "\n"
	}
	rh := runHost(t, mustParse(t, manifest(`    discover: {paths: ["/dev/ttyUSB*"]}`, "    count: 1")),
		host.Config{DevicePluginDir: dir, NodeName: "node-1", HostRoot: root, PollInterval: 200 * time.Millisecond})
	waitListed(t, k, "example.com/tty", "ttyUSB0")
	waitListed(t, k, "example.com/fuse", "fuse-0")

	if _, err := rh.Apply(mustParse(t, manifest(`    discover: {paths: ["/dev/ttyUSB*", "/dev/ttyACM*"]}`, `    discover: {paths: [/dev/fuse], share: 2}`))); err != nil {
		t.Fatal(err)
	}
	waitListed(t, k, "example.com/tty", "ttyACM0", "ttyUSB0")
	waitListed(t, k, "example.com/fuse", "fuse-0", "fuse-1")
	// The new patterns are followed, not only read once.
	mknod(t, root, "dev/ttyACM1", 8)
	waitListed(t, k, "example.com/tty", "ttyACM0", "ttyACM1", "ttyUSB0")

	// A reload of the rest of the resource keeps following the host.
	if _, err := rh.Apply(mustParse(t, manifest(`    discover: {paths: ["/dev/ttyUSB*", "/dev/ttyACM*"]}
    env: {TTY: '{{ join .IDs "," }}'}`, `    discover: {paths: [/dev/fuse], share: 2}`))); err != nil {
		t.Fatal(err)
	}
	mknod(t, root, "dev/ttyACM2", 9)
	waitListed(t, k, "example.com/tty", "ttyACM0", "ttyACM1", "ttyACM2", "ttyUSB0")

	// And back to declared devices: discovery stops.
	if _, err := rh.Apply(mustParse(t, manifest("    count: 2", "    count: 1"))); err != nil {
		t.Fatal(err)
	}
	waitListed(t, k, "example.com/tty", "tty-0", "tty-1")
	waitListed(t, k, "example.com/fuse", "fuse-0")
	mknod(t, root, "dev/ttyACM3", 10)
	if ids := listed(k, "example.com/tty"); !slices.Equal(ids, []string{"tty-0", "tty-1"}) {
		t.Errorf("after discover: was removed, the tty list is %v", ids)
	}
	for _, r := range []string{"example.com/tty", "example.com/fuse"} {
		if n := k.Record(r).Registrations; n != 1 {
			t.Errorf("%s registered %d times over the reloads, want once", r, n)
		}
	}
}

// With cdi: {spec: true} the spec defines a hotplugged device before the
// kubelet hears of it, and carries its node.
func TestDiscoveredDevicesInTheCDISpec(t *testing.T) {
	root := hostRoot(t)
	mknod(t, root, "dev/ttyUSB0", 3)
	dir, specDir := shortTempDir(t), t.TempDir()
	k := startKubelet(t, dir)
	runHost(t, mustParse(t, `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/tty
    discover: {paths: ["/dev/ttyUSB*"]}
    cdi: {spec: true}
`), host.Config{DevicePluginDir: dir, NodeName: "node-1", HostRoot: root, CDISpecDir: specDir, PollInterval: 200 * time.Millisecond})
	specFile := filepath.Join(specDir, cdi.FileName("example.com/tty"))
	waitListed(t, k, "example.com/tty", "ttyUSB0")

	mknod(t, root, "dev/ttyUSB1", 5)
	waitListed(t, k, "example.com/tty", "ttyUSB0", "ttyUSB1")
	// Written before the list went out: already there when the list is seen.
	if ids := readSpecIDs(t, specFile); !slices.Contains(ids, "ttyUSB1") {
		t.Errorf("the spec defines %v when the kubelet lists ttyUSB1", ids)
	}
	data, err := os.ReadFile(specFile)
	if err != nil || !strings.Contains(string(data), "path: /dev/ttyUSB1") {
		t.Errorf("the spec lacks ttyUSB1's node (%v):\n%s", err, data)
	}
	resp, err := k.Endpoint("example.com/tty").Client.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"ttyUSB1"}}}})
	if err != nil || len(resp.ContainerResponses[0].CdiDevices) != 1 || resp.ContainerResponses[0].CdiDevices[0].GetName() != "example.com/tty=ttyUSB1" || len(resp.ContainerResponses[0].Devices) != 0 {
		t.Errorf("Allocate ttyUSB1 with a spec: %+v, %v", resp, err)
	}
}

// A reload whose spec cannot be written is pending; reverting it before it
// lands leaves discovery on what is served, not on the abandoned patterns.
func TestRevertedPendingReloadKeepsDiscovery(t *testing.T) {
	root := hostRoot(t)
	mknod(t, root, "dev/ttyUSB0", 3)
	mknod(t, root, "dev/ttyACM0", 5)
	dir, specParent := shortTempDir(t), t.TempDir()
	specDir := filepath.Join(specParent, "cdi")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		t.Fatal(err)
	}
	k := startKubelet(t, dir)
	manifest := func(pattern string) string {
		return "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/tty\n    discover: {paths: [\"" + pattern + "\"]}\n    cdi: {spec: true}\n"
	}
	rh := runHost(t, mustParse(t, manifest("/dev/ttyUSB*")), host.Config{DevicePluginDir: dir, NodeName: "node-1", HostRoot: root, CDISpecDir: specDir, PollInterval: time.Hour})
	waitListed(t, k, "example.com/tty", "ttyUSB0")

	if err := os.Rename(specDir, specDir+".away"); err != nil {
		t.Fatal(err)
	}
	res, err := rh.Apply(mustParse(t, manifest("/dev/ttyACM*")))
	if err != nil || !slices.Equal(res.Pending, []string{"example.com/tty"}) {
		t.Fatalf("reload without a spec dir: %+v, %v; want it pending", res, err)
	}
	if res, err = rh.Apply(mustParse(t, manifest("/dev/ttyUSB*"))); err != nil || !slices.Equal(res.Unchanged, []string{"example.com/tty"}) {
		t.Fatalf("revert: %+v, %v; want unchanged", res, err)
	}
	if err := os.Rename(specDir+".away", specDir); err != nil {
		t.Fatal(err)
	}
	mknod(t, root, "dev/ttyACM1", 7)
	mknod(t, root, "dev/ttyUSB1", 8)
	waitListed(t, k, "example.com/tty", "ttyUSB0", "ttyUSB1")
}

// A host root that cannot be scanned yet (not mounted) is tried again each
// rescan period, not given up on until a reload.
func TestDiscoveryRetriesAnUnusableRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "host")
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	runHost(t, mustParse(t, "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/tty\n    discover: {paths: [\"/dev/ttyUSB*\"]}\n"),
		host.Config{DevicePluginDir: dir, NodeName: "node-1", HostRoot: root, DiscoverRescan: 50 * time.Millisecond})
	waitRegistered(t, k, "example.com/tty")
	if ids := listed(k, "example.com/tty"); len(ids) != 0 {
		t.Fatalf("listed %v with no root", ids)
	}
	mknod(t, root, "dev/ttyUSB0", 3)
	waitListed(t, k, "example.com/tty", "ttyUSB0")
}
