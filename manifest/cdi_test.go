package manifest

import (
	"reflect"
	"testing"
)

func TestCDIValidation(t *testing.T) {
	// A per-device device node, so the spec has edits; two resources need
	// two container paths.
	const node = "\ndevices: [{hostPath: /dev/null, containerPath: \"/dev/a-{{ .ID }}\", perDevice: true}]"
	const node2 = "\ndevices: [{hostPath: /dev/null, containerPath: \"/dev/b-{{ .ID }}\", perDevice: true}]"
	tests := []struct {
		name  string
		items []string
		want  []wantErr
	}{
		{"generated spec", items("name: example.com/fpga\ncount: 2\ncdi: {spec: true}\nmounts: [{hostPath: \"/srv/{{ .ID }}\", containerPath: \"/dev/fpga/{{ .ID }}\", perDevice: true}]"), nil},
		{"explicit kind", items("name: example.com/2fpga\ncount: 2\ncdi: {spec: true, kind: example.com/fpga-v2}" + node), nil},
		{"a dot in the class", items("name: example.com/fpga.v2\ncount: 2\ncdi: {spec: true}" + node), nil},
		{"a spec with nothing in it", items("name: example.com/a\ncount: 2\ncdi: {spec: true}\nmounts: [{hostPath: /srv, containerPath: /srv}]"),
			errs("resources[0].cdi.spec", "the spec would give the devices nothing")},
		{"no spec, no kind: nothing generated", items("name: example.com/fpga.v2\ncount: 2\ncdi: {spec: false}"), nil},
		{"kind without spec", items("name: example.com/a\ncount: 1\ncdi: {kind: example.com/a}"),
			errs("resources[0].cdi.kind", "applies only with spec: true")},
		{"a resource name that is no CDI kind", items("name: example.com/2fpga\ncount: 1\ncdi: {spec: true}" + node),
			errs("resources[0].cdi.spec", `"example.com/2fpga" is not a CDI kind: invalid class. "2fpga", should start with letter; the kind defaults to the resource name, so set cdi.kind`)},
		{"a bad kind", items("name: example.com/a\ncount: 1\ncdi: {spec: true, kind: nokind}" + node),
			errs("resources[0].cdi.kind", `"nokind" is not a CDI kind; write vendor/class`)},
		{"an ID that is no CDI device name", items("name: example.com/a\nids: [ok, \"b+c\"]\ncdi: {spec: true}" + node),
			errs("resources[0].ids[1]", `device ID "b+c" is not a CDI device name`)},
		{"per-device .Index", items("name: example.com/a\ncount: 2\ncdi: {spec: true}\ndevices: [{hostPath: /dev/null, containerPath: \"/dev/a{{ .Index }}\", perDevice: true}]"),
			errs("resources[0].devices[0].containerPath", "uses .Index, which depends on the allocation; with cdi.spec the per-device edits are written once per device")},
		{"per-device .IDs in a function", items("name: example.com/a\ncount: 2\ncdi: {spec: true}\nmounts: [{hostPath: \"/srv/{{ join .IDs \\\"-\\\" }}\", containerPath: \"/m/{{ .ID }}\", perDevice: true}]"),
			errs("resources[0].mounts[0].hostPath", "uses .IDs")},
		{"per-device $.Count in a range", items("name: example.com/a\ncount: 2\ncdi: {spec: true}\nmounts: [{hostPath: \"/srv/{{ .ID }}\", containerPath: \"/m/{{ range .IDs }}{{ $.Count }}{{ end }}{{ .ID }}\", perDevice: true}]"),
			errs("resources[0].mounts[0].containerPath", "uses .IDs")},
		{"per-device .Index through a variable", items("name: example.com/a\ncount: 2\ncdi: {spec: true}\ndevices: [{hostPath: /dev/null, containerPath: \"/dev/a{{ $d := . }}{{ $d.Index }}\", perDevice: true}]"),
			errs("resources[0].devices[0].containerPath", "does not render for the CDI spec: at <$d.Index>: there is no field .Index here; with cdi.spec the per-device edits")},
		{"shared paths may use the allocation", items("name: example.com/a\ncount: 2\ncdi: {spec: true}\nmounts: [{hostPath: /srv, containerPath: \"/m{{ .Count }}\"}]" + node), nil},
		{"without cdi.spec per-device .Index is fine", items("name: example.com/a\ncount: 2\ndevices: [{hostPath: /dev/null, containerPath: \"/dev/a{{ .Index }}\", perDevice: true}]"), nil},
		{"two resources, one kind", items("name: example.com/a\ncount: 1\ncdi: {spec: true, kind: example.com/x}"+node, "name: example.com/b\ncount: 1\ncdi: {spec: true, kind: example.com/x}"+node2),
			errs("resources[1].cdi.kind", `CDI kind "example.com/x" is also the kind of resources[0] (example.com/a)`)},
		{"a default kind taken by another resource", items("name: example.com/a\ncount: 1\ncdi: {spec: true, kind: example.com/b}"+node, "name: example.com/b\ncount: 1\ncdi: {spec: true}"+node2),
			errs("resources[1].cdi.spec", `CDI kind "example.com/b" is also the kind of resources[0]`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(manifestOf(tc.items...)))
			checkErrors(t, err, tc.want)
		})
	}
}

// With a generated spec, Allocate hands out CDI names for the devices, not
// their per-device edits; shared edits, env and annotations stay.
func TestRenderWithGeneratedCDISpec(t *testing.T) {
	m := mustParse(t, manifestOf(`
name: example.com/fpga
ids: [f-1, f-0, f-2]
cdi: {spec: true, kind: vendor.io/fpga}
env: {IDS: '{{ join .IDs "," }}'}
mounts:
  - {hostPath: /srv/shared, containerPath: /shared, readOnly: true}
  - {hostPath: "/srv/{{ .ID }}", containerPath: "/dev/fpga/{{ .ID }}", perDevice: true}
devices:
  - {hostPath: /dev/null, containerPath: "/dev/fpga-{{ .ID }}", perDevice: true, permissions: r}
cdiDevices:
  - {name: "vendor.io/firmware=all"}`))
	r := m.Resources[0]
	if r.CDIKind() != "vendor.io/fpga" {
		t.Fatalf("CDIKind() = %q", r.CDIKind())
	}
	got, err := r.Render([]int{2, 0}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := &Allocation{
		Envs:       map[string]string{"IDS": "f-1,f-2"},
		Mounts:     []Mount{{HostPath: "/srv/shared", ContainerPath: "/shared", ReadOnly: true}},
		Devices:    []DeviceNode{},
		CDIDevices: []string{"vendor.io/firmware=all", "vendor.io/fpga=f-1", "vendor.io/fpga=f-2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Render:\n got %+v\nwant %+v", got, want)
	}
	mounts, nodes, err := r.DeviceEdits(1, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if wantM := []Mount{{HostPath: "/srv/f-0", ContainerPath: "/dev/fpga/f-0"}}; !reflect.DeepEqual(mounts, wantM) {
		t.Errorf("DeviceEdits mounts %+v, want %+v", mounts, wantM)
	}
	if wantN := []DeviceNode{{HostPath: "/dev/null", ContainerPath: "/dev/fpga-f-0", Permissions: "r"}}; !reflect.DeepEqual(nodes, wantN) {
		t.Errorf("DeviceEdits nodes %+v, want %+v", nodes, wantN)
	}
	if n := r.CDIName("f-0"); n != "vendor.io/fpga=f-0" {
		t.Errorf("CDIName = %q", n)
	}
}
