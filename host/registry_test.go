package host_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
)

// In plugins-registry mode the sockets sit in the plugin watcher's dir and
// the kubelet finds them; a kubelet restart needs nothing from us.
func TestPluginsRegistryMode(t *testing.T) {
	deviceDir := shortTempDir(t)
	registryDir := shortTempDir(t)
	m := mustParse(t, threeResources)
	h := host.New(host.Config{
		DevicePluginDir:    deviceDir,
		PluginsRegistryDir: registryDir,
		Registration:       host.RegisterPluginsRegistry,
		PollInterval:       200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, m) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	register := func(k interface {
		RegisterFromWatcher(context.Context, string) error
	}) {
		t.Helper()
		for _, name := range allThree {
			sock := filepath.Join(registryDir, manifest.SocketName(name))
			waitFor(t, "socket "+sock, func() bool { _, err := socketInode(sock); return err == nil })
			wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := k.RegisterFromWatcher(wctx, sock); err != nil {
				t.Fatal(err)
			}
			wcancel()
		}
	}
	k := startKubelet(t, deviceDir)
	register(k)
	waitRegistered(t, k, allThree...)
	waitFor(t, "ready", func() bool { ok, _ := h.Ready(); return ok })
	if got := len(k.Devices("example.com/a")); got != 4 {
		t.Errorf("example.com/a: %d devices, want 4", got)
	}
	before, _ := socketInode(filepath.Join(registryDir, manifest.SocketName("example.com/a")))

	// A kubelet restart: the watcher of the new kubelet finds the same sockets.
	k = restartKubelet(t, k, deviceDir)
	register(k)
	waitRegistered(t, k, allThree...)
	after, _ := socketInode(filepath.Join(registryDir, manifest.SocketName("example.com/a")))
	if before != after {
		t.Error("the socket was recreated across a kubelet restart; in plugins-registry mode it need not be")
	}
}
