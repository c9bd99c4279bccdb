package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// allocateManifestFile, in the repository's testdata dir, is the bundled
// example's FPGA resource (every kind of template: env, annotations, shared
// and per-device mounts, device nodes, CDI devices) with 128 devices; the
// host's benchmarks and the e2e tests allocate from it too.
const allocateManifestFile = "fpga-128.yaml"

// readTestdata reads one of the test manifests the repository shares
// between its modules.
func (b *bench) readTestdata(name string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(b.testdata, name))
	if err != nil {
		return nil, fmt.Errorf("test manifest: %w (run from the repository root, as make bench does, or set -testdata)", err)
	}
	return data, nil
}

// scaleManifest has resources × devices, each resource with its own env
// var, annotation and per-device mount (names differ so resources do not
// clash), and default device IDs "<name part>-<index>" (r0042-17).
// devicesOf, if set, overrides the count of resource i.
func scaleManifest(resources, devices int, devicesOf func(i int) int) string {
	var b strings.Builder
	b.WriteString("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n")
	for i := range resources {
		n := devices
		if devicesOf != nil {
			n = devicesOf(i)
		}
		name := scaleName(i)
		part := path.Base(name)
		fmt.Fprintf(&b, "  - name: %s\n    count: %d\n", name, n)
		fmt.Fprintf(&b, "    env: {%s_IDS: '{{ join .IDs \",\" }}'}\n", strings.ToUpper(part))
		fmt.Fprintf(&b, "    annotations: {%s.ids: '{{ join .IDs \",\" }}'}\n", name)
		fmt.Fprintf(&b, "    mounts: [{hostPath: \"/var/lib/bench/{{ .ID }}\", containerPath: \"/dev/bench/%s/{{ .ID }}\", perDevice: true}]\n", part)
	}
	return b.String()
}

func scaleNames(resources int) []string {
	names := make([]string, resources)
	for i := range names {
		names[i] = scaleName(i)
	}
	return names
}

// tempDir makes a short directory (unix socket paths are limited to 108
// bytes) under $SDP_BENCH_TMP or the system's temp dir.
func tempDir(prefix string) (string, error) {
	return os.MkdirTemp(os.Getenv("SDP_BENCH_TMP"), prefix)
}

// writeConfigMap lays content out as the kubelet projects a ConfigMap
// (dir/..<ts>/manifest.yaml, dir/..data -> ..<ts>, dir/manifest.yaml ->
// ..data/manifest.yaml). An update writes the new version aside and swaps
// ..data with one rename; swap is that rename, to be timed by the caller.
func writeConfigMap(dir, content string) (link string, swap func() error, err error) {
	ts := fmt.Sprintf("..%d", time.Now().UnixNano())
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ts, "manifest.yaml"), []byte(content), 0o644); err != nil {
		return "", nil, err
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		return "", nil, err
	}
	link = filepath.Join(dir, "manifest.yaml")
	swap = func() error {
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			return err
		}
		if old != "" {
			os.RemoveAll(filepath.Join(dir, old))
		}
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			return os.Symlink(filepath.Join("..data", "manifest.yaml"), link)
		}
		return nil
	}
	return link, swap, nil
}

// removeSockets deletes every socket in dir, as a restarting kubelet does.
func removeSockets(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}
