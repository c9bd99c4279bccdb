package cdi_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	oci "github.com/opencontainers/runtime-spec/specs-go"
	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	specs "tags.cncf.io/container-device-interface/specs-go"

	"simple-device-plugin/cdi"
	"simple-device-plugin/manifest"
)

const fpga = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    ids: [fpga-0, fpga-1]
    cdi: {spec: true}
    env: {FPGA_IDS: '{{ join .IDs "," }}'}
    mounts:
      - {hostPath: "/srv/fpga/{{ .ID }}", containerPath: "/var/fpga/{{ .ID }}", perDevice: true, readOnly: true}
      - {hostPath: /srv/shared, containerPath: /shared}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/fpga-{{ .ID }}", perDevice: true, permissions: rw}
  - name: example.com/seat
    ids: [seat-a]
    cdi: {spec: true, kind: vendor.example/seat}
    devices:
      - {hostPath: /dev/zero, containerPath: "/dev/{{ .Resource }}/{{ .ID }}", perDevice: true}
`

func load(t *testing.T, yaml string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The spec the host writes is one the CDI library reads back, validates
// and injects: each device gets its own mounts and device nodes, and
// nothing of the shared ones.
func TestSpecIsWhatTheLibraryReads(t *testing.T) {
	m := load(t, fpga)
	dir := t.TempDir()
	d, err := cdi.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Resources {
		if err := d.Write(r, nil, "node-1"); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "simple-device-plugin-example.com_fpga.yaml")
	spec, err := cdiapi.ReadSpec(path, 0) // parses and validates
	if err != nil {
		t.Fatalf("the CDI library refuses the spec: %v", err)
	}
	if spec.Kind != "example.com/fpga" || spec.Annotations[cdi.AnnotationGenerator] != "simple-device-plugin" || spec.Annotations[cdi.AnnotationResource] != "example.com/fpga" {
		t.Errorf("kind %q annotations %v", spec.Kind, spec.Annotations)
	}

	cache, err := cdiapi.NewCache(cdiapi.WithSpecDirs(dir), cdiapi.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	if errs := cache.GetErrors(); len(errs) > 0 {
		t.Fatalf("CDI cache errors: %v", errs)
	}
	wantNames := []string{"example.com/fpga=fpga-0", "example.com/fpga=fpga-1", "vendor.example/seat=seat-a"}
	if got := cache.ListDevices(); !slices.Equal(got, wantNames) {
		t.Errorf("devices %v, want %v", got, wantNames)
	}
	// The same names Allocate hands out.
	a, err := m.Resources[0].Render([]int{1}, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.CDIDevices, []string{"example.com/fpga=fpga-1"}) || len(a.Devices) != 0 || len(a.Mounts) != 1 {
		t.Errorf("Allocate renders %+v", a)
	}

	// What a runtime does with them.
	ociSpec := &oci.Spec{Linux: &oci.Linux{}, Process: &oci.Process{}}
	if unresolved, err := cache.InjectDevices(ociSpec, "example.com/fpga=fpga-1", "vendor.example/seat=seat-a"); err != nil {
		t.Fatalf("inject: %v (unresolved %v)", err, unresolved)
	}
	var nodes []string
	for _, n := range ociSpec.Linux.Devices {
		nodes = append(nodes, n.Path)
		if n.Path == "/dev/fpga-fpga-1" && (n.Major != 1 || n.Minor != 3) {
			t.Errorf("%s is %d:%d, want /dev/null's 1:3", n.Path, n.Major, n.Minor)
		}
	}
	if want := []string{"/dev/fpga-fpga-1", "/dev/example.com/seat/seat-a"}; !slices.Equal(nodes, want) {
		t.Errorf("device nodes %v, want %v", nodes, want)
	}
	if len(ociSpec.Mounts) != 1 || ociSpec.Mounts[0].Source != "/srv/fpga/fpga-1" || ociSpec.Mounts[0].Destination != "/var/fpga/fpga-1" || !slices.Contains(ociSpec.Mounts[0].Options, "ro") {
		t.Errorf("mounts %+v", ociSpec.Mounts)
	}
}

func TestSpecFileLifecycle(t *testing.T) {
	m := load(t, fpga)
	fpgaRes, seat := m.Resources[0], m.Resources[1]
	dir := t.TempDir()
	d, err := cdi.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fpgaFile := filepath.Join(dir, cdi.FileName(fpgaRes.Name))
	seatFile := filepath.Join(dir, cdi.FileName(seat.Name))

	// A vendor's spec and a file of our name that we did not write.
	vendor := filepath.Join(dir, "vendor.yaml")
	write(t, vendor, "cdiVersion: 0.6.0\nkind: vendor.io/x\ndevices: [{name: a, containerEdits: {env: [A=1]}}]\n")
	write(t, seatFile, "cdiVersion: 0.6.0\nkind: vendor.example/seat\ndevices: [{name: seat-a, containerEdits: {env: [HAND=1]}}]\n")

	if err := d.Write(fpgaRes, nil, "n"); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(seat, nil, "n"); err == nil || !strings.Contains(err.Error(), "was not written by simple-device-plugin") {
		t.Errorf("writing over a foreign file: %v", err)
	}
	if err := d.Remove(seat.Name); err == nil {
		t.Error("removing a foreign file: no error")
	}
	if !d.Exists(fpgaRes.Name) || d.Exists(seat.Name) {
		t.Errorf("Exists: fpga %v seat %v", d.Exists(fpgaRes.Name), d.Exists(seat.Name))
	}

	// A rewrite replaces the file whole (a rename: a new inode), and
	// leaves no temporary file behind.
	before := inode(t, fpgaFile)
	if err := d.Write(fpgaRes, nil, "n"); err != nil {
		t.Fatal(err)
	}
	if inode(t, fpgaFile) == before {
		t.Error("the spec was rewritten in place, not renamed over")
	}
	// A marked file from an earlier run is taken over.
	other, err := cdi.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Write(fpgaRes, nil, "n"); err != nil {
		t.Errorf("taking over our own file: %v", err)
	}

	// Prune keeps what is asked and what is not ours.
	removed, err := d.Prune(func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"example.com/fpga"}) {
		t.Errorf("Prune removed %v", removed)
	}
	for _, f := range []string{vendor, seatFile} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("Prune touched %s: %v", f, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left in the dir: %v, want the two foreign files", names)
	}
	if err := d.Remove(fpgaRes.Name); err != nil {
		t.Errorf("removing a spec that is gone: %v", err)
	}
}

// A spec dir that cannot be written: an error, and the old spec intact.
func TestWriteToAReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes to read-only dirs; the e2e tests cover it with a read-only mount")
	}
	dir := t.TempDir()
	d, err := cdi.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := load(t, fpga).Resources[0]
	if err := d.Write(r, nil, "n"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	if err := d.Write(r, nil, "n"); err == nil {
		t.Fatal("no error writing to a read-only dir")
	}
	if !d.Exists(r.Name) {
		t.Error("the previous spec is gone")
	}
}

func TestRegistryResolves(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "vendor.yaml"), "cdiVersion: 0.6.0\nkind: vendor.io/x\ndevices: [{name: a, containerEdits: {env: [A=1]}}]\n")
	reg, err := cdi.OpenRegistry([]string{dir, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if !reg.Resolves("vendor.io/x=a") || reg.Resolves("vendor.io/x=b") || reg.Resolves("vendor.io/y=a") {
		t.Errorf("Resolves: a %v b %v y %v", reg.Resolves("vendor.io/x=a"), reg.Resolves("vendor.io/x=b"), reg.Resolves("vendor.io/y=a"))
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

func TestClaimSpecsOutlivePrune(t *testing.T) {
	dir := t.TempDir()
	d, err := cdi.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Version: "0.6.0", Kind: "gadget.example.com/claim",
		Annotations: map[string]string{cdi.AnnotationGenerator: "simple-device-plugin", cdi.AnnotationResource: "example.com/gadget", cdi.AnnotationClaim: "uid-1"},
		Devices:     []specs.Device{{Name: "uid-1-r", ContainerEdits: specs.ContainerEdits{Env: []string{"A=1"}}}}}
	if err := d.WriteClaim("gadget.example.com", "uid-1", spec); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, cdi.ClaimFileName("gadget.example.com", "uid-1"))
	if _, err := os.Stat(file); err != nil {
		t.Fatal("claim spec not there")
	}
	// A host's prune keeps nothing of the manifest's: the claim's stays.
	if removed, err := d.Prune(func(string) bool { return false }); err != nil || len(removed) != 0 {
		t.Errorf("Prune removed %v (%v); a claim's spec is its driver's", removed, err)
	}
	removed, err := d.RemoveAll()
	if err != nil || len(removed) != 1 || removed[0] != "claim uid-1 of example.com/gadget" {
		t.Errorf("RemoveAll: %v %v", removed, err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Error("claim spec still there")
	}
	if err := d.RemoveClaim("gadget.example.com", "uid-1"); err != nil {
		t.Errorf("removing a claim spec that is gone: %v", err)
	}
}
