package chartdoc

import (
	"reflect"
	"strings"
	"testing"
)

const testSchema = `{
  "type": "object",
  "properties": {
    "global": {"type": "object"},
    "image": {"type": "object", "properties": {
      "tag": {"type": "string"},
      "pullPolicy": {"enum": ["Always", "IfNotPresent"]}
    }},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "env": {"type": "array", "items": {"type": "object"}},
    "manifest": {"anyOf": [{"type": "string"}, {"$ref": "#/definitions/manifest"}]},
    "level": {"$ref": "#/definitions/level"}
  },
  "definitions": {
    "manifest": {"type": "object"},
    "level": {"enum": ["debug", "info"]}
  }
}`

func TestChartValues(t *testing.T) {
	const values = `# The file's header: not any value's description.

image:
  # The tag; empty: the appVersion.
  tag: ""
  # When to pull
  # (two lines).
  pullPolicy: IfNotPresent
# The port | of /metrics.
port: 8080
# Extra env.
env: []
# The manifest.
manifest:
  kind: Manifest
  resources: [{name: example.com/a-rather-long-name, count: 4}, {name: example.com/another-long-name}]
# The log level.
level: info
`
	got, err := Values([]byte(values), []byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	want := []Value{
		{Path: "image.tag", Type: "string", Default: "`\"\"`", Description: "The tag; empty: the appVersion."},
		{Path: "image.pullPolicy", Type: "one of `Always`, `IfNotPresent`", Default: "`IfNotPresent`", Description: "When to pull (two lines)."},
		{Path: "port", Type: "integer (1 to 65535)", Default: "`8080`", Description: "The port | of /metrics."},
		{Path: "env", Type: "list of objects", Default: "`[]`", Description: "Extra env."},
		{Path: "manifest", Type: "string or object", Default: "see values.yaml", Description: "The manifest."},
		{Path: "level", Type: "one of `debug`, `info`", Default: "`info`", Description: "The log level."},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Values:\n got %+v\nwant %+v", got, want)
	}
	readme, err := Render(Chart{Name: "c", AppVersion: "v1"}, got)
	if err != nil {
		t.Fatal(err)
	}
	if row := "| `port` | integer (1 to 65535) | `8080` | The port \\| of /metrics. |\n"; !strings.Contains(string(readme), row) {
		t.Errorf("README has no row %q:\n%s", row, readme)
	}
}

func TestChartValuesRefusesGaps(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"no comment", "# The level.\nlevel: info\nport: 80\nimage: {}\nenv: []\nmanifest: x\n", "port: no comment"},
		{"no comment in a group", "# The level.\nlevel: info\n# P.\nport: 80\nimage:\n  tag: v1\n# E.\nenv: []\n# M.\nmanifest: x\n", "image.tag: no comment"},
		{"not in the schema", "# The level.\nlevel: info\n# P.\nport: 80\n# Typo.\nprot: 80\nimage: {}\n# E.\nenv: []\n# M.\nmanifest: x\n", "prot: not in values.schema.json"},
		{"not in values.yaml", "# The level.\nlevel: info\nimage: {}\n# E.\nenv: []\n# M.\nmanifest: x\n", "port: in values.schema.json but not in values.yaml"},
		{"a group's value not in values.yaml", "# The level.\nlevel: info\n# P.\nport: 80\nimage:\n  # T.\n  tag: v1\n# E.\nenv: []\n# M.\nmanifest: x\n", "image.pullPolicy: in values.schema.json but not in values.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Values([]byte(tc.values), []byte(testSchema))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Values: error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
