package cli

import (
	"bytes"
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
	unsetEnv(t, "SDP_MANIFEST")
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", validManifest)
	single := writeFile(t, dir, "single.yaml", "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources: [{name: example.com/one, count: 1}]\n")
	bad := writeFile(t, dir, "bad.yaml", invalidManifest)
	broken := writeFile(t, dir, "broken.yaml", validManifest+"    ids: [q]\n")
	missing := filepath.Join(dir, "missing.yaml")

	// A directory of manifests, with a pod beside them and a file that is no YAML.
	manifests := filepath.Join(dir, "manifests")
	if err := os.Mkdir(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	dirGood := writeFile(t, manifests, "a.yaml", validManifest)
	dirBad := writeFile(t, manifests, "b.yml", invalidManifest)
	dirPod := writeFile(t, manifests, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
	writeFile(t, manifests, "notes.txt", "not a manifest")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}

	summary := ": valid: 2 resources, 3 devices (example.com/a=2, example.com/b=1)\n"
	goodLine := good + summary
	badLines := func(name string) string {
		return name + ":4:11: resources[0].name: \"kubernetes.io/a\" is in the kubernetes.io domain, which is reserved; use a domain you own, for example example.com/a\n" +
			name + ":5:12: resources[0].count: must be at least 1 (got 0)\n" +
			name + ":6:5: resources[0].colour: unknown field; fields here are allocationPolicy, annotations, api, cdi, cdiDevices, count, devices, discover, dra, env, healthCheck, idTemplate, ids, mounts, name, nodes, preStartRequired, topology, unhealthy\n"
	}

	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr []string // each must appear
	}{
		{"valid file", []string{good}, "", 0, goodLine, nil},
		{"singular summary", []string{single}, "", 0, single + ": valid: 1 resource, 1 device (example.com/one=1)\n", nil},
		{"two valid files", []string{good, good}, "", 0, goodLine + goodLine, nil},
		{"--manifest names a file too", []string{"--manifest", good}, "", 0, goodLine, nil},
		{"--manifest and files", []string{"--manifest", good, single}, "", 0, goodLine + single + ": valid: 1 resource, 1 device (example.com/one=1)\n", nil},
		{"invalid file: every error with file, line and column, in the order of the text", []string{bad}, "", 1, "", []string{badLines(bad)}},
		{"mixed valid and invalid", []string{good, bad, good}, "", 1, goodLine + goodLine, []string{badLines(bad)}},
		{"duplicate key", []string{broken}, "", 1, "", []string{broken + `:8:5: resources[1].ids: "ids" appears twice in this mapping (first at line 7); keep one`}},
		{"missing file", []string{missing, good}, "", 1, goodLine, []string{missing + ": read the manifest: open " + missing + ": no such file or directory\n"}},
		{"standard input", []string{"-"}, validManifest, 0, "<stdin>" + summary, nil},
		{"standard input, invalid", []string{"-"}, invalidManifest, 1, "", []string{badLines("<stdin>")}},
		{"a directory: its manifests, the pod skipped", []string{manifests}, "", 1,
			dirGood + summary + dirPod + ": skipped: kind Pod, not a manifest\n", []string{badLines(dirBad)}},
		{"a directory without manifests, and the rest still checked", []string{empty, good}, "", 1, goodLine, []string{empty + ": no manifests in this directory"}},
		{"standard input twice", []string{"-", "-"}, validManifest, 2, "", []string{"- (standard input) given 2 times; it can be read once"}},
		{"a pod named on the command line is checked", []string{dirPod}, "", 1, "", []string{dirPod + ":1:13: apiVersion: \"v1\" is not a version this build knows"}},
		{"no files", nil, "", 2, "", []string{"no manifest: simple-device-plugin validate FILE"}},
		{"unknown flag", []string{"--strict", good}, "", 2, "", []string{"unknown flag: --strict"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := MainWithInput(t.Context(), append([]string{"validate"}, tc.args...), strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if stdout.String() != tc.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tc.wantStdout)
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr:\n%s\nwant it to contain:\n%s", stderr.String(), want)
				}
			}
			if tc.wantStderr == nil && stderr.Len() > 0 {
				t.Errorf("unexpected stderr:\n%s", stderr.String())
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
