package host_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
)

const reloadBefore = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - {name: example.com/same, count: 2, env: {SAME: "{{ .Count }}"}}
  - {name: example.com/grow, count: 2}
  - {name: example.com/tmpl, count: 2, env: {TMPL: "old"}}
  - {name: example.com/opts, count: 1}
  - {name: example.com/gone, count: 3}
`

const reloadAfter = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - {name: example.com/same, count: 2, env: {SAME: "{{ .Count }}"}}
  - {name: example.com/grow, count: 5, unhealthy: [grow-4]}
  - {name: example.com/tmpl, count: 2, env: {TMPL: "new {{ join .IDs \"+\" }}"}}
  - {name: example.com/opts, count: 1, preStartRequired: true}
  - {name: example.com/new, ids: [n1]}
`

func TestApplyDiffsResourceByResource(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, reloadBefore))
	waitRegistered(t, k, "example.com/same", "example.com/grow", "example.com/tmpl", "example.com/opts", "example.com/gone")
	listsBefore := map[string]int{}
	for _, n := range []string{"example.com/same", "example.com/grow", "example.com/tmpl"} {
		listsBefore[n] = k.Lists(n)
	}
	sameSocket := socketID(t, dir, "example.com/same")

	res, err := rh.Apply(mustParse(t, reloadAfter))
	if err != nil {
		t.Fatal(err)
	}
	want := host.ApplyResult{
		Added:     []string{"example.com/new"},
		Updated:   []string{"example.com/grow", "example.com/opts", "example.com/tmpl"},
		Removed:   []string{"example.com/gone"},
		Unchanged: []string{"example.com/same"},
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("Apply = %+v, want %+v", res, want)
	}
	waitRegistered(t, k, "example.com/same", "example.com/grow", "example.com/tmpl", "example.com/opts", "example.com/new")
	waitFor(t, "grow's new device list", func() bool { return len(k.Devices("example.com/grow")) == 5 })
	waitFor(t, "opts registered again", func() bool { return k.Registrations("example.com/opts") == 2 })

	// Unchanged: same socket, same stream, no new message, no registration.
	if got := k.Lists("example.com/same"); got != listsBefore["example.com/same"] {
		t.Errorf("unchanged resource got %d lists, had %d", got, listsBefore["example.com/same"])
	}
	if socketID(t, dir, "example.com/same") != sameSocket {
		t.Error("unchanged resource's socket was recreated")
	}
	// Devices changed: one update on the same stream, no registration.
	if got := healthOf(k.Devices("example.com/grow")); got["grow-4"] != pluginapi.Unhealthy || got["grow-3"] != pluginapi.Healthy {
		t.Errorf("grow devices = %v", got)
	}
	if got := k.Lists("example.com/grow"); got != listsBefore["example.com/grow"]+1 {
		t.Errorf("grow got %d lists, want %d (one update)", got, listsBefore["example.com/grow"]+1)
	}
	// Templates changed: no message on the stream, the next Allocate renders anew.
	if got := k.Lists("example.com/tmpl"); got != listsBefore["example.com/tmpl"] {
		t.Errorf("template-only change sent %d lists, want none", got-listsBefore["example.com/tmpl"])
	}
	resp, err := k.Endpoint("example.com/tmpl").Client.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"tmpl-1", "tmpl-0"}}},
	})
	if err != nil || resp.ContainerResponses[0].Envs["TMPL"] != "new tmpl-0+tmpl-1" {
		t.Errorf("allocate after template change: %v, %v", resp, err)
	}
	for _, n := range []string{"example.com/same", "example.com/grow", "example.com/tmpl"} {
		if got := k.Registrations(n); got != 1 {
			t.Errorf("%s registered %d times, want 1", n, got)
		}
	}
	if !k.Endpoint("example.com/opts").Options.PreStartRequired {
		t.Error("opts registered again without PreStartRequired")
	}
	// Removed: empty list sent, stream ended, socket gone.
	if devs := k.Devices("example.com/gone"); len(devs) != 0 {
		t.Errorf("removed resource's last list has %d devices, want 0", len(devs))
	}
	// The stand-in kubelet records the stream's end after it hangs up,
	// which is what Apply waited for.
	waitFor(t, "the removed resource's stream to close", func() bool { return k.Endpoint("example.com/gone") == nil })
	if _, err := os.Stat(filepath.Join(dir, manifest.SocketName("example.com/gone"))); !os.IsNotExist(err) {
		t.Errorf("removed resource's socket: %v, want gone", err)
	}
}

// writeConfigMap lays a manifest out as the kubelet projects a ConfigMap:
// dir/..<ts>/manifest.yaml, dir/..data -> ..<ts>, dir/manifest.yaml ->
// ..data/manifest.yaml; an update swaps ..data atomically.
func writeConfigMap(t *testing.T, dir, content string) string {
	t.Helper()
	ts := fmt.Sprintf("..%d", time.Now().UnixNano())
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ts, "manifest.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		os.RemoveAll(filepath.Join(dir, old))
	}
	link := filepath.Join(dir, "manifest.yaml")
	if _, err := os.Lstat(link); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", "manifest.yaml"), link); err != nil {
			t.Fatal(err)
		}
	}
	return link
}

func startReloader(t *testing.T, rh *runningHost, path string) *host.Reloader {
	t.Helper()
	return startReloaderDebounced(t, rh, path, 20*time.Millisecond)
}

func startReloaderDebounced(t *testing.T, rh *runningHost, path string, debounce time.Duration) *host.Reloader {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := host.NewReloader(path, rh.Host, data)
	r.Debounce = debounce
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reloader: %v", err)
		}
	})
	return r
}

func TestReloaderFollowsConfigMapSwaps(t *testing.T) {
	dir := shortTempDir(t)
	cmDir := shortTempDir(t)
	path := writeConfigMap(t, cmDir, reloadBefore)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, reloadBefore))
	startReloader(t, rh, path)
	waitRegistered(t, k, "example.com/same", "example.com/gone")

	writeConfigMap(t, cmDir, reloadAfter)
	waitFor(t, "the new manifest applied", func() bool {
		return len(k.Devices("example.com/grow")) == 5 && k.Endpoint("example.com/new") != nil && k.Endpoint("example.com/gone") == nil &&
			k.Registrations("example.com/opts") == 2 && k.Endpoint("example.com/opts") != nil
	})
	reloads := rh.Metrics().Registry
	if got := counter(t, reloads, "sdp_manifest_reloads_total", "result", "applied"); got != 1 {
		t.Errorf("applied reloads = %v, want 1", got)
	}

	// An invalid manifest changes nothing and is counted.
	writeConfigMap(t, cmDir, strings.Replace(reloadAfter, "count: 5", "count: -5", 1)+"\n  - {name: bad}\n")
	waitFor(t, "the invalid reload counted", func() bool {
		return counter(t, reloads, "sdp_manifest_reloads_total", "result", "invalid") == 1
	})
	if got := len(k.Devices("example.com/grow")); got != 5 {
		t.Errorf("after an invalid manifest grow has %d devices, want 5 (unchanged)", got)
	}
	if ok, waiting := rh.Ready(); !ok {
		t.Errorf("not ready after an invalid reload: %v", waiting)
	}

	// Back to a valid one: applied again.
	writeConfigMap(t, cmDir, reloadBefore)
	waitFor(t, "the old manifest back", func() bool {
		return k.Endpoint("example.com/gone") != nil && k.Endpoint("example.com/new") == nil
	})
}

// A ConfigMap update is complete when ..data is swapped: the reloader
// applies it at once, not after the debounce that gathers in-place edits.
func TestReloaderAppliesConfigMapSwapsAtOnce(t *testing.T) {
	dir := shortTempDir(t)
	cmDir := shortTempDir(t)
	path := writeConfigMap(t, cmDir, reloadBefore)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, reloadBefore))
	startReloaderDebounced(t, rh, path, time.Hour)
	waitRegistered(t, k, "example.com/grow")

	writeConfigMap(t, cmDir, reloadAfter)
	waitFor(t, "the swap applied", func() bool { return len(k.Devices("example.com/grow")) == 5 })
}

func TestReloaderFollowsEditorsAndSIGHUP(t *testing.T) {
	dir := shortTempDir(t)
	mDir := shortTempDir(t)
	path := filepath.Join(mDir, "m.yaml")
	if err := os.WriteFile(path, []byte(reloadBefore), 0o644); err != nil {
		t.Fatal(err)
	}
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, reloadBefore))
	r := startReloader(t, rh, path)
	waitRegistered(t, k, "example.com/grow")

	// Rewritten in place.
	if err := os.WriteFile(path, []byte(strings.Replace(reloadBefore, "example.com/grow, count: 2", "example.com/grow, count: 3", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "in-place edit applied", func() bool { return len(k.Devices("example.com/grow")) == 3 })

	// Replaced by rename, as editors save.
	tmp := filepath.Join(mDir, ".m.yaml.swp")
	if err := os.WriteFile(tmp, []byte(strings.Replace(reloadBefore, "example.com/grow, count: 2", "example.com/grow, count: 4", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rename applied", func() bool { return len(k.Devices("example.com/grow")) == 4 })

	// SIGHUP with nothing changed: counted as unchanged.
	r.Trigger()
	waitFor(t, "forced reload counted", func() bool {
		return counter(t, rh.Metrics().Registry, "sdp_manifest_reloads_total", "result", "unchanged") == 1
	})
}

func TestHealthCheckFollowsFiles(t *testing.T) {
	dir := shortTempDir(t)
	healthDir := shortTempDir(t)
	for _, id := range []string{"h-0", "h-1", "h-2"} {
		if err := os.WriteFile(filepath.Join(healthDir, id), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := mustParse(t, fmt.Sprintf(`
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/h
    count: 3
    healthCheck: {path: "%s/{{ .ID }}", interval: 100ms}
`, healthDir))
	k := startKubelet(t, dir)
	rh := startHost(t, dir, m)
	waitRegistered(t, k, "example.com/h")
	waitFor(t, "all healthy", func() bool { return healthOf(k.Devices("example.com/h"))["h-1"] == pluginapi.Healthy })

	if err := os.Remove(filepath.Join(healthDir, "h-1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "h-1 unhealthy", func() bool { return healthOf(k.Devices("example.com/h"))["h-1"] == pluginapi.Unhealthy })
	_, err := k.Endpoint("example.com/h").Client.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"h-1"}}},
	})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "h-1") {
		t.Errorf("allocate of an unhealthy device: %v, want FailedPrecondition naming h-1", err)
	}
	if got := gauge(t, rh.Metrics().Registry, "sdp_devices", "health", "Unhealthy"); got != 1 {
		t.Errorf("sdp_devices{health=Unhealthy} = %v, want 1", got)
	}

	if err := os.WriteFile(filepath.Join(healthDir, "h-1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "h-1 healthy again", func() bool { return healthOf(k.Devices("example.com/h"))["h-1"] == pluginapi.Healthy })
	if got := k.Registrations("example.com/h"); got != 1 {
		t.Errorf("health changes re-registered: %d registrations", got)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	dir := shortTempDir(t)
	rh := startHost(t, dir, mustParse(t, threeResources))
	srv := httptest.NewServer(rh.Handler())
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "example.com/a") {
		t.Errorf("/readyz before the kubelet = %d %q, want 503 naming the resources", code, body)
	}
	k := startKubelet(t, dir)
	waitRegistered(t, k, allThree...)
	waitFor(t, "/readyz 200", func() bool { code, _ := get("/readyz"); return code == 200 })
	_, body := get("/metrics")
	for _, want := range []string{
		`sdp_devices{health="Healthy",resource="example.com/a"} 4`,
		`sdp_devices{health="Unhealthy",resource="example.com/b"} 1`,
		`sdp_resource_registered{resource="example.com/c"} 1`,
		`sdp_registrations_total{resource="example.com/a"} 1`,
		`sdp_manifest_reloads_total{result="invalid"} 0`,
		`sdp_manifest_info{hash="`,
		`sdp_resources 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s; it has:\n%s", want, grepLines(body, "sdp_registrations_total", "sdp_plugin_restarts_total"))
		}
	}
	if _, err := k.Endpoint("example.com/a").Client.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"a-0"}}},
	}); err != nil {
		t.Fatal(err)
	}
	_, _ = k.Endpoint("example.com/a").Client.Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"zz"}}},
	})
	_, body = get("/metrics")
	for _, want := range []string{
		`sdp_allocate_requests_total{resource="example.com/a"} 1`,
		`sdp_allocate_errors_total{code="InvalidArgument",resource="example.com/a"} 1`,
		`sdp_allocate_duration_seconds_count 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func socketID(t *testing.T, dir, resource string) uint64 {
	t.Helper()
	ino, err := socketInode(filepath.Join(dir, manifest.SocketName(resource)))
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func socketInode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Sys().(*syscall.Stat_t).Ino, nil
}

// counter sums the samples of a metric whose label has the given value.
func counter(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

func gauge(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	return counter(t, reg, name, label, value)
}

// grepLines is the lines of text that contain any of words.
func grepLines(text string, words ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
