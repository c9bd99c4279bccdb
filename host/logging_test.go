package host_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/host"
)

// At debug level the log shows every step a user looks for when a resource
// does not register: dial, register, the stream, the list and its size,
// and what Allocate was asked and answered.
func TestDebugLogShowsEachStep(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	logs := &logBuffer{}
	rh := runHost(t, mustParse(t, threeResources), host.Config{
		DevicePluginDir: dir,
		NodeName:        "node-1",
		Registration:    host.RegisterKubeletSocket,
		Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	if err := k.WaitRegistered(ctx, []string{"example.com/a", "example.com/b", "example.com/c"}); err != nil {
		t.Fatal(err)
	}
	_, err := k.Endpoint("example.com/a").Client.Allocate(ctx, &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"a-0", "a-1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	k.Stop() // the kubelet goes away: its streams close
	waitFor(t, "stream closed", func() bool { return logs.has("ListAndWatch stream closed", "resource=example.com/a") })
	rh.stop(t)

	for _, want := range [][]string{
		{"level=DEBUG", "serving the DevicePlugin service", "resource=example.com/a", "socket="},
		{"level=DEBUG", "dialling the kubelet", "kubelet.sock"},
		{"level=DEBUG", "calling Register", "resource=example.com/b", "endpoint=example.com_b.sock"},
		{"level=INFO", "registered with the kubelet", "resource=example.com/c"},
		{"level=DEBUG", "ListAndWatch stream opened by the kubelet", "resource=example.com/a"},
		{"level=DEBUG", "device list sent", "resource=example.com/a", "devices=4", "healthy=4", "bytes="},
		{"level=DEBUG", "device list sent", "resource=example.com/b", "devices=3", "healthy=2"},
		{"level=DEBUG", "allocated", "resource=example.com/a", "devices=a-0,a-1", "envs=2", "annotations=1", "mounts=3", "device_nodes=2", "cdi_devices=2"},
		{"level=DEBUG", "ListAndWatch stream closed", "resource=example.com/b"},
	} {
		if !logs.has(want...) {
			t.Errorf("no log line with %q in:\n%s", want, logs)
		}
	}
}

// The default level keeps the per-call lines out.
func TestInfoLogHasNoPerCallLines(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh, logs := startHostWith(t, dir, mustParse(t, threeResources), host.Config{Registration: host.RegisterKubeletSocket})
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	if err := k.WaitRegistered(ctx, []string{"example.com/a"}); err != nil {
		t.Fatal(err)
	}
	rh.stop(t)
	if strings.Contains(logs.String(), "level=DEBUG") {
		t.Errorf("debug lines at info level:\n%s", logs)
	}
}

// Resources with nodes: and no node name to match them against: a warning
// and a failing /readyz that says why. A node the globs leave out on
// purpose stays ready.
func TestNodesWithoutNodeName(t *testing.T) {
	const m = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/everywhere
    count: 1
  - name: example.com/edge
    count: 1
    nodes: ["edge-*"]
`
	tests := []struct {
		name      string
		node      string
		wantCode  int
		wantBody  string
		wantWarn  bool
		notServed []string
	}{
		{"no node name", "", http.StatusServiceUnavailable, "no node name, so resources with nodes: are not served (example.com/edge); set --node-name or NODE_NAME", true, []string{"example.com/edge"}},
		{"a node left out on purpose", "core-1", http.StatusOK, "ok", false, nil},
		{"a node served", "edge-1", http.StatusOK, "ok", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t)
			k := startKubelet(t, dir)
			logs := &logBuffer{}
			rh := runHost(t, mustParse(t, m), host.Config{
				DevicePluginDir: dir, NodeName: tc.node, Registration: host.RegisterKubeletSocket,
				Logger: slog.New(slog.NewTextHandler(logs, nil)),
			})
			ctx, cancel := context.WithTimeout(t.Context(), eventually)
			defer cancel()
			if err := k.WaitRegistered(ctx, []string{"example.com/everywhere"}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "registered", func() bool { ok, _ := rh.Ready(); return ok })
			rec := httptest.NewRecorder()
			rh.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("/readyz: %d %q, want %d with %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
			if got := logs.has("level=WARN", "this process has no node name", "example.com/edge"); got != tc.wantWarn {
				t.Errorf("warning logged: %v, want %v:\n%s", got, tc.wantWarn, logs)
			}
			if got := rh.NoNodeName(); strings.Join(got, ",") != strings.Join(tc.notServed, ",") {
				t.Errorf("NoNodeName() = %v, want %v", got, tc.notServed)
			}
		})
	}
}
