package simulate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// mixed has what a report can show: generated and explicit IDs, env,
// annotations, shared and per-device mounts, device nodes, CDI devices
// (one shared by two resources), NUMA topology, a static unhealthy device,
// IDs whose manifest order is not their sorted order, and a resource served
// only on some nodes.
const mixed = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    count: 4
    idTemplate: "fpga-{{ .Index }}"
    env:
      FPGA_IDS: '{{ join .IDs "," }}'
      FPGA_NODE: '{{ .Node }}'
    annotations:
      example.com/fpga: '{{ .Count }}'
    mounts:
      - {hostPath: /srv/fpga, containerPath: /opt/fpga, readOnly: true}
      - {hostPath: "/srv/{{ .ID }}", containerPath: "/dev/fpga/{{ .ID }}", perDevice: true}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/fpga{{ .Index }}", permissions: r, perDevice: true}
    cdiDevices:
      - {name: "example.com/fpga={{ .ID }}", perDevice: true}
      - {name: "example.com/fpga=common"}
    topology: {numaNodes: 2}
  - name: example.com/seat
    ids: [s10, s2, s1]
    unhealthy: [s2]
    env:
      SEATS: '{{ join .IDs "," }}'
    cdiDevices:
      - {name: "example.com/fpga=common"}
    preStartRequired: true
  - name: example.com/edge
    count: 1
    nodes: ["edge-*"]
`

// hangTimeout bounds a simulation in the tests. A run takes milliseconds;
// the bound is generous so that it only turns a hang into a failure, on a
// loaded machine too.
const hangTimeout = time.Minute

func mustParse(t *testing.T, yaml string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return m
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]int
		wantErr string
	}{
		{name: "one", in: "example.com/fpga=2", want: map[string]int{"example.com/fpga": 2}},
		{name: "several with spaces", in: " example.com/a=1 , example.com/b = 3,", want: map[string]int{"example.com/a": 1, "example.com/b": 3}},
		{name: "no count", in: "example.com/a", wantErr: "write <resource>=<count>"},
		{name: "no name", in: "=2", wantErr: "write <resource>=<count>"},
		{name: "zero", in: "example.com/a=0", wantErr: "at least 1"},
		{name: "negative", in: "example.com/a=-1", wantErr: "at least 1"},
		{name: "not a number", in: "example.com/a=two", wantErr: "whole number"},
		{name: "twice", in: "example.com/a=1,example.com/a=2", wantErr: "names example.com/a twice"},
		{name: "empty", in: " , ", wantErr: "the request is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseRequest(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !mapsEqual(got, tc.want) {
				t.Errorf("ParseRequest(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		manifest   string
		request    map[string]int
		containers int
		node       string
		check      func(t *testing.T, r *Report)
	}{
		{
			name:     "no request: one device of every resource served on the node",
			manifest: mixed,
			check: func(t *testing.T, r *Report) {
				wantResources(t, r, "example.com/fpga", "example.com/seat")
				if len(r.Skipped) != 1 || r.Skipped[0].Name != "example.com/edge" || !slices.Equal(r.Skipped[0].Nodes, []string{"edge-*"}) {
					t.Errorf("skipped = %+v, want example.com/edge with its nodes", r.Skipped)
				}
				if !r.DefaultRequest || !mapsEqual(r.Request, map[string]int{"example.com/fpga": 1, "example.com/seat": 1}) {
					t.Errorf("request = %v (default %v), want one of each served resource", r.Request, r.DefaultRequest)
				}
				fpga := r.Resources[0]
				if fpga.Socket != filepath.Join(r.DevicePluginDir, "example.com_fpga.sock") || !fpga.PreferredAllocation || fpga.PreStartRequired {
					t.Errorf("fpga registration = %+v", fpga)
				}
				var numa []int
				for _, d := range fpga.Devices {
					numa = append(numa, *d.NUMANode)
				}
				if !slices.Equal(numa, []int{0, 0, 1, 1}) {
					t.Errorf("fpga NUMA nodes = %v, want [0 0 1 1]", numa)
				}
				if seat := r.Resources[1]; !seat.PreStartRequired || healthOf(seat.Devices) != "s10=Healthy s2=Unhealthy s1=Healthy" {
					t.Errorf("seat = %+v, want preStartRequired and s2 unhealthy", seat)
				}
				c := onlyContainer(t, r)
				wantDevices(t, c, map[string][]string{"example.com/fpga": {"fpga-0"}, "example.com/seat": {"s10"}})
				wantEnv(t, c, map[string]string{"FPGA_IDS": "fpga-0", "FPGA_NODE": "", "SEATS": "s10"})
				if c.Annotations["example.com/fpga"] != "1" {
					t.Errorf("annotations = %v", c.Annotations)
				}
				wantMounts := []MountReport{
					{ContainerPath: "/opt/fpga", HostPath: "/srv/fpga", ReadOnly: true, Resource: "example.com/fpga"},
					{ContainerPath: "/dev/fpga/fpga-0", HostPath: "/srv/fpga-0", Resource: "example.com/fpga"},
				}
				if !slices.Equal(c.Mounts, wantMounts) {
					t.Errorf("mounts = %+v, want %+v", c.Mounts, wantMounts)
				}
				wantNodes := []DeviceNodeReport{{ContainerPath: "/dev/fpga0", HostPath: "/dev/null", Permissions: "r", Resource: "example.com/fpga"}}
				if !slices.Equal(c.DeviceNodes, wantNodes) {
					t.Errorf("device nodes = %+v, want %+v", c.DeviceNodes, wantNodes)
				}
				// The CDI device both resources name is passed once, as the kubelet does.
				if want := []string{"example.com/fpga=fpga-0", "example.com/fpga=common"}; !slices.Equal(c.CDIDevices, want) {
					t.Errorf("CDI devices = %v, want %v", c.CDIDevices, want)
				}
				if len(c.Warnings) != 0 {
					t.Errorf("warnings = %v, want none", c.Warnings)
				}
			},
		},
		{
			name:       "containers get different devices; .IDs and devices are in manifest order",
			manifest:   mixed,
			request:    map[string]int{"example.com/fpga": 2, "example.com/seat": 1},
			containers: 2,
			node:       "node-7",
			check: func(t *testing.T, r *Report) {
				if len(r.Containers) != 2 {
					t.Fatalf("got %d containers, want 2", len(r.Containers))
				}
				// packed: each container on one NUMA node.
				wantDevices(t, &r.Containers[0], map[string][]string{"example.com/fpga": {"fpga-0", "fpga-1"}, "example.com/seat": {"s10"}})
				wantDevices(t, &r.Containers[1], map[string][]string{"example.com/fpga": {"fpga-2", "fpga-3"}, "example.com/seat": {"s1"}})
				wantEnv(t, &r.Containers[1], map[string]string{"FPGA_IDS": "fpga-2,fpga-3", "FPGA_NODE": "node-7", "SEATS": "s1"})
				if got := r.Containers[1].DeviceNodes; len(got) != 2 || got[0].ContainerPath != "/dev/fpga0" || got[1].ContainerPath != "/dev/fpga1" {
					t.Errorf("container-1 device nodes = %+v, want /dev/fpga0 and /dev/fpga1 (.Index is per allocation)", got)
				}
			},
		},
		{
			name:     "manifest order, not sorted order",
			manifest: mixed,
			request:  map[string]int{"example.com/seat": 2},
			check: func(t *testing.T, r *Report) {
				c := onlyContainer(t, r)
				wantDevices(t, c, map[string][]string{"example.com/seat": {"s10", "s1"}})
				wantEnv(t, c, map[string]string{"SEATS": "s10,s1"})
			},
		},
		{
			name:     "a resource with nodes: is served where a glob matches",
			manifest: mixed,
			node:     "edge-3",
			request:  map[string]int{"example.com/edge": 1},
			check: func(t *testing.T, r *Report) {
				wantResources(t, r, "example.com/fpga", "example.com/seat", "example.com/edge")
				if len(r.Skipped) != 0 {
					t.Errorf("skipped = %v, want none", r.Skipped)
				}
				wantDevices(t, onlyContainer(t, r), map[string][]string{"example.com/edge": {"edge-0"}})
			},
		},
		{
			name: "no request and no healthy device: nothing asked of that resource",
			manifest: `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - {name: example.com/broken, ids: [b0, b1], unhealthy: [b0, b1]}
  - {name: example.com/ok, count: 1}
`,
			check: func(t *testing.T, r *Report) {
				if !slices.Equal(r.NotRequested, []string{"example.com/broken"}) {
					t.Errorf("notRequested = %v, want example.com/broken", r.NotRequested)
				}
				wantDevices(t, onlyContainer(t, r), map[string][]string{"example.com/ok": {"ok-0"}})
			},
		},
		{
			name: "nothing served on the node: no container",
			manifest: `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - {name: example.com/a, count: 1, nodes: [gpu-*]}
`,
			node: "cpu-1",
			check: func(t *testing.T, r *Report) {
				if len(r.Resources) != 0 || len(r.Containers) != 0 || len(r.Request) != 0 {
					t.Errorf("report = %+v, want no resources, request or containers", r)
				}
			},
		},
		{
			name: "a per-device path two resources render alike is a warning",
			// Validation tries the first devices and compares identical
			// templates; two different templates that meet only at x pass it,
			// so this clash shows only when example.com/b hands out x.
			manifest: `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    ids: [x]
    mounts: [{hostPath: "/a/{{ .ID }}", containerPath: "/data/{{ .ID }}", perDevice: true}]
  - name: example.com/b
    ids: [p, q, r, x]
    mounts: [{hostPath: "/b/{{ .ID }}", containerPath: '{{ printf "/data/%s" .ID }}', perDevice: true}]
`,
			request: map[string]int{"example.com/a": 1, "example.com/b": 4},
			check: func(t *testing.T, r *Report) {
				c := onlyContainer(t, r)
				want := []string{"mount /data/x is /a/x from example.com/a and /b/x from example.com/b; the kubelet keeps one of them at random"}
				if !slices.Equal(c.Warnings, want) {
					t.Errorf("warnings = %q, want %q", c.Warnings, want)
				}
				if len(c.Mounts) != 4 {
					t.Errorf("mounts = %+v, want 4 (the first /data/x kept)", c.Mounts)
				}
				if got := r.Warnings(); len(got) != 1 || !strings.HasPrefix(got[0], "container-0: mount /data/x") {
					t.Errorf("Report.Warnings() = %q", got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Run(context.Background(), Options{
				Manifest: mustParse(t, tc.manifest), Request: tc.request, Containers: tc.containers,
				NodeName: tc.node, Timeout: hangTimeout,
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(r.DevicePluginDir); !os.IsNotExist(err) {
				t.Errorf("the device-plugin dir %s is still there after Run (stat: %v)", r.DevicePluginDir, err)
			}
			tc.check(t, r)
		})
	}
}

func TestRunRefusesWhatTheKubeletWouldRefuse(t *testing.T) {
	tests := []struct {
		name       string
		request    map[string]int
		containers int
		node       string
		want       string
	}{
		{name: "unknown resource", request: map[string]int{"example.com/gpu": 1},
			want: "the manifest has no resource example.com/gpu; it has example.com/fpga, example.com/seat, example.com/edge"},
		{name: "resource not served on the node", request: map[string]int{"example.com/edge": 1}, node: "core-1",
			want: `example.com/edge is not served on node "core-1": none of its nodes: globs (edge-*) matches; set --node-name to a node it serves`},
		{name: "more devices than declared", request: map[string]int{"example.com/fpga": 5},
			want: "example.com/fpga: the request needs 5 devices but the manifest declares only 4; the kubelet would refuse the pod"},
		{name: "more devices than declared across containers", request: map[string]int{"example.com/fpga": 3}, containers: 2,
			want: "example.com/fpga: the request needs 6 devices (2 containers × 3) but the manifest declares only 4; the kubelet would refuse the pod"},
		{name: "more devices than healthy", request: map[string]int{"example.com/seat": 3},
			want: "container-0: example.com/seat: requested number of devices unavailable for example.com/seat. Requested: 3, Available: 2 (2 of its 3 devices are healthy)"},
		{name: "healthy devices used up by earlier containers", request: map[string]int{"example.com/seat": 1}, containers: 3,
			want: "container-2: example.com/seat: requested number of devices unavailable for example.com/seat. Requested: 1, Available: 0 (2 of its 3 devices are healthy and 2 went to earlier containers)"},
	}
	m := mustParse(t, mixed)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Run(context.Background(), Options{Manifest: m, Request: tc.request, Containers: tc.containers, NodeName: tc.node, Timeout: hangTimeout})
			if err == nil {
				t.Fatalf("Run succeeded with %+v, want an error", r)
			}
			var reqErr *RequestError
			if !errors.As(err, &reqErr) {
				t.Errorf("error %v (%T) is not a *RequestError", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error =\n  %s\nwant\n  %s", err, tc.want)
			}
		})
	}
}

// The host probes health checks at start, but its first device list may
// reach the kubelet before the probe does; the report must show the probed
// health every time, not the race's winner.
func TestRunWaitsForHealthChecks(t *testing.T) {
	dir, err := os.MkdirTemp("", "sdp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "sensor-1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := mustParse(t, `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/sensor
    count: 3
    healthCheck: {path: "`+dir+`/{{ .ID }}", interval: 1h}
`)
	for i := 0; i < 5; i++ {
		r, err := Run(context.Background(), Options{Manifest: m, Timeout: hangTimeout})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := healthOf(r.Resources[0].Devices), "sensor-0=Unhealthy sensor-1=Healthy sensor-2=Unhealthy"; got != want {
			t.Fatalf("run %d: health = %s, want %s", i, got, want)
		}
		wantDevices(t, onlyContainer(t, r), map[string][]string{"example.com/sensor": {"sensor-1"}})
	}
}

// Unix socket paths are limited to 108 bytes: a long $TMPDIR must not make
// simulate fail.
func TestRunWithALongTMPDIR(t *testing.T) {
	base, err := os.MkdirTemp("", "sdp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	long := filepath.Join(base, strings.Repeat("x", 90))
	if err := os.Mkdir(long, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", long)
	r, err := Run(context.Background(), Options{Manifest: mustParse(t, mixed), Timeout: hangTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Containers) != 1 {
		t.Errorf("got %d containers, want 1", len(r.Containers))
	}
}

// Run must return whenever its context ends: cancelled before the start,
// or as the kubelet and the host start; with resources to wait for, or
// none served on the node (the host then stops at once). Each run gets
// hangTimeout, only to turn a hang into a failure.
func TestRunStopsWithItsContext(t *testing.T) {
	served := mustParse(t, mixed)
	noneServed := mustParse(t, `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - {name: example.com/a, count: 1, nodes: [gpu-*]}
`)
	for i := range 200 {
		opts := Options{Manifest: served}
		if i%4 >= 2 {
			opts = Options{Manifest: noneServed, NodeName: "cpu-1"}
		}
		var ctx context.Context
		var cancel context.CancelFunc
		if i%2 == 0 {
			ctx, cancel = context.WithCancel(context.Background())
			cancel()
		} else {
			// Deadlines from 0 to 2 ms end the context at different steps.
			ctx, cancel = context.WithTimeout(context.Background(), time.Duration(i%20)*100*time.Microsecond)
		}
		done := make(chan error, 1)
		go func() {
			_, err := Run(ctx, opts)
			done <- err
		}()
		select {
		case err := <-done:
			cancel()
			if i%4 == 0 && err == nil {
				t.Fatalf("run %d: Run succeeded with a cancelled context", i)
			}
		case <-time.After(hangTimeout):
			cancel()
			t.Fatalf("run %d: Run did not return within %v of its context's end", i, hangTimeout)
		}
	}
}

func TestMerge(t *testing.T) {
	type resp = pluginapi.ContainerAllocateResponse
	tests := []struct {
		name         string
		responses    []resourceResponse
		wantEnv      map[string]string
		wantMounts   []string // containerPath<-hostPath
		wantDevices  []string
		wantCDI      []string
		wantWarnings []string
	}{
		{
			name: "disjoint: everything kept",
			responses: []resourceResponse{
				{"example.com/a", &resp{Envs: map[string]string{"A": "1"}, Mounts: []*pluginapi.Mount{{ContainerPath: "/a", HostPath: "/ha"}}}},
				{"example.com/b", &resp{Envs: map[string]string{"B": "2"}, Devices: []*pluginapi.DeviceSpec{{ContainerPath: "/dev/b", HostPath: "/dev/null", Permissions: "rw"}}}},
			},
			wantEnv:     map[string]string{"A": "1", "B": "2"},
			wantMounts:  []string{"/a<-/ha"},
			wantDevices: []string{"/dev/b<-/dev/null"},
		},
		{
			name: "the same value twice: kept once, no warning",
			responses: []resourceResponse{
				{"example.com/a", &resp{Envs: map[string]string{"X": "1"}, Mounts: []*pluginapi.Mount{{ContainerPath: "/m", HostPath: "/h"}},
					Devices: []*pluginapi.DeviceSpec{{ContainerPath: "/dev/d", HostPath: "/dev/null"}}, CdiDevices: []*pluginapi.CDIDevice{{Name: "v.com/c=x"}}}},
				{"example.com/b", &resp{Envs: map[string]string{"X": "1"}, Mounts: []*pluginapi.Mount{{ContainerPath: "/m", HostPath: "/h"}},
					Devices: []*pluginapi.DeviceSpec{{ContainerPath: "/dev/d", HostPath: "/dev/null"}}, CdiDevices: []*pluginapi.CDIDevice{{Name: "v.com/c=x"}}}},
			},
			wantEnv:     map[string]string{"X": "1"},
			wantMounts:  []string{"/m<-/h"},
			wantDevices: []string{"/dev/d<-/dev/null"},
			wantCDI:     []string{"v.com/c=x"},
		},
		{
			name: "conflicts: the first kept, each one a warning",
			responses: []resourceResponse{
				{"example.com/a", &resp{Envs: map[string]string{"X": "1"}, Annotations: map[string]string{"k": "a"},
					Mounts: []*pluginapi.Mount{{ContainerPath: "/m", HostPath: "/ha"}}, Devices: []*pluginapi.DeviceSpec{{ContainerPath: "/dev/d", HostPath: "/dev/a"}}}},
				{"example.com/b", &resp{Envs: map[string]string{"X": "2"}, Annotations: map[string]string{"k": "b"},
					Mounts: []*pluginapi.Mount{{ContainerPath: "/m", HostPath: "/hb"}}, Devices: []*pluginapi.DeviceSpec{{ContainerPath: "/dev/d", HostPath: "/dev/b"}}}},
			},
			wantEnv:     map[string]string{"X": "1"},
			wantMounts:  []string{"/m<-/ha"},
			wantDevices: []string{"/dev/d<-/dev/a"},
			wantWarnings: []string{
				`annotation k is set by example.com/a ("a") and by example.com/b ("b"); the kubelet keeps one of them at random`,
				"device node /dev/d is /dev/a from example.com/a and /dev/b from example.com/b; the kubelet keeps one of them at random",
				`env X is set by example.com/a ("1") and by example.com/b ("2"); the kubelet keeps one of them at random`,
				"mount /m is /ha from example.com/a and /hb from example.com/b; the kubelet keeps one of them at random",
			},
		},
		{
			name: "a mount and a device node on one path",
			responses: []resourceResponse{
				{"example.com/a", &resp{Mounts: []*pluginapi.Mount{{ContainerPath: "/dev/x", HostPath: "/srv/x"}}}},
				{"example.com/b", &resp{Devices: []*pluginapi.DeviceSpec{{ContainerPath: "/dev/x", HostPath: "/dev/null"}}}},
			},
			wantEnv:      map[string]string{},
			wantMounts:   []string{"/dev/x<-/srv/x"},
			wantDevices:  []string{"/dev/x<-/dev/null"},
			wantWarnings: []string{"/dev/x is a mount (from example.com/a) and a device node (from example.com/b); the container runtime cannot create both"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cr ContainerReport
			merge(&cr, tc.responses)
			if !mapsEqual(cr.Env, tc.wantEnv) {
				t.Errorf("env = %v, want %v", cr.Env, tc.wantEnv)
			}
			var mounts, devices []string
			for _, m := range cr.Mounts {
				mounts = append(mounts, m.ContainerPath+"<-"+m.HostPath)
			}
			for _, d := range cr.DeviceNodes {
				devices = append(devices, d.ContainerPath+"<-"+d.HostPath)
			}
			if !slices.Equal(mounts, tc.wantMounts) || !slices.Equal(devices, tc.wantDevices) {
				t.Errorf("mounts = %v, devices = %v; want %v, %v", mounts, devices, tc.wantMounts, tc.wantDevices)
			}
			if !slices.Equal(cr.CDIDevices, tc.wantCDI) {
				t.Errorf("CDI = %v, want %v", cr.CDIDevices, tc.wantCDI)
			}
			if !slices.Equal(cr.Warnings, tc.wantWarnings) {
				t.Errorf("warnings =\n  %s\nwant\n  %s", strings.Join(cr.Warnings, "\n  "), strings.Join(tc.wantWarnings, "\n  "))
			}
		})
	}
}

func onlyContainer(t *testing.T, r *Report) *ContainerReport {
	t.Helper()
	if len(r.Containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(r.Containers))
	}
	return &r.Containers[0]
}

func wantResources(t *testing.T, r *Report, names ...string) {
	t.Helper()
	var got []string
	for _, res := range r.Resources {
		got = append(got, res.Name)
	}
	if !slices.Equal(got, names) {
		t.Errorf("registered resources = %v, want %v", got, names)
	}
}

func wantDevices(t *testing.T, c *ContainerReport, want map[string][]string) {
	t.Helper()
	if len(c.Devices) != len(want) {
		t.Errorf("%s devices = %v, want %v", c.Name, c.Devices, want)
		return
	}
	for res, ids := range want {
		if !slices.Equal(c.Devices[res], ids) {
			t.Errorf("%s devices = %v, want %v", c.Name, c.Devices, want)
			return
		}
	}
}

func wantEnv(t *testing.T, c *ContainerReport, want map[string]string) {
	t.Helper()
	if !mapsEqual(c.Env, want) {
		t.Errorf("%s env = %v, want %v", c.Name, c.Env, want)
	}
}

func healthOf(devs []DeviceReport) string {
	parts := make([]string, len(devs))
	for i, d := range devs {
		parts[i] = d.ID + "=" + d.Health
	}
	return strings.Join(parts, " ")
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A discover: resource declares no devices, so an explicit request for
// it is checked against what the host finds under --host-root, not
// against the manifest.
func TestRunRequestsDiscoveredDevices(t *testing.T) {
	root := t.TempDir()
	for i, name := range []string{"ttyUSB0", "ttyUSB1"} {
		path := filepath.Join(root, "dev", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(188, uint32(i)))); errors.Is(err, unix.EPERM) {
			t.Skipf("cannot make device nodes here (run as root): %v", err)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	m := mustParse(t, `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/tty
    discover: {paths: ["/dev/ttyUSB*"]}
`)
	run := func(n int) (*Report, error) {
		return Run(context.Background(), Options{Manifest: m, Request: map[string]int{"example.com/tty": n}, HostRoot: root, Timeout: hangTimeout})
	}
	r, err := run(2)
	if err != nil {
		t.Fatalf("a request for the 2 devices found: %v", err)
	}
	if got := r.Containers[0].Devices["example.com/tty"]; !slices.Equal(got, []string{"ttyUSB0", "ttyUSB1"}) {
		t.Errorf("container-0 got %v, want both ttys", got)
	}
	_, err = run(3)
	if want := "container-0: example.com/tty: requested number of devices unavailable for example.com/tty. Requested: 3, Available: 2 (2 of its 2 devices are healthy)"; err == nil || err.Error() != want {
		t.Errorf("a request for 3 of 2: error %v, want %s", err, want)
	}
}

func TestRunDRA(t *testing.T) {
	m := mustParse(t, `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/gadget
    count: 3
    unhealthy: [gadget-0]
    api: dra
    dra: {attributes: {model: m}}
    env: {GADGET_IDS: '{{ join .IDs "," }}'}
    devices: [{hostPath: /dev/null, containerPath: '/dev/g{{ .ID }}', perDevice: true}]
  - name: example.com/seat
    count: 2
    env: {SEAT: '{{ join .IDs "," }}'}
`)
	r, err := Run(context.Background(), Options{Manifest: m, NodeName: "n1", Containers: 2, Timeout: hangTimeout,
		Request: map[string]int{"example.com/gadget": 1, "example.com/seat": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Resources) != 1 || r.Resources[0].Name != "example.com/seat" {
		t.Errorf("device plugins: %+v, want only example.com/seat", r.Resources)
	}
	if len(r.DRA) != 1 || r.DRA[0].Driver != "gadget.example.com" || r.DRA[0].DeviceClass.Name != "gadget.example.com" ||
		len(r.DRA[0].ResourceSlices) != 1 || r.DRA[0].ResourceSlices[0].Spec.Pool.Name != "n1" {
		t.Fatalf("DRA report: %+v", r.DRA)
	}
	if taints := r.DRA[0].ResourceSlices[0].Spec.Devices[0].Taints; len(taints) != 1 {
		t.Errorf("the unhealthy gadget-0 has taints %v", taints)
	}
	// The unhealthy device is not claimed; each container gets its own.
	for i, want := range []string{"gadget-1", "gadget-2"} {
		c := r.Containers[i]
		if len(c.Claims) != 1 || !slices.Equal(c.Claims[0].Devices, []string{want}) || c.Env["GADGET_IDS"] != want || c.Env["SEAT"] == "" ||
			len(c.DeviceNodes) != 1 || c.DeviceNodes[0].ContainerPath != "/dev/g"+want || !slices.Contains(c.CDIDevices, c.Claims[0].CDIDevice) {
			t.Errorf("%s: %+v", c.Name, c)
		}
	}
	_, err = Run(context.Background(), Options{Manifest: m, NodeName: "n1", Containers: 3, Timeout: hangTimeout,
		Request: map[string]int{"example.com/gadget": 1}})
	if want := "container-2: example.com/gadget: the scheduler cannot allocate 1 devices (2 of its 3 devices are healthy and 2 went to earlier containers)"; err == nil || err.Error() != want {
		t.Errorf("a third container: %v, want %s", err, want)
	}
}
