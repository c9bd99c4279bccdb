package manifest

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"text/template"
)

// reference renders src with text/template alone, as it was before the
// fast paths.
func reference(src string, data any) (string, error) {
	t, err := template.New("ref").Funcs(Funcs).Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = t.Execute(&b, data)
	return b.String(), err
}

// templateData is the data a template can be given, as values and as the
// pointers Render passes.
func templateData(id, node string, index int, ids []string) []any {
	cd := ContainerData{Resource: "example.com/fpga", IDs: ids, Count: len(ids), Node: node}
	dd := DeviceData{ContainerData: cd, ID: id, Index: index}
	idd := IDData{Resource: cd.Resource, Index: index}
	return []any{cd, &cd, dd, &dd, idd, &idd}
}

func TestSimpleTemplates(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		wantSimple bool
	}{
		{"ID", "/dev/fpga/{{ .ID }}", true},
		{"Index", "/dev/fpga{{ .Index }}", true},
		{"Index trimmed", "/dev/fpga {{- .Index -}} /x", true},
		{"every field", "{{.Resource}}:{{.Node}}:{{.Count}}:{{.ID}}:{{.Index}}", true},
		{"join", `{{ join .IDs "," }}`, true},
		{"join with text", `ids=[{{ join .IDs ", " }}]`, true},
		{"join raw string separator", "{{ join .IDs `;` }}", true},
		{"join empty separator", `{{ join .IDs "" }}`, true},
		{"comment and field", "{{/* c */}}{{ .ID }}", true},
		{"pipeline", "{{ .ID | upper }}", false},
		{"printf", `{{ printf "%03d" .Index }}`, false},
		{"IDs printed raw", "{{ .IDs }}", false},
		{"len", "{{ len .IDs }}", false},
		{"join of a field other than IDs", `{{ join .Resource "," }}`, false},
		{"variable", "{{ $x := .ID }}{{ $x }}", false},
		{"if", "{{ if .ID }}y{{ end }}", false},
		{"dot", "{{ . }}", false},
		{"printf of dot", `{{ printf "%v" . }}`, false},
		{"nested field", "{{ .ContainerData.Node }}", false},
		{"unknown field", "{{ .Nope }}", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileTemplate("f", tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if simple := c.pieces != nil; simple != tc.wantSimple {
				t.Errorf("simple = %v, want %v", simple, tc.wantSimple)
			}
			for _, ids := range [][]string{nil, {"fpga-0"}, {"fpga-0", "fpga-3"}} {
				for _, data := range templateData("fpga-3", "node-a", 7, ids) {
					checkSameAsReference(t, c, tc.src, data)
				}
				checkAllocationSameAsReference(t, c, tc.src, "node-a", ids)
			}
		})
	}
}

// checkSameAsReference asserts c renders data exactly as text/template
// does from source (the pointers Render passes count as their values).
func checkSameAsReference(t *testing.T, c *tmpl, src string, data any) {
	t.Helper()
	want, wantErr := reference(src, dereference(data))
	var b bytes.Buffer
	err := c.render(&b, data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q on %T: error %v, text/template says %v", src, data, err, wantErr)
	}
	if err == nil && b.String() != want {
		t.Fatalf("%q on %T: %q, text/template renders %q", src, data, b.String(), want)
	}
}

// checkAllocationSameAsReference asserts that Render's renderer writes c
// for an allocation of ids, per container and per device, exactly as
// text/template does.
func checkAllocationSameAsReference(t *testing.T, c *tmpl, src, node string, ids []string) {
	t.Helper()
	r := &Resource{Name: "example.com/fpga", IDs: ids}
	positions := make([]int, len(ids))
	for i := range positions {
		positions[i] = i
	}
	sorted := slices.Clone(ids)
	if sorted == nil {
		sorted = []string{}
	}
	cd := ContainerData{Resource: r.Name, IDs: sorted, Count: len(ids), Node: node}
	for device := -1; device < len(ids); device++ {
		var data any = cd
		if device >= 0 {
			data = DeviceData{ContainerData: cd, ID: ids[device], Index: device}
		}
		want, wantErr := reference(src, data)
		out := &Rendered{Text: []byte("earlier items|")} // spans start where the text is
		ar := allocationRenderer{r: r, out: out, text: out.Text, positions: positions, node: node}
		span, err := ar.render(c, device)
		out.Text = ar.text
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q for device %d of %q: error %v, text/template says %v", src, device, ids, err, wantErr)
		}
		if got := string(out.Bytes(span)); err == nil && got != want {
			t.Fatalf("%q for device %d of %q: %q, text/template renders %q", src, device, ids, got, want)
		}
	}
}

// FuzzSimpleTemplate checks the fast paths against text/template on any
// template and data.
func FuzzSimpleTemplate(f *testing.F) {
	for _, s := range []string{
		"/dev/{{ .ID }}", "{{.Index}}", `{{ join .IDs "," }}`, "{{ .Count }}-{{ .Node }}-{{ .Resource }}",
		"a {{- .ID -}} b", "{{/* x */}}", "plain", "{{ .IDs }}", "{{ . }}", `{{ join .IDs "\n" }}`,
	} {
		f.Add(s, "fpga-1", "node", 2, "a,b")
	}
	f.Fuzz(func(t *testing.T, src, id, node string, index int, ids string) {
		c, err := compileTemplate("f", src)
		if err != nil {
			return
		}
		for _, data := range templateData(id, node, index, strings.Split(ids, ",")) {
			checkSameAsReference(t, c, src, data)
		}
		checkAllocationSameAsReference(t, c, src, node, strings.Split(ids, ","))
	})
}
