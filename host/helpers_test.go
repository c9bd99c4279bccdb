package host_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/manifest"
)

const threeResources = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    count: 4
    env:
      A_IDS: '{{ join .IDs "," }}'
      A_NODE: '{{ .Node }}'
    annotations:
      example.com/a: '{{ .Count }}'
    mounts:
      - {hostPath: /srv/shared, containerPath: /shared, readOnly: true}
      - {hostPath: "/srv/{{ .ID }}", containerPath: "/dev/a/{{ .ID }}", perDevice: true}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/a{{ .Index }}", perDevice: true}
    cdiDevices:
      - {name: "example.com/a={{ .ID }}", perDevice: true}
  - name: example.com/b
    ids: [x, w, z]
    unhealthy: [w]
  - name: example.com/c
    count: 2
`

var shortTempDir = host.ShortTempDir

func mustParse(t *testing.T, yaml string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return m
}

type runningHost struct {
	*host.Host
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// startHost runs a host on dir, polling and retrying quickly, until the
// test ends.
func startHost(t *testing.T, dir string, m *manifest.Manifest) *runningHost {
	t.Helper()
	return runHost(t, m, host.Config{
		DevicePluginDir: dir,
		NodeName:        "node-1",
		PollInterval:    200 * time.Millisecond,
		Backoff:         host.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Stable: time.Second},
	})
}

// runHost runs a host with cfg until the test ends.
func runHost(t *testing.T, m *manifest.Manifest, cfg host.Config) *runningHost {
	t.Helper()
	h := host.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	rh := &runningHost{Host: h, dir: cfg.DevicePluginDir, cancel: cancel, done: make(chan error, 1)}
	go func() { rh.done <- h.Run(ctx, m) }()
	t.Cleanup(func() { rh.stop(t) })
	waitFor(t, "host running", h.Running)
	return rh
}

// stop stops the host and returns Run's result; it may be called twice.
func (rh *runningHost) stop(t *testing.T) error {
	t.Helper()
	rh.cancel()
	select {
	case err, ok := <-rh.done:
		if ok {
			close(rh.done)
		}
		return err
	case <-time.After(eventually):
		t.Fatalf("host did not stop within %v", eventually)
	}
	return nil
}

func startKubelet(t *testing.T, dir string) *kubeletsim.Kubelet {
	t.Helper()
	k, err := kubeletsim.Start(dir, kubeletsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	return k
}

// restartKubelet does what a restarting kubelet does: stop, delete every
// socket in the dir, listen on a new kubelet.sock.
func restartKubelet(t *testing.T, k *kubeletsim.Kubelet, dir string) *kubeletsim.Kubelet {
	t.Helper()
	k.Stop()
	removeSockets(t, dir)
	return startKubelet(t, dir)
}

func removeSockets(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// eventually bounds every wait for an event: long enough for a loaded
// machine under -race, there only to turn a hang into a failure.
const eventually = time.Minute

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", eventually, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitRegistered(t *testing.T, k *kubeletsim.Kubelet, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := k.WaitRegistered(ctx, names); err != nil {
		t.Fatal(err)
	}
}

// dial connects to a resource's plugin socket as the kubelet does, until
// the test ends.
func dial(t *testing.T, dir, resource string) pluginapi.DevicePluginClient {
	t.Helper()
	conn := dialConn(t, dir, resource)
	t.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}

// dialConn is dial for a caller that closes the connection itself.
func dialConn(t *testing.T, dir, resource string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, manifest.SocketName(resource)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func healthOf(devs []*pluginapi.Device) map[string]string {
	out := map[string]string{}
	for _, d := range devs {
		out[d.ID] = d.Health
	}
	return out
}

func sockets(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 && e.Name() != "kubelet.sock" {
			out = append(out, e.Name())
		}
	}
	return out
}
