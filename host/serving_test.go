package host_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"simple-device-plugin/host"
)

// Serving returns once every plugin's socket listens, with no kubelet yet
// (a node service starting before it), and a resource whose CDI spec
// cannot be written does not hold that back: it is retried on its own.
func TestServing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		badSpec bool
		sockets []string
	}{
		{name: "every socket listens", sockets: []string{"example.com_fpga.sock", "example.com_plain.sock"}},
		{name: "a spec that cannot be written", badSpec: true, sockets: []string{"example.com_plain.sock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t) // no kubelet.sock
			specDir := t.TempDir()
			if tc.badSpec {
				specDir = filepath.Join(t.TempDir(), "cdi")
				if err := os.WriteFile(specDir, []byte("not a dir"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := noRetries
			cfg.DevicePluginDir, cfg.NodeName, cfg.CDISpecDir = dir, "node-1", specDir
			cfg.Registration = host.RegisterKubeletSocket
			rh := runHost(t, mustParse(t, cdiManifest), cfg)
			ctx, cancel := context.WithTimeout(context.Background(), eventually)
			defer cancel()
			if err := rh.Serving(ctx); err != nil {
				t.Fatalf("Serving: %v", err)
			}
			for _, sock := range tc.sockets {
				conn, err := net.Dial("unix", filepath.Join(dir, sock))
				if err != nil {
					t.Errorf("%s not listening once Serving returned: %v", sock, err)
					continue
				}
				conn.Close()
			}
		})
	}
}

// Serving gives up when its context ends before the host serves.
func TestServingCancelled(t *testing.T) {
	h := host.New(host.Config{DevicePluginDir: shortTempDir(t)}) // never run
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Serving(ctx); err == nil {
		t.Error("Serving returned nil for a host that never ran")
	}
}
