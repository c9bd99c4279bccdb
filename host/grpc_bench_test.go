package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"

	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/manifest"
)

// Allocate through the real gRPC server on its unix socket, in one
// process: the host's share of a round trip (sdp-bench measures it across
// processes against a baseline plugin).
func BenchmarkAllocateGRPC(b *testing.B) {
	client := benchHost(b, "")
	for _, n := range []int{1, 3, 64} {
		req := fpgaRequest(n)
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) { benchAllocateGRPC(b, client, req) })
	}
}

// Allocate with who-holds-what off, and on against a kubelet whose
// PodResources answer lists 1,000 pods holding 10,000 devices: each
// Allocate brings a read of it forward, and the reads run beside the
// calls. The two run in the same process, in alternating rounds.
func BenchmarkAllocateWhoHoldsWhat(b *testing.B) {
	sock := filepath.Join(host.ShortTempDir(b), "kubelet.sock")
	podRes, err := kubeletsim.StartPodResources(sock)
	if err != nil {
		b.Fatal(err)
	}
	defer podRes.Stop()
	resp := &podresourcesapi.ListPodResourcesResponse{}
	for p := range 1000 {
		ids := make([]string, 10)
		for d := range ids {
			ids[d] = "fpga-" + strconv.Itoa(p*10+d)
		}
		resp.PodResources = append(resp.PodResources, kubeletsim.Pod("default", "pod-"+strconv.Itoa(p),
			map[string]map[string][]string{"main": {"example.com/fpga": ids}}))
	}
	podRes.Set(resp)
	req := fpgaRequest(1)
	// Rounds alternate off and on, so the drift of a shared machine falls
	// on both: compare each round's pair.
	for range 4 {
		for _, tc := range []struct{ name, socket string }{{"off", ""}, {"on", sock}} {
			b.Run("podresources="+tc.name, func(b *testing.B) {
				client := benchHost(b, tc.socket)
				before := podRes.Calls()
				benchAllocateGRPC(b, client, req)
				b.ReportMetric(float64(podRes.Calls()-before)/b.Elapsed().Seconds(), "reads/s")
			})
		}
	}
}

// benchHost serves testdata/fpga-128.yaml to a stand-in kubelet until the
// benchmark ends and returns the kubelet's client of the plugin.
func benchHost(b *testing.B, podResourcesSocket string) pluginapi.DevicePluginClient {
	b.Helper()
	dir := host.ShortTempDir(b)
	k, err := kubeletsim.Start(dir, kubeletsim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Stop)
	data, err := os.ReadFile("../testdata/fpga-128.yaml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := manifest.Parse(data, host.CheckDeviceList)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- host.New(host.Config{DevicePluginDir: dir, PodResourcesSocket: podResourcesSocket}).Run(ctx, m)
	}()
	b.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := k.WaitRegistered(wctx, []string{"example.com/fpga"}); err != nil {
		b.Fatal(err)
	}
	return k.Endpoint("example.com/fpga").Client
}

// fpgaRequest asks for n of fpga-128.yaml's devices, spread out.
func fpgaRequest(n int) *pluginapi.AllocateRequest {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "fpga-" + strconv.Itoa((i*37)%128)
	}
	return &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}}
}

func benchAllocateGRPC(b *testing.B, client pluginapi.DevicePluginClient, req *pluginapi.AllocateRequest) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Allocate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
