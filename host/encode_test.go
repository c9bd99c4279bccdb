package host

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// encodeList must write exactly what proto.Marshal writes for the same
// message, or the kubelet would read something else than we mean.
func TestEncodeListIsTheProtobufEncoding(t *testing.T) {
	long := strings.Repeat("x", 60)
	tests := []struct {
		name  string
		yaml  string
		probe []bool
	}{
		{"plain", `{name: example.com/a, count: 5}`, nil},
		{"static unhealthy", `{name: example.com/a, ids: [x, w, z], unhealthy: [w]}`, nil},
		{"probe unhealthy", `{name: example.com/a, count: 3}`, []bool{true, false, true}},
		{"numa nodes 0 and 1", `{name: example.com/a, count: 4, topology: {numaNodes: 2}}`, nil},
		{"numa node ids needing 2-byte varints", `{name: example.com/a, ids: [a, b, c], topology: {nodeOf: {a: 0, b: 127, c: 1023}}}`, nil},
		{"long ids", fmt.Sprintf(`{name: example.com/a, count: 3, idTemplate: "%s{{ .Index }}"}`, long), nil},
		{"many devices", `{name: example.com/a, count: 3000, topology: {numaNodes: 3}, unhealthy: [a-7]}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.Parse([]byte("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - " + tc.yaml + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			res := m.Resources[0]
			snap := buildSnapshot(res, tc.probe)
			want := &pluginapi.ListAndWatchResponse{}
			for i, id := range res.IDs {
				d := &pluginapi.Device{ID: id, Health: pluginapi.Healthy}
				if snap.unhealthy[i] {
					d.Health = pluginapi.Unhealthy
				}
				if node, ok := res.NUMANode(i); ok {
					d.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(node)}}}
				}
				want.Devices = append(want.Devices, d)
			}
			wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			got := encodeList(res, snap.unhealthy)
			if !bytes.Equal(got, wantBytes) {
				t.Fatalf("encodeList differs from proto.Marshal: %d bytes, want %d", len(got), len(wantBytes))
			}
			var back pluginapi.ListAndWatchResponse
			if err := proto.Unmarshal(got, &back); err != nil || !proto.Equal(&back, want) {
				t.Fatalf("does not decode to the list: %v", err)
			}
		})
	}
}
