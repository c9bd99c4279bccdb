package manifest

import (
	"bytes"
	"testing"
)

// The fast path writes exactly what text/template writes, for every kind
// of data, and declines (leaving text/template to explain) where
// text/template fails.
func TestFieldTemplatesMatchTextTemplate(t *testing.T) {
	container := ContainerData{Resource: "example.com/fpga", IDs: []string{"fpga-1", "fpga-3"}, Count: 2, Node: "node-1"}
	data := []any{
		DeviceData{ContainerData: container, ID: "fpga-3", Index: 1},
		DeviceData{ContainerData: ContainerData{Resource: "example.com/é", IDs: []string{""}}, ID: "", Index: 0},
		container,
		IDData{Resource: "example.com/fpga", Index: 12},
	}
	tests := []struct {
		src  string
		fast bool // rendered by fields.go
	}{
		{"/dev/fpga{{ .Index }}", true},
		{"{{ .Resource }}={{ .ID }}", true},
		{"/srv/{{ .Node }}/{{ .Count }}/{{.ID}}/x", true},
		{"{{- .ID -}} ", true},
		{"plain text", true},
		{"", false}, // nothing to gain
		{`{{ join .IDs "," }}`, true},
		{`ids={{ join .IDs ", " }};{{ .Count }}`, true},
		{`{{ join .IDs .Node }}`, false},
		{`{{ join .Resource "," }}`, false},
		{"{{ .ID | upper }}", false},
		{"{{ .IDs }}", false},
		{"{{ $x := .ID }}{{ $x }}", false},
		{"{{ .ID.Foo }}", false},
		{"{{ .Missing }}", false},
		{"{{ if .ID }}x{{ end }}", false},
		{`{{ printf "%v %T" . . }}`, false},
	}
	for _, tc := range tests {
		c, err := compileTemplate("t", tc.src)
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		if (c.fields != nil) != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.src, c.fields != nil, tc.fast)
		}
		for _, in := range data {
			var want bytes.Buffer
			wantErr := c.t.Execute(&want, in)
			// The one render path sees the same data.
			d, s := asDevice(t, in)
			var got bytes.Buffer
			err := c.renderFor(&got, &d, s)
			switch {
			case (err != nil) != (wantErr != nil):
				t.Errorf("%q on %T: error %v, text/template's %v", tc.src, in, err, wantErr)
			case got.String() != want.String():
				t.Errorf("%q on %T: %q, text/template writes %q", tc.src, in, got.String(), want.String())
			}
			if c.fields != nil {
				var direct bytes.Buffer
				if ok := writeFields(&direct, c.fields, &d, s); ok != (wantErr == nil) || (ok && direct.String() != want.String()) {
					t.Errorf("%q on %T: fields.go wrote %q (ok %v), text/template %q (error %v)", tc.src, in, direct.String(), ok, want.String(), wantErr)
				}
			}
		}
	}
}

// asDevice is data as Render holds it, and the scope it renders in.
func asDevice(t *testing.T, data any) (DeviceData, scope) {
	switch v := data.(type) {
	case DeviceData:
		return v, forDevice
	case ContainerData:
		return DeviceData{ContainerData: v}, forContainer
	case IDData:
		return DeviceData{ContainerData: ContainerData{Resource: v.Resource}, Index: v.Index}, forID
	}
	t.Fatalf("no scope for %T", data)
	return DeviceData{}, 0
}

// writeFields writes parts for d, seen as s says, as the renderers do with
// the scopes worked out at load. It writes nothing and returns false when
// a part names a field s lacks: text/template then says what is wrong.
func writeFields(w *bytes.Buffer, parts []fieldPart, d *DeviceData, s scope) bool {
	if !fastScopes(parts)[s] {
		return false
	}
	writeParts(w, parts, d)
	return true
}
