package host

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// The size the bound uses is the real encoded size of the largest message.
func TestListAndWatchSizeMatchesProto(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
	}{
		{"none", nil},
		{"one short ID", []string{"a"}},
		{"assorted", []string{"a", "fpga-12345", strings.Repeat("x", 63)}},
		{"a two-byte length", []string{strings.Repeat("x", 115)}},
	}
	for _, tc := range tests {
		for _, topology := range []bool{false, true} {
			var devs []*pluginapi.Device
			for _, id := range tc.ids {
				d := &pluginapi.Device{ID: id, Health: pluginapi.Unhealthy}
				if topology {
					d.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: manifest.MaxNUMANode}}}
				}
				devs = append(devs, d)
			}
			want := proto.Size(&pluginapi.ListAndWatchResponse{Devices: devs})
			if got := ListAndWatchSize(tc.ids, topology); got != want {
				t.Errorf("%s, topology=%v: ListAndWatchSize = %d, proto.Size = %d", tc.name, topology, got, want)
			}
		}
	}
}

// A manifest whose device list the kubelet could not receive is refused
// at load, at the field that makes the list, with the sizes involved.
func TestCheckDeviceListBoundsTheManifest(t *testing.T) {
	tests := []struct {
		name     string
		resource string
		path     string // "" when valid
		message  string
	}{
		{"count under the bound", "count: 80000", "", ""},
		{"count over the bound", "count: 100000\n    idTemplate: 'device-with-a-long-name-{{ .Index }}'",
			"resources[0].count", "100000 devices encode to a 4.2 MiB ListAndWatch message; the kubelet accepts at most 4.0 MiB and this plugin allows 2.0 MiB"},
		{"count over the bound with topology", "count: 80000\n    topology: {numaNodes: 2}",
			"resources[0].count", "80000 devices encode to a 2.2 MiB ListAndWatch message"},
		{"ids over the bound", "ids: [" + manyIDs(70000, 30) + "]",
			"resources[0].ids", "70000 devices encode to a 3.0 MiB ListAndWatch message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/x\n    " + tc.resource + "\n"
			_, err := manifest.Parse([]byte(yaml), CheckDeviceList)
			list := manifest.Errors(err)
			switch {
			case tc.path == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.path == "":
			case len(list) != 1 || list[0].Path != tc.path || !strings.Contains(list[0].Message, tc.message):
				t.Fatalf("errors %v, want one at %s containing %q", err, tc.path, tc.message)
			}
		})
	}
}

// manyIDs is a YAML flow list body of n distinct IDs of the given length.
func manyIDs(n, length int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "d%0*d", length-1, i)
	}
	return b.String()
}
