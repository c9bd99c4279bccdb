package host_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"

	"simple-device-plugin/cdi"
	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
)

// cdiManifestOf has an FPGA resource with a generated CDI spec and the
// given IDs, and a plain resource.
func cdiManifestOf(ids string) string {
	return `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    ids: [` + ids + `]
    cdi: {spec: true}
    env: {FPGA: '{{ join .IDs "," }}'}
    mounts:
      - {hostPath: "/srv/{{ .ID }}", containerPath: "/fpga/{{ .ID }}", perDevice: true}
      - {hostPath: /srv/shared, containerPath: /shared}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/fpga-{{ .ID }}", perDevice: true}
  - name: example.com/plain
    count: 1
`
}

var (
	cdiManifest      = cdiManifestOf("f0, f1")
	cdiManifestGrown = cdiManifestOf("f0, f1, f2") // a third device
)

type cdiHost struct {
	*runningHost
	k        *kubeletsim.Kubelet
	specDir  string
	specFile string
	logs     *logBuffer
}

func startCDIHost(t *testing.T, manifestText string, specDir string, registry ...string) *cdiHost {
	t.Helper()
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	logs := &logBuffer{}
	cfg := noRetries
	cfg.PollInterval = 50 * time.Millisecond
	cfg.Backoff = host.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Stable: time.Second}
	cfg.DevicePluginDir, cfg.NodeName, cfg.CDISpecDir, cfg.CDIRegistryDirs = dir, "node-1", specDir, registry
	cfg.Registration = host.RegisterKubeletSocket
	cfg.Logger = slogTo(logs)
	rh := runHost(t, mustParse(t, manifestText), cfg)
	return &cdiHost{runningHost: rh, k: k, specDir: specDir, specFile: filepath.Join(specDir, cdi.FileName("example.com/fpga")), logs: logs}
}

// readSpecIDs is the device names of the spec file, as the CDI library reads it.
func readSpecIDs(t *testing.T, path string) []string {
	t.Helper()
	spec, err := cdiapi.ReadSpec(path, 0)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var ids []string
	for _, d := range spec.Devices {
		ids = append(ids, d.Name)
	}
	return ids
}

func deviceIDs(devs []*pluginapi.Device) []string {
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	return ids
}

// With cdi.spec the spec is written before the resource registers, and
// Allocate hands out CDI names instead of the per-device edits.
func TestGeneratedSpecBeforeRegistrationAndInAllocate(t *testing.T) {
	specDir := t.TempDir()
	h := startCDIHost(t, cdiManifest, specDir)
	waitRegistered(t, h.k, "example.com/fpga", "example.com/plain")
	if got := readSpecIDs(t, h.specFile); !slices.Equal(got, []string{"f0", "f1"}) {
		t.Errorf("spec devices %v", got)
	}
	resp, err := h.k.Endpoint("example.com/fpga").Client.Allocate(t.Context(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"f1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.ContainerResponses[0]
	var names []string
	for _, d := range c.CdiDevices {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"example.com/fpga=f1"}) || len(c.Devices) != 0 || len(c.Mounts) != 1 || c.Mounts[0].ContainerPath != "/shared" || c.Envs["FPGA"] != "f1" {
		t.Errorf("Allocate answered %v", c)
	}
	if healthy := countHealthy(h.k.Devices("example.com/fpga")); healthy != 2 {
		t.Errorf("%d healthy devices, want 2", healthy)
	}
}

// A spec dir that cannot be written at start: the resource waits and does
// not register; the others do. Once the dir is usable, it registers.
func TestSpecDirUnusableAtStart(t *testing.T) {
	base := t.TempDir()
	specDir := filepath.Join(base, "cdi")
	if err := os.WriteFile(specDir, []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startCDIHost(t, cdiManifest, specDir)
	waitRegistered(t, h.k, "example.com/plain")
	waitFor(t, "a failed spec write", func() bool {
		return counter(t, h.Metrics().Registry, "sdp_cdi_spec_writes_total", "result", "error") >= 2
	})
	if n := h.k.Registrations("example.com/fpga"); n != 0 {
		t.Fatalf("registered %d times without a spec", n)
	}
	if !h.logs.has("cannot write the CDI spec; not registering until it is written") {
		t.Errorf("no log line:\n%s", h.logs)
	}
	if err := os.Remove(specDir); err != nil {
		t.Fatal(err)
	}
	// Missing is not usable either: the host never creates the dir, where
	// no runtime may read it.
	writes := counter(t, h.Metrics().Registry, "sdp_cdi_spec_writes_total", "result", "error")
	waitFor(t, "a failed write to a missing dir", func() bool {
		return counter(t, h.Metrics().Registry, "sdp_cdi_spec_writes_total", "result", "error") > writes
	})
	if n := h.k.Registrations("example.com/fpga"); n != 0 {
		t.Fatalf("registered %d times without a spec", n)
	}
	if err := os.Mkdir(specDir, 0o755); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, h.k, "example.com/fpga")
	if got := readSpecIDs(t, h.specFile); !slices.Equal(got, []string{"f0", "f1"}) {
		t.Errorf("spec devices %v", got)
	}
}

// A reload is written into the spec before its device list goes out; a
// spec that cannot be written keeps the last good list until it can.
func TestReloadRewritesTheSpecFirst(t *testing.T) {
	h, specDir := startThenTakeSpecDirAway(t)
	// A file takes the dir's place: writes fail.
	if err := os.WriteFile(specDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	errorsBefore := counter(t, h.Metrics().Registry, "sdp_cdi_spec_writes_total", "result", "error")
	if _, err := h.Apply(mustParse(t, cdiManifestGrown)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failed write retried", func() bool {
		return counter(t, h.Metrics().Registry, "sdp_cdi_spec_writes_total", "result", "error") >= errorsBefore+2
	})
	if got := deviceIDs(h.k.Devices("example.com/fpga")); !slices.Equal(got, []string{"f0", "f1"}) {
		t.Fatalf("the kubelet has %v before the spec was written, want the last good f0 f1", got)
	}

	// The dir is back: the spec is written, then the list goes out.
	if err := os.Remove(specDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(specDir+".away", specDir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the grown list", func() bool { return len(h.k.Devices("example.com/fpga")) == 3 })
	if got := readSpecIDs(t, h.specFile); !slices.Equal(got, []string{"f0", "f1", "f2"}) {
		t.Errorf("spec devices %v once the kubelet has f2", got)
	}
}

// A spec that disappears (a reboot empties /var/run/cdi) is written again;
// a resource that leaves the manifest takes its spec along; files of
// others are never touched.
func TestSpecFollowsTheResource(t *testing.T) {
	specDir := t.TempDir()
	foreign := filepath.Join(specDir, "vendor.yaml")
	writeSpecFile(t, foreign, "vendor.io/x", "", "a")
	// Left by a previous pod for a resource that is gone now.
	stale := filepath.Join(specDir, cdi.FileName("example.com/old"))
	writeSpecFile(t, stale, "example.com/old", "{simple-device-plugin/generated-by: simple-device-plugin, simple-device-plugin/resource: example.com/old}", "a")
	h := startCDIHost(t, cdiManifest, specDir)
	waitRegistered(t, h.k, "example.com/fpga")
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the spec of a resource no longer in the manifest is still there: %v", err)
	}

	if err := os.Remove(h.specFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spec written again", func() bool { _, err := os.Stat(h.specFile); return err == nil })

	if _, err := h.Apply(mustParse(t, "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources: [{name: example.com/plain, count: 1}]\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.specFile); !os.IsNotExist(err) {
		t.Errorf("the spec of the removed resource is still there: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("a foreign spec was touched: %v", err)
	}
}

// A CDI name in cdiDevices that no spec defines makes its device
// Unhealthy, with a log line and a metric naming it; a spec that appears
// makes it healthy again.
func TestUnresolvedCDINamesAreUnhealthy(t *testing.T) {
	registry := t.TempDir()
	const m = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/acc
    ids: [a, b]
    cdiDevices:
      - {name: "vendor.io/acc={{ .ID }}", perDevice: true}
      - {name: "vendor.io/firmware=all"}
`
	writeSpecFile(t, filepath.Join(registry, "firmware.yaml"), "vendor.io/firmware", "", "all")
	writeSpecFile(t, filepath.Join(registry, "acc.yaml"), "vendor.io/acc", "", "a")
	h := startCDIHost(t, m, t.TempDir(), registry)
	waitRegistered(t, h.k, "example.com/acc")
	waitFor(t, "b unhealthy", func() bool { return countHealthy(h.k.Devices("example.com/acc")) == 1 })
	if g := gauge(t, h.Metrics().Registry, "sdp_cdi_unresolved", "cdi_device", "vendor.io/acc=b"); g != 1 {
		t.Errorf("sdp_cdi_unresolved{cdi_device=vendor.io/acc=b} = %v, want 1", g)
	}
	if got := h.UnresolvedCDI("example.com/acc"); !slices.Equal(got, []string{"vendor.io/acc=b"}) {
		t.Errorf("UnresolvedCDI = %v", got)
	}
	if !h.logs.has("CDI devices that no spec on the node defines", "vendor.io/acc=b") {
		t.Errorf("no log line naming vendor.io/acc=b:\n%s", h.logs)
	}
	_, err := h.k.Endpoint("example.com/acc").Client.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"b"}}},
	})
	if err == nil || !strings.Contains(err.Error(), "unhealthy") {
		t.Errorf("Allocate of the unresolved device: %v", err)
	}

	writeSpecFile(t, filepath.Join(registry, "acc.yaml"), "vendor.io/acc", "", "a", "b")
	waitFor(t, "b healthy again", func() bool { return countHealthy(h.k.Devices("example.com/acc")) == 2 })
	if g := gauge(t, h.Metrics().Registry, "sdp_cdi_unresolved", "cdi_device", "vendor.io/acc=b"); g != 0 {
		t.Errorf("sdp_cdi_unresolved still set: %v", g)
	}
}

// writeSpecFile writes a CDI spec of kind defining devices names, with
// annotations (a YAML mapping, or "" for none).
func writeSpecFile(t *testing.T, path, kind, annotations string, names ...string) {
	t.Helper()
	text := "cdiVersion: 0.6.0\nkind: " + kind + "\n"
	if annotations != "" {
		text += "annotations: " + annotations + "\n"
	}
	text += "devices:\n"
	for _, n := range names {
		text += "  - {name: " + n + ", containerEdits: {env: [DEVICE=" + n + "]}}\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func countHealthy(devs []*pluginapi.Device) int {
	n := 0
	for _, d := range devs {
		if d.Health == pluginapi.Healthy {
			n++
		}
	}
	return n
}

// startThenTakeSpecDirAway serves cdiManifest until the fpga registers,
// then moves its spec dir to specDir+".away", so spec writes fail.
func startThenTakeSpecDirAway(t *testing.T) (*cdiHost, string) {
	t.Helper()
	specDir := filepath.Join(t.TempDir(), "cdi")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := startCDIHost(t, cdiManifest, specDir)
	waitRegistered(t, h.k, "example.com/fpga")
	if err := os.Rename(specDir, specDir+".away"); err != nil {
		t.Fatal(err)
	}
	return h, specDir
}

func slogTo(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

// A reload whose spec could not be written, then reverted: the revert is
// what is served once the dir is back, not the abandoned reload.
func TestRevertedPendingReload(t *testing.T) {
	h, specDir := startThenTakeSpecDirAway(t)
	res, err := h.Apply(mustParse(t, cdiManifestGrown))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Pending, []string{"example.com/fpga"}) {
		t.Errorf("Apply says pending %v, want the fpga", res.Pending)
	}
	if _, err := h.Apply(mustParse(t, cdiManifest)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(specDir+".away", specDir); err != nil {
		t.Fatal(err)
	}
	// The next poll writes what it must: had the abandoned reload stayed
	// pending, it would be written now, with f2.
	if err := os.Remove(h.specFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spec written again", func() bool { _, err := os.Stat(h.specFile); return err == nil })
	if got := readSpecIDs(t, h.specFile); !slices.Equal(got, []string{"f0", "f1"}) {
		t.Errorf("spec devices %v after the revert, want f0 f1", got)
	}
	if got := deviceIDs(h.k.Devices("example.com/fpga")); !slices.Equal(got, []string{"f0", "f1"}) {
		t.Errorf("the kubelet has %v after the revert, want f0 f1", got)
	}
}

// cdi.spec turned off on a reload: the raw edits are back in Allocate,
// and the spec is removed once the new answer is served.
func TestCDISpecTurnedOff(t *testing.T) {
	specDir := t.TempDir()
	h := startCDIHost(t, cdiManifest, specDir)
	waitRegistered(t, h.k, "example.com/fpga")
	off := strings.Replace(cdiManifest, "    cdi: {spec: true}\n", "", 1)
	if _, err := h.Apply(mustParse(t, off)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.specFile); !os.IsNotExist(err) {
		t.Errorf("the spec is still there: %v", err)
	}
	resp, err := h.k.Endpoint("example.com/fpga").Client.Allocate(t.Context(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"f1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.ContainerResponses[0]; len(c.CdiDevices) != 0 || len(c.Devices) != 1 || len(c.Mounts) != 2 {
		t.Errorf("Allocate answered %v, want the raw edits", c)
	}
}

// A shrinking reload: the spec keeps the leaving device until the list
// without it is out, then drops it.
func TestShrinkingReload(t *testing.T) {
	specDir := t.TempDir()
	h := startCDIHost(t, cdiManifestGrown, specDir)
	waitRegistered(t, h.k, "example.com/fpga")
	if _, err := h.Apply(mustParse(t, cdiManifest)); err != nil {
		t.Fatal(err)
	}
	if got := readSpecIDs(t, h.specFile); !slices.Equal(got, []string{"f0", "f1"}) {
		t.Errorf("spec devices %v after the reload, want f0 f1", got)
	}
	waitFor(t, "the shrunk list", func() bool { return len(h.k.Devices("example.com/fpga")) == 2 })
}
