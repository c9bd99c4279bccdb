package host

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// The wire form of Allocate must decode to exactly the typed answer.
func TestAllocateWireDecodesToTheTypedAnswer(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		reqs [][]string
	}{
		{"every kind of item", benchFPGA, [][]string{{"fpga-3"}, {"fpga-9", "fpga-1", "fpga-100"}}},
		{"64 devices", benchFPGA, [][]string{allocateRequest(64).ContainerRequests[0].DevicesIds}},
		{"nothing but devices", "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/a, count: 3}\n", [][]string{{"a-1"}, {"a-0", "a-2"}}},
		{"empty values, read-write mounts, no permissions", `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    count: 2
    env: {EMPTY: "", ALSO: '{{ "" }}', IDS: '{{ join .IDs "," }}'}
    annotations: {example.com/x: ""}
    mounts: [{hostPath: /a, containerPath: /b}, {hostPath: "/h/{{ .ID }}", containerPath: "/c/{{ .ID }}", readOnly: true, perDevice: true}]
    devices: [{hostPath: /dev/null, containerPath: "/dev/a{{ .Index }}", perDevice: true}]
`, [][]string{{"a-1", "a-0"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			svc := &service{p: newPlugin(New(Config{DevicePluginDir: t.TempDir(), NodeName: "node-1"}), m.Resources[0])}
			req := &pluginapi.AllocateRequest{}
			for _, ids := range tc.reqs {
				req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerAllocateRequest{DevicesIds: ids})
			}
			want, err := svc.Allocate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := svc.allocateWire(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			var got pluginapi.AllocateResponse
			if err := proto.Unmarshal(wire, &got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got, want) {
				t.Fatalf("wire form decodes to\n%v\nwant\n%v", &got, want)
			}
			if size := proto.Size(want); len(wire) != size {
				t.Errorf("wire form is %d bytes, proto.Marshal writes %d", len(wire), size)
			}
		})
	}
}

// Text that is not UTF-8 is refused, as proto.Marshal refuses it.
func TestAllocateWireRefusesInvalidUTF8(t *testing.T) {
	for _, a := range []*manifest.Allocation{
		{Envs: map[string]string{"X": "\xff"}},
		{Annotations: map[string]string{"\xfe": "x"}},
		{Mounts: []manifest.Mount{{ContainerPath: "/a\xff", HostPath: "/b"}}},
		{Devices: []manifest.DeviceNode{{ContainerPath: "/dev/a", HostPath: "/dev/\xff", Permissions: "rw"}}},
		{CDIDevices: []string{"example.com/a=\xff"}},
	} {
		if _, err := encodeAllocateResponse([]*manifest.Allocation{a}); err == nil {
			t.Errorf("%+v: no error", a)
		}
		if _, err := proto.Marshal(&pluginapi.AllocateResponse{ContainerResponses: []*pluginapi.ContainerAllocateResponse{toContainerResponse(a)}}); err == nil {
			t.Errorf("%+v: proto.Marshal accepts it", a)
		}
	}
}
