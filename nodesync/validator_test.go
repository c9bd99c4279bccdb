package nodesync

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	binaryDir  string // removed by TestMain
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// realBinary builds simple-device-plugin once, for the tests that need
// the node's binary as it is shipped.
func realBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		if binaryDir, binaryErr = os.MkdirTemp("", "sdp-nodesync"); binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "simple-device-plugin")
		out, err := exec.Command("go", "build", "-o", binaryPath, "..").CombinedOutput()
		if err != nil {
			binaryErr = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if binaryErr != nil {
		t.Fatalf("build the binary: %v", binaryErr)
	}
	return binaryPath
}

const validManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    count: 2
`

// The real binary accepts a valid manifest, and refuses an invalid one
// with each problem as `validate -` prints it.
func TestExecValidatorWithTheRealBinary(t *testing.T) {
	validate := ExecValidator(realBinary(t))
	tests := []struct {
		name         string
		manifest     string
		wantProblems []string // nil: valid
	}{
		{"valid", validManifest, nil},
		{"two problems", `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    count: -1
    frobnicate: yes
`, []string{"<stdin>:5:12: resources[0].count:", "<stdin>:6:5: resources[0].frobnicate:"}},
		{"not YAML", "resources: [\n", []string{"<stdin>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(t.Context(), []byte(tc.manifest))
			if tc.wantProblems == nil {
				if err != nil {
					t.Fatalf("valid manifest refused: %v", err)
				}
				return
			}
			var invalid *InvalidError
			if !errors.As(err, &invalid) {
				t.Fatalf("got %v, want an *InvalidError", err)
			}
			joined := strings.Join(invalid.Problems, "\n")
			for _, want := range tc.wantProblems {
				if !strings.Contains(joined, want) {
					t.Errorf("problems lack %q:\n%s", want, joined)
				}
			}
			if len(invalid.Problems) < len(tc.wantProblems) {
				t.Errorf("%d problems, want at least %d:\n%s", len(invalid.Problems), len(tc.wantProblems), joined)
			}
		})
	}
}

// SDP_* variables meant for the sync process do not reach the validator:
// SDP_MANIFEST would otherwise be a second manifest for it to check.
func TestExecValidatorIgnoresSyncVariables(t *testing.T) {
	bin := realBinary(t)
	t.Setenv("SDP_MANIFEST", "/nonexistent/manifest.yaml")
	t.Setenv("SDP_LOG_LEVEL", "loud")
	if err := ExecValidator(bin)(t.Context(), []byte(validManifest)); err != nil {
		t.Errorf("valid manifest refused: %v", err)
	}
}

// A validator that cannot decide is an error, not an invalid manifest.
func TestExecValidatorFailures(t *testing.T) {
	dir := t.TempDir()
	crashing := writeScript(t, dir, "crashing", "echo 'panic: boom' >&2; exit 2")
	tests := []struct {
		name, binary, want string
	}{
		{"missing", filepath.Join(dir, "nonexistent"), "is the node service installed on this node?"},
		{"not executable", writeFile(t, dir, "plain", "not a program"), "is the node service installed on this node?"},
		{"another exit code", crashing, "exit status 2: panic: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ExecValidator(tc.binary)(t.Context(), []byte(validManifest))
			var invalid *InvalidError
			if err == nil || errors.As(err, &invalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error (not invalid) containing %q", err, tc.want)
			}
		})
	}
}

// The node's binary decides, not the sync image's: a manifest this
// process would accept (here: any) is not written when an older node
// binary refuses a field it does not know.
func TestSyncWritesOnlyWhatTheNodeBinaryAccepts(t *testing.T) {
	dir := t.TempDir()
	oldNode := writeScript(t, dir, "old-node",
		`cat >/dev/null; echo '<stdin>:6:5: resources[0].newField: unknown field "newField"' >&2; exit 1`)
	cm := newConfigMap(t, validManifest+"    newField: 1\n")
	target := newTarget(t)

	s := &Syncer{Source: cm.path(), Target: target, Validate: ExecValidator(oldNode)}
	logs := startSyncer(t, s)
	waitForCount(t, s, resultInvalid, 1, logs)
	checkReady(t, s, false, "invalid")
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target written although the node binary refused it: %v", err)
	}
	if want := `problem="<stdin>:6:5: resources[0].newField: unknown field \"newField\""`; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs)
	}
}

// With the real binary as the node's, a ConfigMap update is written once
// valid and refused while invalid.
func TestSyncWithTheRealBinary(t *testing.T) {
	cm := newConfigMap(t, validManifest)
	target := newTarget(t)
	s := &Syncer{Source: cm.path(), Target: target, Validate: ExecValidator(realBinary(t)), Poll: time.Second}
	logs := startSyncer(t, s)
	waitForContent(t, target, validManifest, logs)

	cm.update(t, strings.Replace(validManifest, "count: 2", "count: 0", 1))
	waitForCount(t, s, resultInvalid, 1, logs)
	if !strings.Contains(logs.String(), "resources[0].count") {
		t.Errorf("the node binary's problem is not in the log:\n%s", logs)
	}
	if got, _ := os.ReadFile(target); string(got) != validManifest {
		t.Errorf("target %q, want the last good manifest", got)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := writeFile(t, dir, name, "#!/bin/sh\n"+body+"\n")
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
