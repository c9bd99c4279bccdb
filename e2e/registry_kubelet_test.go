package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	pluginwatcherapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager"
)

// registryDir is the kubelet's plugin watcher directory
// (<root-dir>/plugins_registry), in the tests' private tmpfs.
const registryDir = kubeletDir + "/plugins_registry"

// registrySocketPath is where the host serves resource in plugins-registry
// mode: the same file name as in the device plugin dir.
func registrySocketPath(resource string) string {
	return filepath.Join(registryDir, strings.ReplaceAll(resource, "/", "_")+".sock")
}

// registryKubelet is the device manager plus the kubelet's own plugin
// manager (pkg/kubelet/pluginmanager) watching plugins_registry, with the
// device manager's watcher handler for the DevicePlugin type: the way a
// kubelet finds plugins that do not call Register on kubelet.sock
// (kubelet.go: pluginManager.AddHandler for every handler of
// containerManager.GetPluginRegistrationHandlers()).
type registryKubelet struct {
	*kubelet
	stopPlugins   chan struct{}
	cancelPlugins context.CancelFunc
	pluginsDone   chan struct{}
}

// startRegistryKubelet starts the device manager and the plugin manager on a
// clean plugin directory and an empty plugins_registry. When the test ends
// it stops both and removes plugins_registry, so later tests' hosts in
// --registration auto keep using kubelet.sock.
func startRegistryKubelet(t testing.TB) *registryKubelet {
	t.Helper()
	k := &registryKubelet{kubelet: newKubelet(t)}
	if err := os.RemoveAll(registryDir); err != nil {
		t.Fatalf("clean %s: %v", registryDir, err)
	}
	if err := os.MkdirAll(registryDir, 0o750); err != nil {
		t.Fatalf("create %s: %v", registryDir, err)
	}
	t.Cleanup(func() {
		k.stopPluginManager()
		if err := os.RemoveAll(registryDir); err != nil {
			t.Errorf("remove %s: %v", registryDir, err)
		}
	})
	k.start()
	k.startPluginManager()
	return k
}

// startPluginManager runs a new plugin manager with the current device
// manager's handler. Its watcher walks plugins_registry at once, so sockets
// already there are registered without being recreated.
func (k *registryKubelet) startPluginManager() {
	pm := pluginmanager.NewPluginManager(registryDir, &record.FakeRecorder{})
	pm.AddHandler(pluginwatcherapi.DevicePlugin, k.dm().GetWatcherHandler())
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), k.logger))
	k.stopPlugins, k.cancelPlugins, k.pluginsDone = make(chan struct{}), cancel, make(chan struct{})
	go func(stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		pm.Run(ctx, sourcesReady{}, stop)
	}(k.stopPlugins, k.pluginsDone)
}

// stopPluginManager stops the watcher and the reconciler (a kubelet going
// down); the sockets stay in plugins_registry.
func (k *registryKubelet) stopPluginManager() {
	if k.stopPlugins == nil {
		return
	}
	close(k.stopPlugins)
	k.cancelPlugins()
	<-k.pluginsDone
	k.stopPlugins = nil
}

// restart is a kubelet restart in plugins-registry mode: the plugin manager
// and the device manager stop, a new device manager starts (wiping the
// device plugin dir, as always), and a new plugin manager finds the
// plugins' sockets where they are.
func (k *registryKubelet) restart() {
	k.t.Helper()
	k.stopPluginManager()
	k.stop()
	k.start()
	k.startPluginManager()
}
