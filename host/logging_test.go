package host_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
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
	// The stand-in records a registration before its answer reaches the
	// host, which logs it only then.
	waitFor(t, "every registration logged", func() bool { return strings.Count(logs.String(), "registered with the kubelet") == 3 })
	k.Stop() // the kubelet goes away: its streams close
	for _, r := range []string{"example.com/a", "example.com/b"} {
		waitFor(t, r+"'s stream closed", func() bool { return logs.has("ListAndWatch stream closed", "resource="+r) })
	}
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

// At the default level a call logs nothing: the per-call lines are debug
// lines, not info ones a busy node would drown in.
func TestInfoLogHasNoPerCallLines(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	_, logs := startHostWith(t, dir, mustParse(t, threeResources), host.Config{Registration: host.RegisterKubeletSocket})
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	if err := k.WaitRegistered(ctx, []string{"example.com/a", "example.com/b", "example.com/c"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every registration logged", func() bool { return strings.Count(logs.String(), "registered with the kubelet") == 3 })
	before := logs.String()
	client := k.Endpoint("example.com/a").Client
	for range 10 {
		if _, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"a-0"}}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: []string{"a-0", "a-1"}, AllocationSize: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if after := logs.String(); after != before {
		t.Errorf("calls logged at info level:\n%s", strings.TrimPrefix(after, before))
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

// Log lines and errors name a few IDs and count the rest.
func TestListIDs(t *testing.T) {
	many := make([]string, 100000)
	for i := range many {
		many[i] = fmt.Sprintf("dev-%d", i)
	}
	tests := []struct {
		ids  []string
		want string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{many[:8], "dev-0,dev-1,dev-2,dev-3,dev-4,dev-5,dev-6,dev-7"},
		{many, "dev-0,dev-1,dev-2,dev-3,dev-4,dev-5,dev-6,dev-7,… (100000 in all)"},
	}
	for _, tc := range tests {
		if got := manifest.ListIDs(tc.ids, ","); got != tc.want {
			t.Errorf("ListIDs(%d IDs) = %q, want %q", len(tc.ids), got, tc.want)
		}
	}
}

// The warning comes again on each reload that still leaves resources out
// for want of a node name, and /readyz recovers once none is.
func TestNodesWithoutNodeNameOnReload(t *testing.T) {
	const withNodes = "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/all, count: 1}\n  - {name: example.com/edge, count: 1, nodes: [\"edge-*\"]}\n"
	const without = "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/all, count: 1}\n"
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	logs := &logBuffer{}
	rh := runHost(t, mustParse(t, withNodes), host.Config{DevicePluginDir: dir, Registration: host.RegisterKubeletSocket, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	waitRegistered(t, k, "example.com/all")
	readyz := func() int {
		rec := httptest.NewRecorder()
		rh.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	warnings := func() int { return strings.Count(logs.String(), "this process has no node name") }
	if readyz() != http.StatusServiceUnavailable || warnings() != 1 {
		t.Fatalf("at start: /readyz %d, %d warnings", readyz(), warnings())
	}
	if _, err := rh.Apply(mustParse(t, withNodes+"  - {name: example.com/more, count: 1}\n")); err != nil {
		t.Fatal(err)
	}
	if readyz() != http.StatusServiceUnavailable || warnings() != 2 {
		t.Errorf("after a reload that keeps nodes:: /readyz %d, %d warnings, want 503 and 2", readyz(), warnings())
	}
	if _, err := rh.Apply(mustParse(t, without)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registered", func() bool { ok, _ := rh.Ready(); return ok })
	if readyz() != http.StatusOK || warnings() != 2 {
		t.Errorf("after a reload without nodes:: /readyz %d, %d warnings, want 200 and still 2", readyz(), warnings())
	}
}
