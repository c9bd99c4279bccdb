package host

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// Benchmarks of the host's hot paths in one process (go test -bench
// -benchmem ./host). End-to-end figures, across processes and against a
// baseline plugin, come from sdp-bench (make bench, docs/performance.md).

// benchFPGA is the bundled example's FPGA resource with 128 devices.
const benchFPGA = `apiVersion: simple-device-plugin/v1alpha1
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
      - {hostPath: /dev/null, containerPath: "/dev/fpga{{ .Index }}", permissions: rw, perDevice: true}
    cdiDevices:
      - {name: "example.com/fpga={{ .ID }}", perDevice: true}
`

func benchPlugin(b *testing.B, yaml string) *Plugin {
	b.Helper()
	m, err := manifest.Parse([]byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	return newPlugin(New(Config{DevicePluginDir: b.TempDir()}), m.Resources[0])
}

func allocateRequest(n int) *pluginapi.AllocateRequest {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "fpga-" + strconv.Itoa((i*37)%128) // unsorted, as the kubelet sends them
	}
	return &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}}
}

// The Allocate handler alone: checks, rendering, response, metrics; as
// served (wire form), and the typed pluginapi answer the wire form
// replaced (without metrics), for comparison.
func BenchmarkAllocateHandler(b *testing.B) {
	svc := &service{p: benchPlugin(b, benchFPGA)}
	ctx := context.Background()
	for _, n := range []int{1, 3, 64} {
		req := allocateRequest(n)
		b.Run(fmt.Sprintf("wire/devices=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.allocateWire(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("typed+marshal/devices=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := typedAllocate(svc, req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The ListAndWatch message of 1,000 devices, as each send encodes it.
func BenchmarkEncodeList(b *testing.B) {
	p := benchPlugin(b, "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/a, count: 1000, topology: {numaNodes: 2}}\n")
	snap := p.snapshot()
	b.ReportAllocs()
	for b.Loop() {
		encodeList(snap.res, snap.unhealthy)
	}
}
