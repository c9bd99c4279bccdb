package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/a
    count: 2
  - name: example.com/b
    ids: [p]
`

const invalidManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: kubernetes.io/a
    count: 0
    colour: red
`

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", validManifest)
	single := writeFile(t, dir, "single.yaml", "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources: [{name: example.com/one, count: 1}]\n")
	bad := writeFile(t, dir, "bad.yaml", invalidManifest)
	broken := writeFile(t, dir, "broken.yaml", validManifest+"    ids: [q]\n")
	missing := filepath.Join(dir, "missing.yaml")

	goodLine := good + ": valid: 2 resources, 3 devices (example.com/a=2, example.com/b=1)\n"
	badLines := bad + ": resources[0].colour: unknown field; fields here are allocationPolicy, annotations, cdiDevices, count, devices, env, healthCheck, idTemplate, ids, mounts, name, nodes, preStartRequired, topology, unhealthy\n" +
		bad + ": resources[0].count: must be at least 1 (got 0)\n" +
		bad + ": resources[0].name: \"kubernetes.io/a\" is in the kubernetes.io domain, which is reserved; use a domain you own, for example example.com/a\n"

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string // each must appear
	}{
		{"valid file", []string{good}, 0, goodLine, nil},
		{"singular summary", []string{single}, 0, single + ": valid: 1 resource, 1 device (example.com/one=1)\n", nil},
		{"two valid files", []string{good, good}, 0, goodLine + goodLine, nil},
		{"invalid file: every error with the file name", []string{bad}, 1, "", []string{badLines}},
		{"mixed valid and invalid", []string{good, bad, good}, 1, goodLine + goodLine, []string{badLines}},
		{"duplicate key", []string{broken}, 1, "", []string{broken + `: duplicate key: line 8: key "ids" already set in map`}},
		{"missing file", []string{missing, good}, 1, goodLine, []string{missing + ": read manifest: open " + missing + ": no such file or directory\n"}},
		{"no files", nil, 2, "", []string{"Usage: simple-device-plugin validate FILE..."}},
		{"unknown flag", []string{"-strict", good}, 2, "", []string{"flag provided but not defined: -strict"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, append([]string{"validate"}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, tc.wantCode, stderr)
			}
			if stdout != tc.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tc.wantStdout)
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr:\n%s\nwant it to contain:\n%s", stderr, want)
				}
			}
			if tc.wantStderr == nil && stderr != "" {
				t.Errorf("unexpected stderr:\n%s", stderr)
			}
		})
	}
}

// TestValidateExamples runs the CLI over every example manifest, as a user
// following the README would.
func TestValidateExamples(t *testing.T) {
	paths, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var manifests []string
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "\nkind: Manifest\n") {
			manifests = append(manifests, path)
		}
	}
	if len(manifests) == 0 {
		t.Fatal("no example manifests")
	}
	code, stdout, stderr := runMain(t, append([]string{"validate"}, manifests...)...)
	if code != 0 {
		t.Fatalf("validate examples: exit %d\n%s", code, stderr)
	}
	if lines := strings.Count(stdout, "\n"); lines != len(manifests) {
		t.Errorf("%d summary lines for %d files:\n%s", lines, len(manifests), stdout)
	}
}
