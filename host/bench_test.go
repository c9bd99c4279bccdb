package host

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// Benchmarks of the host's hot paths in one process (go test -bench
// -benchmem ./host). End-to-end figures, across processes and against a
// baseline plugin, come from sdp-bench (make bench, docs/performance.md).

// fpgaManifest is the bundled example's FPGA resource with 128 devices,
// shared with the other benchmarks.
const fpgaManifest = "../testdata/fpga-128.yaml"

func benchPlugin(b *testing.B, yaml []byte) *Plugin {
	b.Helper()
	m, err := manifest.Parse(yaml, CheckDeviceList)
	if err != nil {
		b.Fatal(err)
	}
	return newPlugin(New(Config{DevicePluginDir: b.TempDir()}), m.Resources[0])
}

func readFile(b *testing.B, path string) []byte {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func allocateRequest(n int) *pluginapi.AllocateRequest {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "fpga-" + strconv.Itoa((i*37)%128) // unsorted, as the kubelet sends them
	}
	return &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}}
}

// The Allocate handler and the encoding gRPC does after it: checks,
// rendering, response, metrics, marshal.
func BenchmarkAllocateHandler(b *testing.B) {
	svc := &service{p: benchPlugin(b, readFile(b, fpgaManifest))}
	for _, n := range []int{1, 3, 64} {
		req := allocateRequest(n)
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) { benchAllocate(b, svc, req) })
	}
}

// benchAllocate measures Allocate and the encoding of its answer.
func benchAllocate(b *testing.B, svc *service, req *pluginapi.AllocateRequest) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := svc.Allocate(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := proto.Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
}

// The ListAndWatch message of 1,000 devices, as each send builds and
// encodes it.
func BenchmarkListAndWatchMessage(b *testing.B) {
	p := benchPlugin(b, []byte("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/a, count: 1000, topology: {numaNodes: 2}}\n"))
	snap := p.snapshot()
	b.ReportAllocs()
	for b.Loop() {
		list := deviceList(snap)
		if _, err := proto.Marshal(&list.msg); err != nil {
			b.Fatal(err)
		}
		list.release()
	}
}

// Allocate's answer with the per-device edits in it (mounts and device
// nodes) against the same resource with cdi.spec, whose answer names the
// CDI devices instead: what a generated CDI spec costs (or saves) per call.
func BenchmarkAllocateCDI(b *testing.B) {
	const head = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    count: 128
    idTemplate: "fpga-{{ .Index }}"
    env:
      FPGA_IDS: '{{ join .IDs "," }}'
      FPGA_COUNT: "{{ .Count }}"
    annotations:
      example.com/fpga.ids: '{{ join .IDs "," }}'
    mounts:
      - {hostPath: /var/lib/fpga/shared, containerPath: /opt/fpga, readOnly: true}
      - {hostPath: "/var/lib/fpga/{{ .ID }}", containerPath: "/dev/fpga/{{ .ID }}", perDevice: true}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/{{ .ID }}", permissions: rw, perDevice: true}
`
	for _, n := range []int{1, 3, 64} {
		req := allocateRequest(n)
		for _, answer := range []struct{ name, yaml string }{
			{"edits", head},
			{"cdi", head + "    cdi: {spec: true}\n"},
		} {
			svc := &service{p: benchPlugin(b, []byte(answer.yaml))}
			b.Run(fmt.Sprintf("devices=%d/%s", n, answer.name), func(b *testing.B) { benchAllocate(b, svc, req) })
		}
	}
}
