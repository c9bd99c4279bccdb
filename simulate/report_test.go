package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The text report is for people: the golden files show it whole, so a
// change in layout is seen (and reviewed) in the diff of testdata/.
func TestWriteText(t *testing.T) {
	tests := []struct {
		name       string
		manifest   string
		request    map[string]int
		containers int
		node       string
	}{
		{name: "default-request", manifest: mixed},
		{name: "two-containers", manifest: mixed, request: map[string]int{"example.com/fpga": 2, "example.com/seat": 1}, containers: 2, node: "edge-1"},
		{name: "clash", manifest: `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    ids: [x]
    mounts: [{hostPath: "/a/{{ .ID }}", containerPath: "/data/{{ .ID }}", perDevice: true}]
  - name: example.com/b
    count: 12
    idTemplate: "{{ if eq .Index 11 }}x{{ else }}b{{ .Index }}{{ end }}"
    unhealthy: [b3]
    mounts: [{hostPath: "/b/{{ .ID }}", containerPath: '{{ printf "/data/%s" .ID }}', perDevice: true}]
`, request: map[string]int{"example.com/a": 1, "example.com/b": 11}},
		{name: "nothing-served", manifest: `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - {name: example.com/a, count: 1, nodes: [gpu-*]}
  - {name: example.com/b, ids: [b0], unhealthy: [b0]}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Run(context.Background(), Options{Manifest: mustParse(t, tc.manifest), Request: tc.request,
				Containers: tc.containers, NodeName: tc.node, Timeout: hangTimeout})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := r.Write(&b, "text"); err != nil {
				t.Fatal(err)
			}
			// The temp dir differs per run; the hash changes with the manifest package.
			got := strings.NewReplacer(r.DevicePluginDir, "/tmp/sdp-sim-N", r.Manifest, "HASH").Replace(b.String())
			golden := filepath.Join("testdata", tc.name+".txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./simulate -run TestWriteText -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("text report differs from %s (go test ./simulate -run TestWriteText -update rewrites it):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// yaml and json are for scripts: they carry the whole report and read back
// into the same Report.
func TestWriteYAMLAndJSONRoundTrip(t *testing.T) {
	r, err := Run(context.Background(), Options{Manifest: mustParse(t, mixed), Request: map[string]int{"example.com/fpga": 2, "example.com/seat": 1}, Timeout: hangTimeout})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := r.Write(&b, format); err != nil {
				t.Fatal(err)
			}
			var back Report
			unmarshal := json.Unmarshal
			if format == "yaml" {
				unmarshal = func(data []byte, v any) error { return yaml.UnmarshalStrict(data, v) }
			}
			if err := unmarshal(b.Bytes(), &back); err != nil {
				t.Fatalf("%s output does not decode: %v\n%s", format, err, b.String())
			}
			if !reflect.DeepEqual(&back, r) {
				t.Errorf("%s round trip differs:\n got %+v\nwant %+v", format, back, *r)
			}
			for _, key := range []string{"manifestHash", "resources", "request", "containers", "deviceNodes", "cdiDevices", "numaNode", "skippedOnThisNode"} {
				if !strings.Contains(b.String(), key) {
					t.Errorf("%s output has no %q", format, key)
				}
			}
		})
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	err := (&Report{}).Write(&bytes.Buffer{}, "xml")
	if err == nil || !strings.Contains(err.Error(), `unknown output format "xml": use text, yaml or json`) {
		t.Errorf("Write(xml) = %v", err)
	}
}

func TestDescribeDevices(t *testing.T) {
	node := func(n int) *int { return &n }
	tests := []struct {
		name string
		devs []DeviceReport
		want string
	}{
		{name: "few", devs: []DeviceReport{{ID: "a", Health: "Healthy"}, {ID: "b", Health: "Healthy"}}, want: "a, b"},
		{name: "many", devs: devices("d", 12), want: "d0, d1, d2, …, d11 (12)"},
		{name: "unhealthy", devs: []DeviceReport{{ID: "a", Health: "Healthy"}, {ID: "b", Health: "Unhealthy"}}, want: "a, b; unhealthy: b"},
		{name: "all unhealthy", devs: []DeviceReport{{ID: "a", Health: "Unhealthy"}}, want: "a; all unhealthy"},
		{name: "NUMA", devs: []DeviceReport{{ID: "a", Health: "Healthy", NUMANode: node(0)}, {ID: "b", Health: "Healthy", NUMANode: node(1)}, {ID: "c", Health: "Healthy", NUMANode: node(1)}},
			want: "NUMA 0: a; NUMA 1: b, c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeDevices(tc.devs); got != tc.want {
				t.Errorf("describeDevices = %q, want %q", got, tc.want)
			}
		})
	}
}

func devices(prefix string, n int) []DeviceReport {
	out := make([]DeviceReport, n)
	for i := range out {
		out[i] = DeviceReport{ID: prefix + string(rune('0'+i%10)), Health: "Healthy"}
		if i >= 10 {
			out[i].ID = prefix + "1" + string(rune('0'+i%10))
		}
	}
	return out
}
