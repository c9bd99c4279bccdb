package manifest

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const examplesDir = "../examples"

// exampleFiles returns every YAML file in examples/ with its kind.
func exampleFiles(t testing.TB) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(examplesDir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no examples in %s", examplesDir)
	}
	kinds := map[string]string{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(data, &head); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		kinds[path] = head.Kind
	}
	return kinds
}

// TestExamples loads every manifest in examples/ and expects it valid;
// other files (pods) are told apart by kind and must ask only for
// resources some example manifest declares.
func TestExamples(t *testing.T) {
	declared := map[string]bool{}
	var pods []string
	manifests := 0
	kinds := exampleFiles(t)
	for _, path := range slices.Sorted(maps.Keys(kinds)) {
		if kinds[path] != Kind {
			pods = append(pods, path)
			continue
		}
		manifests++
		t.Run(filepath.Base(path), func(t *testing.T) {
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range m.Resources {
				declared[r.Name] = true
				// Every example renders an allocation of its first devices.
				if _, err := renderIDs(r, r.IDs[:min(2, len(r.IDs))], "node-1"); err != nil {
					t.Errorf("%s: Render: %v", r.Name, err)
				}
			}
		})
	}
	if manifests == 0 {
		t.Fatal("no example manifests found")
	}
	for _, path := range pods {
		t.Run(filepath.Base(path), func(t *testing.T) {
			for _, name := range requestedResources(t, path) {
				if !declared[name] {
					t.Errorf("asks for %s, which no example manifest declares", name)
				}
			}
		})
	}
}

// requestedResources lists the extended resources (names with a domain)
// in a pod's container limits.
func requestedResources(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod struct {
		Kind string `json:"kind"`
		Spec struct {
			Containers []struct {
				Resources struct {
					Limits map[string]any `json:"limits"`
				} `json:"resources"`
			} `json:"containers"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Kind != "Pod" {
		t.Fatalf("kind %q: examples are manifests or pods", pod.Kind)
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		for name := range c.Resources.Limits {
			if strings.Contains(name, "/") {
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("the pod asks for no extended resource")
	}
	return names
}
