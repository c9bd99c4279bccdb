package host_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	api "k8s.io/kubelet/pkg/apis/podresources/v1"

	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/podresources"
)

// startPodResources serves a stand-in PodResources API until the test ends.
func startPodResources(t *testing.T) (*kubeletsim.PodResources, string) {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "kubelet.sock")
	pr, err := kubeletsim.StartPodResources(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Stop)
	return pr, sock
}

// startHostWithPodResources runs threeResources with who-holds-what read
// from sock; the slow period is an hour, so only Allocate brings reads.
func startHostWithPodResources(t *testing.T, sock string, seriesMax int) *runningHost {
	t.Helper()
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh := runHost(t, mustParse(t, threeResources), host.Config{
		DevicePluginDir: dir, NodeName: "node-1", PollInterval: 200 * time.Millisecond,
		PodResourcesSocket: sock, PodResourcesPeriod: time.Hour, AllocatedSeriesMax: seriesMax,
	})
	waitRegistered(t, k, "example.com/a", "example.com/b", "example.com/c")
	return rh
}

// allocate asks resource's plugin for ids as the kubelet does, which
// makes the host re-read the PodResources API shortly after.
func allocate(t *testing.T, rh *runningHost, resource string, ids ...string) {
	t.Helper()
	_, err := dial(t, rh.dir, resource).Allocate(context.Background(), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
	if err != nil {
		t.Fatalf("Allocate %s %v: %v", resource, ids, err)
	}
}

func pods(p ...*api.PodResources) *api.ListPodResourcesResponse {
	return &api.ListPodResourcesResponse{PodResources: p}
}

// devicesOf lists "ID Health holder,..." for one resource of a.
func devicesOf(a host.Allocations, resource string) (lines []string, free int, served bool) {
	for _, r := range a.Resources {
		if r.Resource != resource {
			continue
		}
		for _, d := range r.Devices {
			var who []string
			for _, h := range d.Holders {
				who = append(who, h.Namespace+"/"+h.Pod+"/"+h.Container)
			}
			lines = append(lines, strings.TrimSpace(d.ID+" "+d.Health+" "+strings.Join(who, ",")))
		}
		return lines, r.Free, r.Served
	}
	return nil, -1, false
}

func TestAllocationsFollowTheKubelet(t *testing.T) {
	pr, sock := startPodResources(t)
	rh := startHostWithPodResources(t, sock, 0)

	pr.Set(pods(
		kubeletsim.Pod("default", "mixed", map[string]map[string][]string{
			"main":  {"example.com/a": {"a-1", "a-3"}, "nvidia.com/gpu": {"GPU-0"}},
			"other": {"example.com/b": {"x"}},
		}),
	))
	allocate(t, rh, "example.com/a", "a-1", "a-3") // the period is an hour: this read is the Allocate's
	waitFor(t, "the holders of a-1 and a-3", func() bool {
		lines, _, _ := devicesOf(rh.Allocations(), "example.com/a")
		return len(lines) == 4 && strings.HasSuffix(lines[1], "default/mixed/main")
	})

	tests := []struct {
		resource string
		want     []string
		free     int
	}{
		{"example.com/a", []string{"a-0 Healthy", "a-1 Healthy default/mixed/main", "a-2 Healthy", "a-3 Healthy default/mixed/main"}, 2},
		{"example.com/b", []string{"x Healthy default/mixed/other", "w Unhealthy", "z Healthy"}, 1},
		{"example.com/c", []string{"c-0 Healthy", "c-1 Healthy"}, 2},
	}
	a := rh.Allocations()
	if a.State != podresources.StateOK || a.Refreshed == nil {
		t.Fatalf("state %s (%s), refreshed %v; want ok", a.State, a.Reason, a.Refreshed)
	}
	if len(a.Resources) != 3 {
		t.Errorf("resources %+v, want ours only (a, b, c)", a.Resources)
	}
	for _, tt := range tests {
		lines, free, served := devicesOf(a, tt.resource)
		if !reflect.DeepEqual(lines, tt.want) || free != tt.free || !served {
			t.Errorf("%s: devices %q free %d served %v; want %q free %d served", tt.resource, lines, free, served, tt.want, tt.free)
		}
	}

	// A reload drops c and a-2, a-3 while pods hold a-3 and c-0: shown as
	// Removed, held by their pods, until the kubelet no longer lists them.
	m := mustParse(t, strings.Replace(strings.Replace(threeResources, "count: 4", "count: 2", 1),
		"  - name: example.com/c\n    count: 2\n", "", 1))
	if _, err := rh.Apply(m); err != nil {
		t.Fatal(err)
	}
	pr.Set(pods(
		kubeletsim.Pod("default", "mixed", map[string]map[string][]string{"main": {"example.com/a": {"a-1", "a-3"}}}),
		kubeletsim.Pod("ml", "old", map[string]map[string][]string{"main": {"example.com/c": {"c-0"}}}),
	))
	allocate(t, rh, "example.com/b", "z")
	waitFor(t, "c-0 held by ml/old", func() bool {
		lines, _, _ := devicesOf(rh.Allocations(), "example.com/c")
		return len(lines) == 1
	})
	a = rh.Allocations()
	for _, tt := range []struct {
		resource string
		want     []string
		free     int
		served   bool
	}{
		{"example.com/a", []string{"a-0 Healthy", "a-1 Healthy default/mixed/main", "a-3 Removed default/mixed/main"}, 1, true},
		{"example.com/c", []string{"c-0 Removed ml/old/main"}, 0, false},
	} {
		lines, free, served := devicesOf(a, tt.resource)
		if !reflect.DeepEqual(lines, tt.want) || free != tt.free || served != tt.served {
			t.Errorf("after the reload, %s: devices %q free %d served %v; want %q free %d served %v", tt.resource, lines, free, served, tt.want, tt.free, tt.served)
		}
	}

	// The pods end: their devices are simply free, the removed ones gone.
	pr.Set(pods())
	allocate(t, rh, "example.com/b", "z")
	waitFor(t, "every device free", func() bool {
		_, free, _ := devicesOf(rh.Allocations(), "example.com/a")
		return free == 2
	})
	if _, _, served := devicesOf(rh.Allocations(), "example.com/c"); served {
		t.Error("example.com/c is still listed after its last holder went")
	}
	if lines, _, _ := devicesOf(rh.Allocations(), "example.com/c"); lines != nil {
		t.Errorf("example.com/c still listed: %q", lines)
	}
}

// get fetches path from the host's HTTP handler over loopback.
func get(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", path, resp.Status, err)
	}
	return string(b)
}

func TestAllocationsOverHTTP(t *testing.T) {
	tests := []struct {
		name      string
		seriesMax int
		want      []string
		notWant   []string
	}{
		{"per-device series", 0,
			[]string{
				`sdp_device_allocated{container="main",device="a-1",namespace="default",pod="mixed",resource="example.com/a"} 1`,
				`sdp_device_allocated{container="other",device="x",namespace="default",pod="mixed",resource="example.com/b"} 1`,
				`sdp_devices_free{resource="example.com/a"} 3`,
				`sdp_devices_free{resource="example.com/b"} 1`,
				`sdp_devices_free{resource="example.com/c"} 2`,
				`sdp_pod_resources_refreshes_total{result="ok"}`,
			}, []string{"GPU-0"}},
		{"resources over the bound get none", 3,
			[]string{
				`sdp_device_allocated{container="other",device="x",namespace="default",pod="mixed",resource="example.com/b"} 1`,
				`sdp_devices_free{resource="example.com/a"} 3`,
			}, []string{`device="a-1"`}},
		{"none at all", -1,
			[]string{`sdp_devices_free{resource="example.com/a"} 3`},
			[]string{"sdp_device_allocated{"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, sock := startPodResources(t)
			pr.Set(pods(kubeletsim.Pod("default", "mixed", map[string]map[string][]string{
				"main":  {"example.com/a": {"a-1"}, "nvidia.com/gpu": {"GPU-0"}},
				"other": {"example.com/b": {"x"}},
			})))
			rh := startHostWithPodResources(t, sock, tt.seriesMax)
			allocate(t, rh, "example.com/a", "a-1")
			waitFor(t, "a-1 held", func() bool {
				_, free, _ := devicesOf(rh.Allocations(), "example.com/a")
				return free == 3
			})
			metrics := get(t, rh.Handler(), "/metrics")
			for _, w := range tt.want {
				if !strings.Contains(metrics, w) {
					t.Errorf("/metrics lacks %s", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(metrics, w) {
					t.Errorf("/metrics has %s", w)
				}
			}
			want, err := json.MarshalIndent(rh.Allocations(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, rh.Handler(), "/allocations"); got != string(want)+"\n" {
				t.Errorf("/allocations:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// Without a socket, or before the kubelet answers, nothing claims to know.
func TestAllocationsUnknown(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	for _, tt := range []struct {
		name, socket string
		state        podresources.State
	}{
		{"no flag", "", podresources.StateOff},
		{"no socket", filepath.Join(dir, "absent", "kubelet.sock"), podresources.StateOff},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rh := runHost(t, mustParse(t, threeResources), host.Config{DevicePluginDir: dir, NodeName: "node-1", PodResourcesSocket: tt.socket})
			waitRegistered(t, k, "example.com/a")
			a := rh.Allocations()
			if a.State != tt.state || a.Reason == "" || a.Refreshed != nil {
				t.Errorf("state %s reason %q refreshed %v; want %s with a reason", a.State, a.Reason, a.Refreshed, tt.state)
			}
			if _, free, served := devicesOf(a, "example.com/a"); !served || free != 4 {
				t.Errorf("example.com/a served %v free %d; want served, 4 free", served, free)
			}
			if m := get(t, rh.Handler(), "/metrics"); strings.Contains(m, "sdp_devices_free") {
				t.Error("/metrics has sdp_devices_free though the kubelet never answered")
			}
			rh.stop(t)
		})
	}
}
