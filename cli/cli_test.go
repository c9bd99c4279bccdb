package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exampleManifest is the README's first manifest; the tests run in cli/.
const exampleManifest = "../examples/manifest.yaml"

// TestCommandLine covers what Main does before any command runs: version,
// help, unknown commands, -h on every command, and run's usage errors.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // must appear
		wantStderr string // must appear
	}{
		{name: "version", args: []string{"version"}, wantStdout: "simple-device-plugin dev\n"},
		{name: "help lists every command", args: []string{"help"}, wantStdout: "simple-device-plugin validate FILE..."},
		{name: "help lists every run flag and the exit codes", args: []string{"help"}, wantStdout: "[--plugins-registry-dir DIR] [--poll DURATION]"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: exitUsage, wantStderr: `unknown command "frobnicate"`},
		{name: "run -h lists its flags and succeeds", args: []string{"run", "-h"}, wantStderr: "-device-plugin-dir"},
		{name: "flags alone mean run", args: []string{"--help"}, wantStderr: "Usage of run:"},
		{name: "simulate -h", args: []string{"simulate", "-h"}, wantStderr: "-containers int"},
		{name: "validate -h", args: []string{"validate", "-h"}, wantStderr: "Usage: simple-device-plugin validate FILE..."},
		{name: "run without a manifest", args: []string{"run"}, wantCode: exitUsage, wantStderr: "run: --manifest (or SDP_MANIFEST) is required"},
		{name: "run with a bad registration mode", args: []string{"run", "--manifest", exampleManifest, "--registration", "magic"}, wantCode: exitUsage,
			wantStderr: `run: --registration "magic": use auto, kubelet-socket or plugins-registry`},
		{name: "run with a device-plugin dir that is not there", args: []string{"run", "--manifest", exampleManifest, "--device-plugin-dir", "/nonexistent/device-plugins", "--listen", ""},
			wantCode: exitFailure, wantStderr: "run: socket dir /nonexistent/device-plugins: stat /nonexistent/device-plugins: no such file or directory (is the kubelet's dir mounted into the container? set --device-plugin-dir)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantStdout, stdout)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, stderr)
			}
		})
	}
}

// hangTimeout turns a command that never returns into a failure. The
// commands under test return in about a second, so it only has to outlast
// a slow, shared machine running the race detector.
const hangTimeout = 2 * time.Minute

// runMain runs the command line as a user would, minus the process.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	code = Main(ctx, args, &out, &errOut)
	if ctx.Err() != nil {
		t.Fatalf("Main(%q) did not return within %v\nstderr:\n%s", args, hangTimeout, errOut.String())
	}
	return code, out.String(), errOut.String()
}

// unsetEnv unsets variables for the test; t.Setenv restores them after.
func unsetEnv(t *testing.T, names ...string) {
	t.Helper()
	for _, v := range names {
		t.Setenv(v, "")
		os.Unsetenv(v)
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
