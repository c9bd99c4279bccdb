package host

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
			want, err := typedAllocate(svc, req)
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

// Text that is not UTF-8 is refused, as proto.Marshal refuses it, also
// when the strings would make valid text together; other text is not.
func TestAllocateWireRefusesInvalidUTF8(t *testing.T) {
	tests := []struct {
		a     *manifest.Allocation
		valid bool
	}{
		{&manifest.Allocation{Envs: map[string]string{"X": "\xff"}}, false},
		{&manifest.Allocation{Annotations: map[string]string{"\xfe": "x"}}, false},
		{&manifest.Allocation{Mounts: []manifest.Mount{{ContainerPath: "/a\xff", HostPath: "/b"}}}, false},
		{&manifest.Allocation{Devices: []manifest.DeviceNode{{ContainerPath: "/dev/a", HostPath: "/dev/\xff", Permissions: "rw"}}}, false},
		{&manifest.Allocation{Devices: []manifest.DeviceNode{{ContainerPath: "/dev/a", HostPath: "/dev/b", Permissions: "r\xff"}}}, false},
		{&manifest.Allocation{CDIDevices: []string{"example.com/a=\xff"}}, false},
		// "é" is C3 A9: cut in two, each half is invalid.
		{&manifest.Allocation{Envs: map[string]string{"A": "x\xc3", "B": "\xa9y"}}, false},
		{&manifest.Allocation{Envs: map[string]string{"A": "données"}, Mounts: []manifest.Mount{{ContainerPath: "/mnt/données", HostPath: "/b"}}}, true},
	}
	for _, tc := range tests {
		rd := renderedOf(tc.a)
		_, err := encodeAllocateResponse([]manifest.Rendered{rd})
		if (err == nil) != tc.valid {
			t.Errorf("%+v: encode error %v, want valid=%v", tc.a, err, tc.valid)
		}
		_, err = proto.Marshal(&pluginapi.AllocateResponse{ContainerResponses: []*pluginapi.ContainerAllocateResponse{toContainerResponse(tc.a)}})
		if (err == nil) != tc.valid {
			t.Errorf("%+v: proto.Marshal error %v, want valid=%v", tc.a, err, tc.valid)
		}
	}
}

// typedAllocate is the reference the wire form is held to: each container
// request checked and rendered by manifest.Render, as pluginapi structs.
func typedAllocate(s *service, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	snap := s.p.snapshot()
	resp := &pluginapi.AllocateResponse{}
	for i, cr := range req.ContainerRequests {
		if err := checkIDs(snap, cr.DevicesIds); err != nil {
			return nil, fmt.Errorf("container request %d: %w", i, err)
		}
		a, err := snap.res.Render(cr.DevicesIds, s.p.host.cfg.NodeName)
		if err != nil {
			return nil, fmt.Errorf("container request %d: %w", i, err)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, toContainerResponse(a))
	}
	return resp, nil
}

func toContainerResponse(a *manifest.Allocation) *pluginapi.ContainerAllocateResponse {
	r := &pluginapi.ContainerAllocateResponse{Envs: a.Envs, Annotations: a.Annotations}
	if len(a.Mounts) > 0 {
		mounts := make([]pluginapi.Mount, len(a.Mounts))
		r.Mounts = make([]*pluginapi.Mount, len(a.Mounts))
		for i, m := range a.Mounts {
			mounts[i].ContainerPath, mounts[i].HostPath, mounts[i].ReadOnly = m.ContainerPath, m.HostPath, m.ReadOnly
			r.Mounts[i] = &mounts[i]
		}
	}
	if len(a.Devices) > 0 {
		devs := make([]pluginapi.DeviceSpec, len(a.Devices))
		r.Devices = make([]*pluginapi.DeviceSpec, len(a.Devices))
		for i, d := range a.Devices {
			devs[i].ContainerPath, devs[i].HostPath, devs[i].Permissions = d.ContainerPath, d.HostPath, d.Permissions
			r.Devices[i] = &devs[i]
		}
	}
	if len(a.CDIDevices) > 0 {
		cdi := make([]pluginapi.CDIDevice, len(a.CDIDevices))
		r.CdiDevices = make([]*pluginapi.CDIDevice, len(a.CDIDevices))
		for i, name := range a.CDIDevices {
			cdi[i].Name = name
			r.CdiDevices[i] = &cdi[i]
		}
	}
	return r
}

// renderedOf writes a as the renderer would: every string in one text,
// map entries in key order.
func renderedOf(a *manifest.Allocation) manifest.Rendered {
	var rd manifest.Rendered
	span := func(s string) manifest.Span {
		start := len(rd.Text)
		rd.Text = append(rd.Text, s...)
		return manifest.Span{Start: start, End: len(rd.Text)}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Envs)) {
		rd.Envs = append(rd.Envs, manifest.RenderedKV{Key: k, Value: span(a.Envs[k])})
	}
	for _, k := range slices.Sorted(maps.Keys(a.Annotations)) {
		rd.Annotations = append(rd.Annotations, manifest.RenderedKV{Key: k, Value: span(a.Annotations[k])})
	}
	for _, m := range a.Mounts {
		rd.Mounts = append(rd.Mounts, manifest.RenderedMount{ContainerPath: span(m.ContainerPath), HostPath: span(m.HostPath), ReadOnly: m.ReadOnly})
	}
	for _, d := range a.Devices {
		rd.Devices = append(rd.Devices, manifest.RenderedDevice{ContainerPath: span(d.ContainerPath), HostPath: span(d.HostPath), Permissions: d.Permissions})
	}
	for _, c := range a.CDIDevices {
		rd.CDIDevices = append(rd.CDIDevices, span(c))
	}
	return rd
}
