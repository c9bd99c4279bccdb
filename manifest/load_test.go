package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStrict(t *testing.T) {
	one := "  - name: example.com/a\n    count: 1\n"
	tests := []struct {
		name string
		yaml string
		want []wantErr
	}{
		{"valid", header + one, nil},
		{"valid JSON", `{"apiVersion": "simple-device-plugin/v1alpha1", "kind": "Manifest", "resources": [{"name": "example.com/a", "count": 1}]}`, nil},
		{"empty file", "", []wantErr{{"", "the manifest is empty"}}},
		{"only whitespace", "  \n\t\n", []wantErr{{"", "the manifest is empty"}}},
		{"only comments", "# nothing yet\n", []wantErr{{"", "the manifest is empty"}}},
		{"null", "null\n", []wantErr{{"", "the manifest is empty"}}},
		{"a list", "- a\n- b\n", []wantErr{{"", "must be a mapping with apiVersion, kind and resources, got a list"}}},
		{"a string", "hello\n", []wantErr{{"", `got the string "hello"`}}},
		{"broken YAML names the line", header + one + "  - name: [\n", []wantErr{{"", "line 6: the YAML does not parse: did not find expected node content"}}},
		{"tab indentation", header + "  - name: example.com/a\n\tcount: 1\n", []wantErr{{"", "line 5: the YAML does not parse: found a tab character"}}},
		{"duplicate key names the line", header + one + "    count: 2\n", []wantErr{
			{"resources[0].count", `resources[0].count (line 6, column 5): "count" appears twice in this mapping (first at line 5); keep one`},
		}},
		{"every duplicate key", header + one + "    count: 2\n    name: example.com/b\n", []wantErr{
			{"resources[0].count", `(line 6, column 5): "count" appears twice`},
			{"resources[0].name", `(line 7, column 5): "name" appears twice in this mapping (first at line 4)`},
		}},
		{"duplicate key in JSON", `{"apiVersion": "simple-device-plugin/v1alpha1", "apiVersion": "x"}`, []wantErr{
			{"apiVersion", `apiVersion (line 1, column 49): "apiVersion" appears twice`},
		}},
		{"unknown top-level field with suggestion", "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresource:\n" + one, []wantErr{
			{"resource", `unknown field (did you mean "resources"?); fields here are apiVersion, kind, resources`},
			{"resources", "is required: list at least one resource"},
		}},
		{"unknown resource field with suggestion", header + "  - name: example.com/a\n    cont: 1\n", []wantErr{
			{"resources[0].cont", `unknown field (did you mean "count"?)`},
			{"resources[0].count", "is required: set count (1 or more), ids (an explicit list) or discover"},
		}},
		{"unknown field without suggestion", header + one + "    colour: red\n", []wantErr{
			{"resources[0].colour", "unknown field; fields here are allocationPolicy, annotations,"},
		}},
		{"unknown nested fields, case matters", header + one + "    mounts: [{hostpath: /a, containerPath: /b, readonly: true}]\n", []wantErr{
			{"resources[0].mounts[0].hostPath", "is required"},
			{"resources[0].mounts[0].hostpath", `unknown field (did you mean "hostPath"?); fields here are containerPath, hostPath, perDevice, readOnly`},
			{"resources[0].mounts[0].readonly", `unknown field (did you mean "readOnly"?)`},
		}},
		{"count as a string", header + "  - name: example.com/a\n    count: \"3\"\n", []wantErr{
			{"resources[0].count", `expected a whole number, got the string "3"`},
		}},
		{"count as a fraction", header + "  - name: example.com/a\n    count: 2.5\n", []wantErr{
			{"resources[0].count", "expected a whole number, got the number 2.5"},
		}},
		{"name as a number: no follow-on required error", header + "  - name: 5\n    count: 1\n", []wantErr{
			{"resources[0].name", "expected a string, got the number 5; quote it"},
		}},
		{"env value as a number", header + one + "    env: {NUM: 1}\n", []wantErr{
			{"resources[0].env[NUM]", "expected a string, got the number 1; quote it"},
		}},
		{"YAML 1.1 boolean as an env value", header + one + "    env: {ENABLED: yes}\n", []wantErr{
			{"resources[0].env[ENABLED]", "expected a string, got true (YAML reads unquoted y, n, yes, no, on, off as booleans); quote it"},
		}},
		{"YAML 1.1 boolean as an env name", header + one + "    env: {N: \"4\"}\n", []wantErr{
			{"resources[0].env[false]", `"false" is how YAML reads an unquoted y, n, yes, no, on, off`},
		}},
		{"YAML 1.1 boolean as an annotation key", header + one + "    annotations: {on: x}\n", []wantErr{
			{"resources[0].annotations[true]", `quote the key you meant`},
		}},
		{"YAML 1.1 boolean as a device ID", header + "  - name: example.com/a\n    ids: [x, y, z]\n", []wantErr{
			{"resources[0].ids[1]", "expected a string, got true (YAML reads unquoted y, n, yes, no, on, off as booleans); quote it"},
		}},
		{"quoted YAML 1.1 boolean is a string", header + "  - name: example.com/a\n    ids: [x, \"y\", z]\n    env: {\"N\": \"4\"}\n", nil},
		{"mounts as a mapping", header + one + "    mounts: {hostPath: /a}\n", []wantErr{
			{"resources[0].mounts", "expected a list, got a mapping"},
		}},
		{"resource as a string", header + "  - example.com/a\n", []wantErr{
			{"resources[0]", `expected a mapping (key: value), got the string "example.com/a"`},
		}},
		{"readOnly as a string", header + one + "    mounts: [{hostPath: /a, containerPath: /b, readOnly: \"yes\"}]\n", []wantErr{
			{"resources[0].mounts[0].readOnly", `expected true or false, got the string "yes"`},
		}},
		{"interval as a number", header + one + "    healthCheck: {path: /x, interval: 5}\n", []wantErr{
			{"resources[0].healthCheck.interval", `expected a duration string such as "5s", got the number 5`},
		}},
		{"interval not a duration", header + one + "    healthCheck: {path: /x, interval: 5 seconds}\n", []wantErr{
			{"resources[0].healthCheck.interval", `"5 seconds" is not a duration; write it like "5s"`},
		}},
		{"nodeOf value as a string", header + one + "    topology: {nodeOf: {a-0: zero}}\n", []wantErr{
			{"resources[0].topology.nodeOf[a-0]", `expected a whole number, got the string "zero"`},
		}},
		{"document start marker", "---\n" + header + one, nil},
		{"document start and end markers", "# comment\n--- # the manifest\n" + header + one + "...\n# trailing comment\n", nil},
		{"a second document", header + one + "---\n" + header + one, []wantErr{
			{"", "line 6: a second YAML document starts here; a manifest is one document, so merge the resources lists"},
		}},
		{"a second document after an end marker", header + one + "...\nfoo: bar\n", []wantErr{{"", "line 7: a second YAML document starts here"}}},
		{"a second document on the marker line", header + one + "--- {kind: Manifest}\n", []wantErr{{"", "line 6: a second YAML document"}}},
		{"an ended empty document before the manifest", "---\n...\n" + header + one, nil},
		{"an end marker alone before the manifest", "...\n" + header + one, nil},
		{"empty documents around the manifest", "---\n# nothing\n---\n" + header + one + "---\n", nil},
		{"lines keep their numbers after empty documents", "---\n---\n" + header + one + "    count: 2\n", []wantErr{{"resources[0].count", "resources[0].count (line 8, column 5): \"count\" appears twice in this mapping (first at line 7)"}}},
		{"an empty document then one with content on its marker line", "---\n--- {apiVersion: simple-device-plugin/v1alpha1, kind: Manifest, resources: [{name: example.com/a, count: 1}]}\n", nil},
		{"dashes inside a value are not a marker", header + one + "    env: {SEP: '---'}\n", nil},
		{"missing apiVersion", "kind: Manifest\nresources:\n" + one, []wantErr{
			{"apiVersion", "is required; write apiVersion: simple-device-plugin/v1alpha1"},
		}},
		{"unknown apiVersion lists the known ones", "apiVersion: simple-device-plugin/v1\nkind: Manifest\nresources:\n" + one, []wantErr{
			{"apiVersion", `"simple-device-plugin/v1" is not a version this build knows; known: simple-device-plugin/v1alpha1`},
		}},
		{"missing kind", "apiVersion: simple-device-plugin/v1alpha1\nresources:\n" + one, []wantErr{
			{"kind", "is required; write kind: Manifest"},
		}},
		{"wrong kind", "apiVersion: simple-device-plugin/v1alpha1\nkind: ConfigMap\nresources:\n" + one, []wantErr{
			{"kind", `"ConfigMap" is not known; write kind: Manifest`},
		}},
		{"no resources", "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\n", []wantErr{
			{"resources", "is required: list at least one resource"},
		}},
		{"empty resources", "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources: []\n", []wantErr{
			{"resources", "resources (line 3, column 1): is empty: list at least one resource"},
		}},
		{"resources not a list", "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources: 3\n", []wantErr{
			{"resources", "expected a list, got the number 3"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			checkErrors(t, err, tc.want)
		})
	}
}

func TestDefaults(t *testing.T) {
	m := mustParse(t, manifestOf(`
name: example.com/fpga
count: 3
mounts: [{hostPath: /a, containerPath: /b}]
devices: [{hostPath: /dev/null, containerPath: "/dev/f{{ .Index }}", perDevice: true}]
cdiDevices: [{name: example.com/fpga=all}]
healthCheck: {path: "/run/{{ .ID }}"}`, `
name: example.com/seat
ids: [x]`))
	fpga := m.Resources[0]
	if want := []string{"fpga-0", "fpga-1", "fpga-2"}; strings.Join(fpga.IDs, ",") != strings.Join(want, ",") {
		t.Errorf("default IDs %v, want %v", fpga.IDs, want)
	}
	s := fpga.Spec
	if s.Mounts[0].ReadOnly || s.Mounts[0].PerDevice {
		t.Errorf("mount readOnly/perDevice default to %v/%v, want false/false", s.Mounts[0].ReadOnly, s.Mounts[0].PerDevice)
	}
	if s.CDIDevices[0].PerDevice {
		t.Errorf("cdiDevices perDevice defaults to true, want false")
	}
	if s.Devices[0].Permissions != "rw" {
		t.Errorf("permissions default %q, want rw", s.Devices[0].Permissions)
	}
	if s.AllocationPolicy != PolicyPacked {
		t.Errorf("allocationPolicy default %q, want packed", s.AllocationPolicy)
	}
	if paths, interval := fpga.HealthCheck(); interval != 5*time.Second || len(paths) != 3 || paths[2] != "/run/fpga-2" {
		t.Errorf("healthCheck = %v every %v, want 3 paths every 5s", paths, interval)
	}
	if paths, interval := m.Resources[1].HealthCheck(); paths != nil || interval != 0 {
		t.Errorf("no healthCheck gives %v, %v; want nil, 0", paths, interval)
	}
	if got := m.Resources[1].IDs; len(got) != 1 || got[0] != "x" {
		t.Errorf("explicit IDs %v, want [x]", got)
	}
}

func TestErrorsSortedByPath(t *testing.T) {
	items := make([]string, 11)
	for i := range items {
		items[i] = "name: example.com/r" + strings.Repeat("x", i) + "\ncount: 1"
	}
	items[10] = "name: example.com/ten\ncount: 0"
	items[2] = "name: example.com/two\ncount: 0"
	_, err := Parse([]byte(manifestOf(items...)))
	checkErrors(t, err, []wantErr{
		{"resources[2].count", "must be at least 1"},
		{"resources[10].count", "must be at least 1"},
	})
}

func TestNaturalLess(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"index as a number", "resources[2]", "resources[10]", true},
		{"index as a number, reversed", "resources[10]", "resources[2]", false},
		{"same", "resources[1].name", "resources[1].name", false},
		{"prefix first", "resources[1]", "resources[1].name", true},
		{"field order", "resources[1].count", "resources[1].name", true},
		{"top level before resources", "apiVersion", "resources", true},
		{"empty path first", "", "apiVersion", true},
		{"nested index", "resources[1].mounts[9].hostPath", "resources[1].mounts[10].containerPath", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := naturalLess(tc.a, tc.b); got != tc.want {
				t.Errorf("naturalLess(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// TestEveryProblemAtOnce checks one manifest with many kinds of mistakes:
// schema, field rules, per-resource rules and cross-resource clashes all
// reported together.
func TestEveryProblemAtOnce(t *testing.T) {
	yaml := "apiVersion: simple-device-plugin/v2\nkind: Manifest\nextra: 1\nresources:\n" + strings.TrimPrefix(manifestOf(`
name: example.com/a
count: 0
coutn: 3`, `
name: kubernetes.io/b
ids: [x, x]
env: {BAD-NAME: "{{ .Nope }}"}
devices: [{hostPath: dev/null, containerPath: /dev/b, permissions: rwx}]`, `
name: example.com/c
count: 2
env: {SHARED: x}
allocationPolicy: best
nodes: ["["]`, `
name: example.com/d
count: 2
cdiDevices: [{name: not-cdi}]
topology: {numaNodes: 3}`, `
name: example.com/e
count: 1
env: {SHARED: z}`), header)
	_, err := Parse([]byte(yaml))
	checkErrors(t, err, []wantErr{
		{"apiVersion", "not a version this build knows"},
		{"extra", "unknown field"},
		{"resources[0].count", "must be at least 1"},
		{"resources[0].coutn", `did you mean "count"`},
		{"resources[1].devices[0].hostPath", "not an absolute path"},
		{"resources[1].devices[0].permissions", `"rwx" has 'x'; allowed are r, w, m`},
		{"resources[1].env[BAD-NAME]", "not an environment variable name"},
		{"resources[1].env[BAD-NAME]", "there is no field .Nope here"},
		{"resources[1].ids[1]", `device ID "x" appears twice`},
		{"resources[1].name", "kubernetes.io domain"},
		{"resources[2].allocationPolicy", `"best" is not allowed; use one of packed, spread, first`},
		{"resources[2].nodes[0]", "not a valid glob"},
		{"resources[3].cdiDevices[0].name", "not a fully qualified CDI name"},
		{"resources[3].topology.numaNodes", "3 NUMA nodes for 2 devices"},
		{"resources[4].env[SHARED]", `env var "SHARED" is also set by resources[2] (example.com/c)`},
	})
}

func TestHash(t *testing.T) {
	a := mustParse(t, manifestOf("name: example.com/a\ncount: 2\nenv: {A: x, B: w}"))
	reordered := mustParse(t, manifestOf("count: 2\nenv: {B: w, A: x}\nname: example.com/a\nallocationPolicy: packed"))
	changed := mustParse(t, manifestOf("name: example.com/a\ncount: 3\nenv: {A: x, B: w}"))
	if a.Hash == "" || a.Hash != reordered.Hash {
		t.Errorf("equivalent manifests hash to %q and %q; want equal and non-empty", a.Hash, reordered.Hash)
	}
	if a.Hash == changed.Hash {
		t.Errorf("different manifests share hash %q", a.Hash)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(manifestOf("name: example.com/a\ncount: 2")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(manifestOf("name: example.com/a\ncount: 0")), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		wantErr  string
		wantList bool
	}{
		{"valid", good, "", false},
		{"invalid wraps the ErrorList and names the file", bad, "bad.yaml is invalid:\nresources[0].count (line 5, column 12): must be at least 1", true},
		{"missing file", filepath.Join(dir, "nope.yaml"), "read manifest: open ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(tc.path)
			if tc.wantErr == "" {
				if err != nil || m == nil || m.TotalDevices() != 2 {
					t.Fatalf("Load = %v, %v; want a manifest with 2 devices", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load error %v, want one containing %q", err, tc.wantErr)
			}
			if got := Errors(err) != nil; got != tc.wantList {
				t.Errorf("Errors(err) != nil is %v, want %v", got, tc.wantList)
			}
			if !tc.wantList && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a missing file's error does not wrap os.ErrNotExist: %v", err)
			}
		})
	}
}

func TestManifestLookups(t *testing.T) {
	m := mustParse(t, manifestOf(
		"name: example.com/a\ncount: 2\nnodes: [\"pool-a-*\"]",
		"name: example.com/b\nids: [p, q, r]",
	))
	if m.TotalDevices() != 5 {
		t.Errorf("TotalDevices = %d, want 5", m.TotalDevices())
	}
	if r := m.Resource("example.com/b"); r == nil || r.Name != "example.com/b" {
		t.Errorf("Resource(example.com/b) = %v", r)
	}
	if r := m.Resource("example.com/none"); r != nil {
		t.Errorf("Resource(unknown) = %v, want nil", r)
	}
	tests := []struct {
		name        string
		node        string
		wantServed  []string
		wantSkipped []string
	}{
		{"matching node", "pool-a-1", []string{"example.com/a", "example.com/b"}, nil},
		{"other node", "pool-b-1", []string{"example.com/b"}, []string{"example.com/a"}},
		{"no node name", "", []string{"example.com/b"}, []string{"example.com/a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			served, skipped := m.ForNode(tc.node)
			if got := names(served); strings.Join(got, ",") != strings.Join(tc.wantServed, ",") {
				t.Errorf("served %v, want %v", got, tc.wantServed)
			}
			if got := names(skipped); strings.Join(got, ",") != strings.Join(tc.wantSkipped, ",") {
				t.Errorf("skipped %v, want %v", got, tc.wantSkipped)
			}
		})
	}
}

func names(rs []*Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// TestErrorPositions: every error carries the line and column of its path
// (or of the nearest enclosing one the text has), and the list follows the
// text.
func TestErrorPositions(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []FieldError // Path, Line, Column; messages are other tests' business
	}{
		{"a value points at the value", header + "  - name: example.com/a\n    count: 0\n",
			[]FieldError{{Path: "resources[0].count", Line: 5, Column: 12}}},
		{"a missing field points at its mapping", header + "  - name: example.com/a\n    env: {A: x}\n",
			[]FieldError{{Path: "resources[0].count", Line: 4, Column: 5}}},
		{"map entries, nested fields and list items", header + "  - name: example.com/a\n    count: 1\n    env:\n      bad-name: x\n    healthCheck: {path: rel}\n    mounts:\n      - {hostPath: /a, containerPath: b}\n",
			[]FieldError{
				{Path: "resources[0].env[bad-name]", Line: 7, Column: 17},
				{Path: "resources[0].healthCheck.path", Line: 8, Column: 25},
				{Path: "resources[0].mounts[0].containerPath", Line: 10, Column: 39},
			}},
		{"in the order of the text, not of the paths", header + "  - name: example.com/a\n    colour: red\n    count: 0\n  - name: kubernetes.io/b\n    count: 1\n",
			[]FieldError{
				{Path: "resources[0].colour", Line: 5, Column: 5}, // an unknown field: at its key
				{Path: "resources[0].count", Line: 6, Column: 12},
				{Path: "resources[1].name", Line: 7, Column: 11},
			}},
		{"a parser error names the line at fault", header + "  - name: example.com/a\n    count: 2\n   env: {A: b}\n",
			[]FieldError{{Line: 6}}},
		{"an error at the end of the text names its last line", header + "  - name: example.com/a\n    env: {A: b\n",
			[]FieldError{{Line: 5}}},
		{"a scanner error names the line at fault", header + "  - name: example.com/a\n\tcount: 1\n",
			[]FieldError{{Line: 5}}},
		{"after empty documents, the line in the file", "---\n# empty\n---\n" + header + "  - name: example.com/a\n    count: 0\n",
			[]FieldError{{Path: "resources[0].count", Line: 8, Column: 12}}},
		{"a duplicate env var, at its second key", header + "  - name: example.com/a\n    count: 1\n    env:\n      A: x\n      A: y\n",
			[]FieldError{{Path: "resources[0].env[A]", Line: 8, Column: 7}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			got := Errors(err)
			if len(got) != len(tc.want) {
				t.Fatalf("want %d errors, got %d:\n%v", len(tc.want), len(got), err)
			}
			for i, w := range tc.want {
				if got[i].Path != w.Path || got[i].Line != w.Line || got[i].Column != w.Column {
					t.Errorf("error %d at %s, want %s: %s", i, got[i].Where(), w.Where(), got[i].Message)
				}
			}
		})
	}
}

// Finding positions follows each path once: a deeply nested invalid
// manifest (a reload of a few hundred bytes) costs no more than a flat one.
func TestErrorPositionsOfDeepNesting(t *testing.T) {
	deep := "x: " + strings.Repeat("{a: ", 60) + "1" + strings.Repeat("}", 60) + "\n"
	_, err := Parse([]byte(header + "  - name: example.com/a\n    count: 1\n" + deep))
	got := Errors(err)
	if len(got) != 1 || got[0].Path != "x" || got[0].Line != 6 {
		t.Fatalf("errors: %v", err)
	}
}
