package manifest

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"text/template"
)

func TestFuncs(t *testing.T) {
	data := DeviceData{
		ContainerData: ContainerData{Resource: "example.com/fpga", IDs: []string{"fpga-0", "fpga-2"}, Count: 2, Node: ""},
		ID:            "fpga-2",
		Index:         1,
	}
	tests := []struct {
		name string
		tmpl string
		want string
	}{
		{"join", `{{ join .IDs "," }}`, "fpga-0,fpga-2"},
		{"join empty separator", `{{ join .IDs "" }}`, "fpga-0fpga-2"},
		{"upper", `{{ upper .ID }}`, "FPGA-2"},
		{"lower", `{{ lower "FPGA" }}`, "fpga"},
		{"replace", `{{ replace "-" "_" .ID }}`, "fpga_2"},
		{"replace in a pipeline", `{{ .ID | replace "-" "_" | upper }}`, "FPGA_2"},
		{"replace every occurrence", `{{ replace "a" "o" "banana" }}`, "bonono"},
		{"trimPrefix", `{{ trimPrefix "example.com/" .Resource }}`, "fpga"},
		{"trimPrefix absent", `{{ trimPrefix "x" .ID }}`, "fpga-2"},
		{"trimSuffix", `{{ .ID | trimSuffix "-2" }}`, "fpga"},
		{"printf", `{{ printf "%s#%03d" .ID .Index }}`, "fpga-2#001"},
		{"default of an empty string", `{{ .Node | default "no-node" }}`, "no-node"},
		{"default of a value", `{{ .ID | default "none" }}`, "fpga-2"},
		{"default of nil", `{{ default "none" nil }}`, "none"},
		{"default of a number", `{{ .Index | default "none" }}`, "1"},
		{"len builtin", `{{ len .IDs }}`, "2"},
		{"index builtin", `{{ index .IDs 1 }}`, "fpga-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := template.New(tc.name).Funcs(Funcs).Parse(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := tm.Execute(&b, data); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("%s = %q, want %q", tc.tmpl, b.String(), tc.want)
			}
		})
	}
}

// TestFuncsAreTheDocumentedSet guards the function set: anything added must
// be documented in docs/manifest.md and must not read files, env or run commands.
func TestFuncsAreTheDocumentedSet(t *testing.T) {
	want := []string{"default", "join", "lower", "replace", "trimPrefix", "trimSuffix", "upper"}
	if got := slices.Sorted(maps.Keys(Funcs)); !slices.Equal(got, want) {
		t.Errorf("Funcs = %v, want %v (printf is text/template's own)", got, want)
	}
}

func TestCompileTemplate(t *testing.T) {
	tests := []struct {
		name        string
		src         string
		wantLiteral bool
		wantErr     string
	}{
		{"trimmed comment", "a {{- /* note */ -}} b", true, ""},
		{"plain text is literal", "/dev/null", true, ""},
		{"empty is literal", "", true, ""},
		{"comment only is literal", "{{/* x */}}", true, ""},
		{"action", "/dev/{{ .ID }}", false, ""},
		{"parse error names no template", "{{ .ID", false, "template does not parse: unclosed action"},
		{"unknown function", "{{ env `HOME` }}", false, `function "env" not defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileTemplate("field", tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("compileTemplate(%q) error %v, want %q", tc.src, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.literal != tc.wantLiteral {
				t.Errorf("literal = %v, want %v", c.literal, tc.wantLiteral)
			}
		})
	}
}

// TestLiteralTemplatesRenderTheirText checks templates without actions
// render what text/template would, not their source: a comment or trim
// marker leaves no action but changes the text.
func TestLiteralTemplatesRenderTheirText(t *testing.T) {
	r := mustResource(t, `
name: example.com/a
count: 2
idTemplate: "dev{{/* zero-based */}}-{{ .Index }}"
env:
  PLAIN: "just text"
  COMMENT: "a {{/* note */}} b"
  TRIMMED: "a {{- /* note */ -}} b"
mounts:
  - hostPath: "/host {{- /* the shared dir */}}"
    containerPath: /c`)
	a, err := renderIDs(r, []string{"dev-1"}, "node")
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{"PLAIN": "just text", "COMMENT": "a  b", "TRIMMED": "ab"}
	if !maps.Equal(a.Envs, wantEnv) {
		t.Errorf("Envs = %q, want %q", a.Envs, wantEnv)
	}
	if a.Mounts[0].HostPath != "/host" {
		t.Errorf("HostPath = %q, want /host", a.Mounts[0].HostPath)
	}
	if !slices.Equal(r.IDs, []string{"dev-0", "dev-1"}) {
		t.Errorf("IDs = %v, want [dev-0 dev-1]", r.IDs)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"comment", "a {{/* note */}} b", "a  b"},
		{"trimmed", "a {{- /* note */ -}} b", "ab"},
		{"plain", "plain", "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := compileTemplate("f", tc.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.renderString(DeviceData{}, forContainer)
			if err != nil || got != tc.want {
				t.Errorf("renderString = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
