package manifest

import (
	"reflect"
	"strings"
	"testing"

	"simple-device-plugin/discover"
)

func node(path, host string) discover.Node { return discover.Node{Path: path, HostPath: host} }

func TestWithFound(t *testing.T) {
	serial := []discover.Device{
		{Path: "/dev/serial/by-id/usb-FTDI_A9X1", Nodes: []discover.Node{node("/dev/serial/by-id/usb-FTDI_A9X1", "/dev/ttyUSB1")}},
		{Path: "/dev/ttyUSB0", Nodes: []discover.Node{node("/dev/ttyUSB0", "/dev/ttyUSB0")}},
	}
	tests := []struct {
		name     string
		item     string
		found    []discover.Device
		max      int
		ids      []string
		problems []string
	}{
		{"base names", "name: example.com/tty\ndiscover: {paths: [/dev/ttyUSB*]}", serial, 100,
			[]string{"usb-FTDI_A9X1", "ttyUSB0"}, nil},
		{"shares", "name: example.com/fuse\ndiscover: {paths: [/dev/fuse], share: 3}",
			[]discover.Device{{Path: "/dev/fuse", Nodes: []discover.Node{node("/dev/fuse", "/dev/fuse")}}}, 100,
			[]string{"fuse-0", "fuse-1", "fuse-2"}, nil},
		{"idTemplate with .Base and .Index", "name: example.com/tty\nidTemplate: 'port{{ .Index }}-{{ .Base }}'\ndiscover: {paths: [/dev/ttyUSB*]}", serial, 100,
			[]string{"port0-usb-FTDI_A9X1", "port1-ttyUSB0"}, nil},
		{"idTemplate from the USB serial: the ID follows the adapter", "name: example.com/tty\nidTemplate: 'ftdi-{{ .Serial }}'\ndiscover: {paths: [/dev/ttyUSB*]}",
			[]discover.Device{{Path: "/dev/ttyUSB0", Serial: "B7Z2"}, {Path: "/dev/ttyUSB1", Serial: "A9X1"}}, 100,
			[]string{"ftdi-B7Z2", "ftdi-A9X1"}, nil},
		{"group keys", "name: example.com/snd\ndiscover: {groups: {key: 'C(\\d+)', paths: [/dev/snd/*]}}",
			[]discover.Device{{Path: "/dev/snd/controlC0", Key: "card0"}, {Path: "/dev/snd/controlC1", Key: "card1"}}, 100,
			[]string{"card0", "card1"}, nil},
		{"the same ID twice: the second left out", "name: example.com/usb\ndiscover: {paths: ['/dev/bus/usb/*/*']}",
			[]discover.Device{{Path: "/dev/bus/usb/001/001"}, {Path: "/dev/bus/usb/002/001"}}, 100,
			[]string{"001"}, []string{`/dev/bus/usb/002/001: its device ID "001" is another match's too`}},
		{"over the bound", "name: example.com/fuse\ndiscover: {paths: [/dev/fuse], share: 3}",
			[]discover.Device{{Path: "/dev/fuse"}}, 2,
			[]string{"fuse-0", "fuse-1"}, []string{"/dev/fuse: more than 2 devices"}},
		{"an invalid ID", "name: example.com/tty\ndiscover: {paths: ['/dev/*']}",
			[]discover.Device{{Path: "/dev/" + strings.Repeat("x", 300)}, {Path: "/dev/ok"}}, 100,
			[]string{"ok"}, []string{"its device ID is invalid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, problems := mustResource(t, tt.item).WithFound(tt.found, tt.max)
			if !reflect.DeepEqual(r.IDs, tt.ids) {
				t.Errorf("IDs %q, want %q", r.IDs, tt.ids)
			}
			for i, id := range r.IDs {
				if r.Position(id) != i {
					t.Errorf("Position(%q) = %d, want %d", id, r.Position(id), i)
				}
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems %+v, want %q", problems, tt.problems)
			}
			for i, p := range problems {
				if got := p.Path + ": " + p.Reason; !strings.Contains(got, tt.problems[i]) {
					t.Errorf("problem %q, want %q in it", got, tt.problems[i])
				}
			}
		})
	}
}

// A discovered device's nodes reach the container with the templates'
// .Path and .Base; two shares of one match carry its node once.
func TestRenderFound(t *testing.T) {
	r, _ := mustResource(t, `name: example.com/tty
discover:
  paths: [/dev/ttyUSB*, /dev/fuse]
  share: 2
  containerPath: '/dev/host/{{ .Base }}'
  permissions: r
env:
  TTYS: '{{ join .IDs "," }}'
mounts:
  - {hostPath: '/var/lib/tty/{{ .Base }}', containerPath: '/etc/tty{{ .Path }}-{{ .ID }}', perDevice: true}
`).WithFound([]discover.Device{
		{Path: "/dev/fuse", Nodes: []discover.Node{node("/dev/fuse", "/dev/fuse")}},
		{Path: "/dev/ttyUSB0", Nodes: []discover.Node{node("/dev/ttyUSB0", "/dev/ttyUSB0")}},
	}, 100)
	a, err := renderIDs(r, []string{"ttyUSB0-1", "ttyUSB0-0", "fuse-1"}, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	want := &Allocation{
		Envs: map[string]string{"TTYS": "fuse-1,ttyUSB0-0,ttyUSB0-1"},
		Mounts: []Mount{
			{HostPath: "/var/lib/tty/fuse", ContainerPath: "/etc/tty/dev/fuse-fuse-1"},
			{HostPath: "/var/lib/tty/ttyUSB0", ContainerPath: "/etc/tty/dev/ttyUSB0-ttyUSB0-0"},
			{HostPath: "/var/lib/tty/ttyUSB0", ContainerPath: "/etc/tty/dev/ttyUSB0-ttyUSB0-1"},
		},
		Devices: []DeviceNode{
			{HostPath: "/dev/fuse", ContainerPath: "/dev/host/fuse", Permissions: "r"},
			{HostPath: "/dev/ttyUSB0", ContainerPath: "/dev/host/ttyUSB0", Permissions: "r"},
		},
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("allocation\n got %+v\nwant %+v", a, want)
	}

	// With a generated CDI spec, the nodes are in the device's edits.
	c, _ := mustResource(t, "name: example.com/tty\ndiscover: {paths: [/dev/ttyUSB*]}\ncdi: {spec: true}").WithFound([]discover.Device{
		{Path: "/dev/ttyUSB0", Nodes: []discover.Node{node("/dev/ttyUSB0", "/dev/ttyUSB0")}},
	}, 100)
	_, nodes, err := c.DeviceEdits(0, "node-1")
	if err != nil || !reflect.DeepEqual(nodes, []DeviceNode{{HostPath: "/dev/ttyUSB0", ContainerPath: "/dev/ttyUSB0", Permissions: "rw"}}) {
		t.Errorf("DeviceEdits: %+v, %v", nodes, err)
	}
	a, err = renderIDs(c, []string{"ttyUSB0"}, "node-1")
	if err != nil || len(a.Devices) != 0 || !reflect.DeepEqual(a.CDIDevices, []string{"example.com/tty=ttyUSB0"}) {
		t.Errorf("with a CDI spec the answer is the CDI name alone: %+v, %v", a, err)
	}
}

// A fixed containerPath serves one device per container; two different
// nodes there are an error, never one of them dropped.
func TestFoundNodesAtOnePath(t *testing.T) {
	r, _ := mustResource(t, "name: example.com/gps\ndiscover: {paths: [/dev/ttyUSB*], containerPath: /dev/gps}").WithFound([]discover.Device{
		{Path: "/dev/ttyUSB0", Nodes: []discover.Node{node("/dev/ttyUSB0", "/dev/ttyUSB0")}},
		{Path: "/dev/ttyUSB1", Nodes: []discover.Node{node("/dev/ttyUSB1", "/dev/ttyUSB1")}},
	}, 100)
	if a, err := renderIDs(r, []string{"ttyUSB1"}, ""); err != nil || len(a.Devices) != 1 || a.Devices[0].HostPath != "/dev/ttyUSB1" {
		t.Errorf("one device: %+v, %v", a, err)
	}
	_, err := renderIDs(r, []string{"ttyUSB0", "ttyUSB1"}, "")
	if err == nil || !strings.Contains(err.Error(), "puts /dev/ttyUSB0 and /dev/ttyUSB1 both at /dev/gps") {
		t.Errorf("two devices at /dev/gps: %v", err)
	}
}
