package host_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/manifest"
)

// Allocate through the real gRPC server on its unix socket, in one
// process: the host's share of a round trip (sdp-bench measures it across
// processes against a baseline plugin).
func BenchmarkAllocateGRPC(b *testing.B) {
	dir := host.ShortTempDir(b)
	k, err := kubeletsim.Start(dir, kubeletsim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer k.Stop()
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
	go func() { done <- host.New(host.Config{DevicePluginDir: dir}).Run(ctx, m) }()
	defer func() { cancel(); <-done }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := k.WaitRegistered(wctx, []string{"example.com/fpga"}); err != nil {
		b.Fatal(err)
	}
	client := k.Endpoint("example.com/fpga").Client
	for _, n := range []int{1, 3, 64} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = "fpga-" + strconv.Itoa((i*37)%128)
		}
		req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}}
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Allocate(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
