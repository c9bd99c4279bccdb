package host_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"simple-device-plugin/manifest"
)

// A host without a DRA server (simulate's) serves the device-plugin
// resources and leaves api: dra ones out, saying so in /readyz; a reload
// that moves a resource from one API to the other takes its device plugin
// away or brings it back.
func TestDRAResourcesAreNotDevicePlugins(t *testing.T) {
	const both = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    count: 2
  - name: example.com/b
    count: 2
    api: dra
`
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, both))
	waitRegistered(t, k, "example.com/a")
	if _, err := os.Stat(filepath.Join(dir, manifest.SocketName("example.com/b"))); !os.IsNotExist(err) {
		t.Errorf("api: dra resource has a device-plugin socket: %v", err)
	}
	// The kubelet sees a registration a moment before the host marks it.
	waitFor(t, "only example.com/b waiting in /readyz (no DRA server)", func() bool {
		ok, waiting := rh.Ready()
		return !ok && slices.Equal(waiting, []string{"example.com/b"})
	})

	// b moves to the device-plugin API, a to DRA.
	swapped := mustParse(t, `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    count: 2
    api: dra
  - name: example.com/b
    count: 2
`)
	res, err := rh.Apply(swapped)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []string{"example.com/b"}) || !slices.Equal(res.Removed, []string{"example.com/a"}) {
		t.Errorf("apply: added %v, removed %v", res.Added, res.Removed)
	}
	waitRegistered(t, k, "example.com/b")
	waitFor(t, "example.com/a's socket gone", func() bool {
		_, err := os.Stat(filepath.Join(dir, manifest.SocketName("example.com/a")))
		return os.IsNotExist(err)
	})
	waitFor(t, "only example.com/a waiting in /readyz", func() bool {
		ok, waiting := rh.Ready()
		return !ok && slices.Equal(waiting, []string{"example.com/a"})
	})
}
