package manifest

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

// fullResource uses every kind of output: env, annotations, shared and
// per-device mounts, shared and per-device device nodes, CDI devices.
const fullResource = `
name: example.com/fpga
count: 4
idTemplate: "fpga-{{ .Index }}"
env:
  FPGA_IDS: '{{ join .IDs "," }}'
  FPGA_COUNT: "{{ .Count }}"
  FPGA_NODE: "{{ .Node }}"
  FPGA_VENDOR: acme
annotations:
  example.com/fpga.ids: '{{ join .IDs "," }}'
mounts:
  - hostPath: /var/lib/fpga/shared
    containerPath: /opt/fpga
    readOnly: true
  - hostPath: "/var/lib/fpga/{{ .ID }}"
    containerPath: "/dev/fpga/{{ .ID }}"
    perDevice: true
devices:
  - hostPath: /dev/fpga-ctl
    containerPath: /dev/fpga-ctl
    permissions: r
  - hostPath: "/dev/null"
    containerPath: "/dev/fpga{{ .Index }}"
    perDevice: true
cdiDevices:
  - name: "example.com/fpga=all"
  - name: "example.com/fpga={{ .ID }}"
    perDevice: true`

func TestRender(t *testing.T) {
	full := mustResource(t, fullResource)
	envOnly := mustResource(t, "name: example.com/seat\nids: [s-a, s-b, s-c]\nenv: {SEATS: '{{ join .IDs \" \" }}'}")
	tests := []struct {
		name string
		r    *Resource
		ids  []string
		want *Allocation
	}{
		{
			name: "every output, IDs in manifest order whatever the request order",
			r:    full,
			ids:  []string{"fpga-3", "fpga-1"},
			want: &Allocation{
				Envs:        map[string]string{"FPGA_IDS": "fpga-1,fpga-3", "FPGA_COUNT": "2", "FPGA_NODE": "node-a", "FPGA_VENDOR": "acme"},
				Annotations: map[string]string{"example.com/fpga.ids": "fpga-1,fpga-3"},
				Mounts: []Mount{
					{ContainerPath: "/opt/fpga", HostPath: "/var/lib/fpga/shared", ReadOnly: true},
					{ContainerPath: "/dev/fpga/fpga-1", HostPath: "/var/lib/fpga/fpga-1"},
					{ContainerPath: "/dev/fpga/fpga-3", HostPath: "/var/lib/fpga/fpga-3"},
				},
				Devices: []DeviceNode{
					{ContainerPath: "/dev/fpga-ctl", HostPath: "/dev/fpga-ctl", Permissions: "r"},
					{ContainerPath: "/dev/fpga0", HostPath: "/dev/null", Permissions: "rw"},
					{ContainerPath: "/dev/fpga1", HostPath: "/dev/null", Permissions: "rw"},
				},
				CDIDevices: []string{"example.com/fpga=all", "example.com/fpga=fpga-1", "example.com/fpga=fpga-3"},
			},
		},
		{
			name: "one device",
			r:    full,
			ids:  []string{"fpga-0"},
			want: &Allocation{
				Envs:        map[string]string{"FPGA_IDS": "fpga-0", "FPGA_COUNT": "1", "FPGA_NODE": "node-a", "FPGA_VENDOR": "acme"},
				Annotations: map[string]string{"example.com/fpga.ids": "fpga-0"},
				Mounts: []Mount{
					{ContainerPath: "/opt/fpga", HostPath: "/var/lib/fpga/shared", ReadOnly: true},
					{ContainerPath: "/dev/fpga/fpga-0", HostPath: "/var/lib/fpga/fpga-0"},
				},
				Devices: []DeviceNode{
					{ContainerPath: "/dev/fpga-ctl", HostPath: "/dev/fpga-ctl", Permissions: "r"},
					{ContainerPath: "/dev/fpga0", HostPath: "/dev/null", Permissions: "rw"},
				},
				CDIDevices: []string{"example.com/fpga=all", "example.com/fpga=fpga-0"},
			},
		},
		{
			name: "env only leaves the rest nil",
			r:    envOnly,
			ids:  []string{"s-c", "s-a"},
			want: &Allocation{Envs: map[string]string{"SEATS": "s-a s-c"}},
		},
		{
			name: "no devices renders the shared parts only",
			r:    full,
			ids:  nil,
			want: &Allocation{
				Envs:        map[string]string{"FPGA_IDS": "", "FPGA_COUNT": "0", "FPGA_NODE": "node-a", "FPGA_VENDOR": "acme"},
				Annotations: map[string]string{"example.com/fpga.ids": ""},
				Mounts:      []Mount{{ContainerPath: "/opt/fpga", HostPath: "/var/lib/fpga/shared", ReadOnly: true}},
				Devices:     []DeviceNode{{ContainerPath: "/dev/fpga-ctl", HostPath: "/dev/fpga-ctl", Permissions: "r"}},
				CDIDevices:  []string{"example.com/fpga=all"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			request := slices.Clone(tc.ids)
			got, err := renderIDs(tc.r, request, "node-a")
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Render(%v) =\n%+v\nwant\n%+v", tc.ids, got, tc.want)
			}
			if !slices.Equal(request, tc.ids) {
				t.Errorf("Render reordered its argument: %v, was %v", request, tc.ids)
			}
		})
	}
}

func TestRenderUnknownIDs(t *testing.T) {
	r := mustResource(t, fullResource)
	tests := []struct {
		name        string
		ids         []string
		wantUnknown []string
		wantMessage string
	}{
		{"one unknown", []string{"fpga-0", "gpu-0"}, []string{"gpu-0"}, `example.com/fpga has no device "gpu-0"`},
		{"all unknown, in request order", []string{"zz", "fpga-9", ""}, []string{"zz", "fpga-9", ""}, `example.com/fpga has no device "zz", "fpga-9", ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := renderIDs(r, tc.ids, "node-a")
			var unknown *UnknownIDsError
			if !errors.As(err, &unknown) {
				t.Fatalf("Render = %v, %v; want *UnknownIDsError", a, err)
			}
			if unknown.Resource != r.Name || !slices.Equal(unknown.IDs, tc.wantUnknown) {
				t.Errorf("UnknownIDsError = %+v, want IDs %v", unknown, tc.wantUnknown)
			}
			if err.Error() != tc.wantMessage {
				t.Errorf("message %q, want %q", err.Error(), tc.wantMessage)
			}
		})
	}
}

func TestResourceLookups(t *testing.T) {
	r := mustResource(t, "name: example.com/a\nids: [p, q, r, s]\nunhealthy: [r]\ntopology: {nodeOf: {p: 1, q: 0, r: 1, s: 3}}")
	plain := mustResource(t, "name: example.com/b\ncount: 2")
	tests := []struct {
		name          string
		id            string
		wantHas       bool
		wantPosition  int
		wantUnhealthy bool
		wantNUMA      int
	}{
		{"first", "p", true, 0, false, 1},
		{"second", "q", true, 1, false, 0},
		{"unhealthy", "r", true, 2, true, 1},
		{"last", "s", true, 3, false, 3},
		{"unknown", "t", false, -1, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Has(tc.id); got != tc.wantHas {
				t.Errorf("Has = %v, want %v", got, tc.wantHas)
			}
			if got := r.Position(tc.id); got != tc.wantPosition {
				t.Errorf("Position = %d, want %d", got, tc.wantPosition)
			}
			if got := r.StaticUnhealthy(tc.id); got != tc.wantUnhealthy {
				t.Errorf("StaticUnhealthy = %v, want %v", got, tc.wantUnhealthy)
			}
			if tc.wantPosition >= 0 {
				if node, ok := r.NUMANode(tc.wantPosition); !ok || node != tc.wantNUMA {
					t.Errorf("NUMANode = %d, %v; want %d, true", node, ok, tc.wantNUMA)
				}
			}
		})
	}
	if node, ok := plain.NUMANode(0); ok || node != 0 {
		t.Errorf("NUMANode without topology = %d, %v; want 0, false", node, ok)
	}
	blocks := mustResource(t, "name: example.com/c\ncount: 5\ntopology: {numaNodes: 2}")
	var got []int
	for i := range blocks.IDs {
		n, _ := blocks.NUMANode(i)
		got = append(got, n)
	}
	if want := []int{0, 0, 0, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("numaNodes: 2 over 5 devices places them on %v, want %v", got, want)
	}
}

func TestServesNode(t *testing.T) {
	everywhere := mustResource(t, "name: example.com/a\ncount: 1")
	pools := mustResource(t, "name: example.com/a\ncount: 1\nnodes: [\"pool-a-*\", \"gpu-[0-9]\", exact]")
	tests := []struct {
		name string
		r    *Resource
		node string
		want bool
	}{
		{"no nodes: any node", everywhere, "whatever", true},
		{"no nodes: empty node name", everywhere, "", true},
		{"star glob", pools, "pool-a-17", true},
		{"star glob, other pool", pools, "pool-b-1", false},
		{"class glob", pools, "gpu-7", true},
		{"class glob, two digits", pools, "gpu-17", false},
		{"exact name", pools, "exact", true},
		{"exact name is not a prefix", pools, "exact-1", false},
		{"empty node name", pools, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.ServesNode(tc.node); got != tc.want {
				t.Errorf("ServesNode(%q) = %v, want %v", tc.node, got, tc.want)
			}
		})
	}
}

func TestSameSpecDevicesRegistration(t *testing.T) {
	const base = "name: example.com/a\ncount: 3\nenv: {A: x}\nunhealthy: [a-1]\ntopology: {numaNodes: 1}\nhealthCheck: {path: '/run/{{ .ID }}'}"
	tests := []struct {
		name             string
		other            string
		wantSpec         bool
		wantDevices      bool
		wantRegistration bool
	}{
		{"identical", base, true, true, true},
		{"same after defaults", base + "\nallocationPolicy: packed", true, true, true},
		{"env changed", "name: example.com/a\ncount: 3\nenv: {A: w}\nunhealthy: [a-1]\ntopology: {numaNodes: 1}\nhealthCheck: {path: '/run/{{ .ID }}'}", false, true, true},
		{"policy changed", base + "\nallocationPolicy: spread", false, true, true},
		{"count changed", "name: example.com/a\ncount: 4\nenv: {A: x}\nunhealthy: [a-1]\ntopology: {numaNodes: 1}\nhealthCheck: {path: '/run/{{ .ID }}'}", false, false, true},
		{"unhealthy changed", "name: example.com/a\ncount: 3\nenv: {A: x}\nunhealthy: [a-2]\ntopology: {numaNodes: 1}\nhealthCheck: {path: '/run/{{ .ID }}'}", false, false, true},
		{"topology changed", "name: example.com/a\ncount: 3\nenv: {A: x}\nunhealthy: [a-1]\ntopology: {numaNodes: 3}\nhealthCheck: {path: '/run/{{ .ID }}'}", false, false, true},
		{"health interval changed", base[:len(base)-1] + ", interval: 1s}", false, false, true},
		{"health path changed", "name: example.com/a\ncount: 3\nenv: {A: x}\nunhealthy: [a-1]\ntopology: {numaNodes: 1}\nhealthCheck: {path: '/ok/{{ .ID }}'}", false, false, true},
		{"preStartRequired changed", base + "\npreStartRequired: true", false, true, false},
		{"name changed", "name: example.com/b\ncount: 3\nidTemplate: 'a-{{ .Index }}'\nenv: {A: x}\nunhealthy: [a-1]\ntopology: {numaNodes: 1}\nhealthCheck: {path: '/run/{{ .ID }}'}", false, true, false},
	}
	r := mustResource(t, base)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := mustResource(t, tc.other)
			if got := r.SameSpec(o); got != tc.wantSpec {
				t.Errorf("SameSpec = %v, want %v", got, tc.wantSpec)
			}
			if got := r.SameDevices(o); got != tc.wantDevices {
				t.Errorf("SameDevices = %v, want %v", got, tc.wantDevices)
			}
			if got := r.SameRegistration(o); got != tc.wantRegistration {
				t.Errorf("SameRegistration = %v, want %v", got, tc.wantRegistration)
			}
		})
	}
}

// BenchmarkRender renders one allocation of 3 devices for a resource with
// env, annotations, shared and per-device mounts, device nodes and CDI.
func BenchmarkRender(b *testing.B) {
	r := mustResource(b, fullResource)
	ids := []string{"fpga-3", "fpga-0", "fpga-2"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := renderIDs(r, ids, "node-a"); err != nil {
			b.Fatal(err)
		}
	}
}
