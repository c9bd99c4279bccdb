package manifest

import (
	"os"
	"path"
	"testing"

	"simple-device-plugin/discover"
)

// FuzzParse feeds arbitrary bytes to the loader and validator. Whatever
// the input: no panic, the same answer twice, and either a valid manifest
// that renders its sample allocation or a sorted, non-empty ErrorList.
func FuzzParse(f *testing.F) {
	const maxSeed = 16 << 10
	for file := range exampleFiles(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range validationCases {
		// The size-bound cases are megabytes of IDs: mutating them would
		// take the fuzzer's whole time for little new coverage.
		if seed := manifestOf(tc.items...); len(seed) <= maxSeed {
			f.Add([]byte(seed))
		}
	}
	for _, s := range []string{
		"", "null", "- a", "{", header, header + "  - name: [\n",
		header + "  - name: example.com/a\n    count: 1\n    count: 2\n",
		`{"apiVersion": "simple-device-plugin/v1alpha1", "kind": "Manifest", "resources": [{"name": "example.com/a", "count": 1}]}`,
		header + "  - &a {name: example.com/a, count: 1}\n  - *a\n",
		header + "  - name: example.com/a\n    count: 3\n    env: {N: y}\n    topology: {nodeOf: {a-0: zero}}\n",
		manifestOf(fullResource),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		_, again := Parse(data)
		if (err == nil) != (again == nil) || (err != nil && err.Error() != again.Error()) {
			t.Fatalf("Parse is not deterministic:\n%v\nthen:\n%v", err, again)
		}
		if err != nil {
			checkFuzzErrors(t, m, err)
			return
		}
		checkFuzzManifest(t, m)
	})
}

func checkFuzzErrors(t *testing.T, m *Manifest, err error) {
	if m != nil {
		t.Fatalf("Parse returned a manifest and an error: %v", err)
	}
	list := Errors(err)
	if len(list) == 0 {
		t.Fatalf("error without an ErrorList: %v", err)
	}
	for i, e := range list {
		if e.Message == "" {
			t.Fatalf("error %d at %q has no message", i, e.Path)
		}
		if i > 0 && (e.Line < list[i-1].Line || e.Line == list[i-1].Line && e.Column < list[i-1].Column) {
			t.Fatalf("errors not in the order of the text: %s after %s", e.Where(), list[i-1].Where())
		}
	}
}

// checkFuzzManifest checks what validation promises of a valid manifest.
func checkFuzzManifest(t *testing.T, m *Manifest) {
	if m == nil || len(m.Resources) == 0 || len(m.Resources) != len(m.Spec.Resources) || m.Hash == "" {
		t.Fatalf("valid manifest is incomplete: %+v", m)
	}
	for _, r := range m.Resources {
		if r.Discovers() {
			// Validation tried its templates on devices like these.
			r, _ = r.WithFound([]discover.Device{
				{Path: "/dev/sample-0", Nodes: []discover.Node{{Path: "/dev/sample-0", HostPath: "/dev/sample-0"}}},
				{Path: "/dev/sample-1", Nodes: []discover.Node{{Path: "/dev/sample-1", HostPath: "/dev/sample-1"}}},
			}, 1000)
		}
		if len(r.IDs) == 0 {
			t.Fatalf("%s: %d devices", r.Name, len(r.IDs))
		}
		for i, id := range r.IDs {
			if why := checkDeviceID(id); why != "" || r.Position(id) != i {
				t.Fatalf("%s: device %d %q: %s (position %d)", r.Name, i, id, why, r.Position(id))
			}
		}
		// Validation rendered every template on exactly this allocation.
		sample := r.IDs[:min(sampleIDs, len(r.IDs))]
		a, err := renderIDs(r, sample, "sample-node")
		if err != nil {
			t.Fatalf("%s: Render of the sample allocation: %v", r.Name, err)
		}
		paths := map[string]bool{}
		check := func(p string) {
			if p == "" || p[0] != '/' || path.Clean(p) != p || paths[p] {
				t.Fatalf("%s: container path %q is relative, unclean or repeated", r.Name, p)
			}
			paths[p] = true
		}
		absolute := func(p string) {
			if p == "" || p[0] != '/' || path.Clean(p) != p {
				t.Fatalf("%s: host path %q is relative or unclean", r.Name, p)
			}
		}
		for _, mt := range a.Mounts {
			check(mt.ContainerPath)
			absolute(mt.HostPath)
		}
		for _, d := range a.Devices {
			check(d.ContainerPath)
			absolute(d.HostPath)
		}
		for _, name := range a.CDIDevices {
			if why := checkCDIName(name); why != "" {
				t.Fatalf("%s: %s", r.Name, why)
			}
		}
		if _, err := r.Preferred(r.IDs, nil, len(sample)); err != nil {
			t.Fatalf("%s: Preferred: %v", r.Name, err)
		}
	}
}
