package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"simple-device-plugin/internal/syncbuf"
)

// exampleManifest is the README's first manifest; the tests run in cli/.
const exampleManifest = "../examples/manifest.yaml"

// TestCommandLine covers what Main does before any command runs: help on
// every level, version, unknown commands and flags, flag values out of
// range from the command line and from SDP_* variables, and exit codes.
func TestCommandLine(t *testing.T) {
	unsetEnv(t, "SDP_MANIFEST", "SDP_POLL", "SDP_LOG_LEVEL", "SDP_LISTEN", "SDP_OUTPUT", "NODE_NAME")
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantStdout []string // each must appear
		wantStderr []string // each must appear
		noStdout   []string // none may appear
	}{
		{name: "--help lists the commands and run's flags, on stdout", args: []string{"--help"},
			wantStdout: []string{"Available Commands:", "run ", "validate ", "simulate ", "version ", "completion ", "--manifest FILE", "--poll duration", "--registration string", "Exit codes: 0 success"}},
		{name: "-h is --help", args: []string{"-h"}, wantStdout: []string{"Available Commands:"}},
		{name: "help is --help", args: []string{"help"}, wantStdout: []string{"Available Commands:"}},
		{name: "run --help", args: []string{"run", "--help"}, wantStdout: []string{"Usage:\n  simple-device-plugin run [FILE] [flags]", "--device-plugin-dir DIR", "--log-level string"}},
		{name: "validate -h", args: []string{"validate", "-h"}, wantStdout: []string{"simple-device-plugin validate FILE|DIR|- ...", "--manifest FILE"}},
		{name: "simulate -h", args: []string{"simulate", "-h"}, wantStdout: []string{"--containers int", "-o, --output string", "--request NAME=N,..."}},
		{name: "version -h", args: []string{"version", "-h"}, wantStdout: []string{"-o, --output string"}},
		{name: "--version", args: []string{"--version"}, wantStdout: []string{"simple-device-plugin dev\n  commit:   ", "  go:       go1.", "  platform: "}},
		{name: "version", args: []string{"version"}, wantStdout: []string{"simple-device-plugin dev\n", "platform: "}},
		{name: "version --output json", args: []string{"version", "--output", "json"}, wantStdout: []string{`"version": "dev"`, `"goVersion": "go1.`, `"platform": "`, `"commit": "`}},
		{name: "version -o yaml", args: []string{"version", "-o", "yaml"}, wantCode: exitUsage,
			wantStderr: []string{`invalid argument "yaml" for "-o, --output" flag: must be one of text, json`, "See 'simple-device-plugin version --help'."}},
		{name: "completion bash", args: []string{"completion", "bash"}, wantStdout: []string{"bash completion V2 for simple-device-plugin"}},
		{name: "completion zsh", args: []string{"completion", "zsh"}, wantStdout: []string{"#compdef simple-device-plugin"}},
		{name: "completion fish", args: []string{"completion", "fish"}, wantStdout: []string{"complete -c simple-device-plugin"}},
		{name: "completion offers choices", args: []string{"__complete", "run", "--registration", ""}, wantStdout: []string{"auto\nkubelet-socket\nplugins-registry\n"},
			wantStderr: []string{"ShellCompDirectiveNoFileComp"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: exitUsage, wantStderr: []string{`Error: unknown command "frobnicate"`, "See 'simple-device-plugin --help'."}},
		{name: "a misspelt command gets a suggestion", args: []string{"valdate"}, wantCode: exitUsage, wantStderr: []string{"unknown command \"valdate\" for \"simple-device-plugin\"\n\nDid you mean this?\n\tvalidate\n"}},
		{name: "a file where the command goes", args: []string{exampleManifest}, wantCode: exitUsage, wantStderr: []string{"To serve a manifest: simple-device-plugin run " + exampleManifest}},
		{name: "help on an unknown topic", args: []string{"help", "frobnicate"}, wantStdout: []string{"Unknown help topic"}},
		{name: "a short flag that does not exist gets no long-flag hint", args: []string{"version", "-x"}, wantCode: exitUsage, wantStderr: []string{"Error: unknown shorthand flag: 'x' in -x\n"}},
		{name: "--listen with a port out of range", args: []string{"run", exampleManifest, "--listen", ":99999"}, wantCode: exitUsage, wantStderr: []string{"must be host:port or :port with a port from 0 to 65535"}},
		{name: "--listen with a port that is no number", args: []string{"run", exampleManifest, "--listen", ":http"}, wantCode: exitUsage, wantStderr: []string{"with a port from 0 to 65535"}},
		{name: "SDP_ variables do not reach version", env: map[string]string{"SDP_OUTPUT": "yaml"}, args: []string{"version"}, wantStdout: []string{"simple-device-plugin dev\n"}},
		{name: "unknown flag", args: []string{"validate", "--strict", exampleManifest}, wantCode: exitUsage, wantStderr: []string{"unknown flag: --strict"}},
		{name: "unknown single-dash flag gets a hint", args: []string{"validate", "-strict", exampleManifest}, wantCode: exitUsage, wantStderr: []string{"unknown flag: -strict (long flags take two dashes"}},
		{name: "single-dash long flags still work", args: []string{"simulate", "-manifest", exampleManifest, "-output=json", "-request", "example.com/fpga=1"}, wantStdout: []string{`"example.com/fpga"`}},
		{name: "run with a --host-root that is not there", args: []string{"run", "../examples/discover.yaml", "--host-root", "/nonexistent", "--device-plugin-dir", os.TempDir(), "--listen", ""}, wantCode: exitFailure,
			wantStderr: []string{"--host-root /nonexistent is not a directory: mount the host's /dev and /sys under it"}},
		{name: "simulate with a --host-root that is not there", args: []string{"simulate", "../examples/discover.yaml", "--host-root", "/nonexistent"}, wantCode: exitFailure,
			wantStderr: []string{"--host-root /nonexistent is not a directory"}},
		{name: "simulate discovers under --host-root", args: []string{"simulate", "../examples/discover.yaml", "--host-root", "../examples"},
			wantStdout: []string{"example.com/fuse        example.com_fuse.sock        0        0"}},
		{name: "run without a manifest", args: []string{"run"}, wantCode: exitUsage, wantStderr: []string{"no manifest: simple-device-plugin run FILE (or --manifest FILE, or SDP_MANIFEST)"}},
		{name: "no command and no manifest", args: []string{"--listen", ""}, wantCode: exitUsage, wantStderr: []string{"no manifest: simple-device-plugin FILE"}},
		{name: "the manifest twice", args: []string{"run", exampleManifest, "--manifest", exampleManifest}, wantCode: exitUsage, wantStderr: []string{"give the manifest once"}},
		{name: "two manifests to run", args: []string{"run", exampleManifest, exampleManifest}, wantCode: exitUsage, wantStderr: []string{"one manifest at a time, got 2 arguments"}},
		{name: "version takes no arguments", args: []string{"version", "extra"}, wantCode: exitUsage, wantStderr: []string{"simple-device-plugin version takes no arguments"}},
		{name: "bad registration mode", args: []string{"run", exampleManifest, "--registration", "magic"}, wantCode: exitUsage,
			wantStderr: []string{`invalid argument "magic" for "--registration" flag: must be one of auto, kubelet-socket, plugins-registry`}},
		{name: "bad log level", args: []string{"run", exampleManifest, "--log-level", "loud"}, wantCode: exitUsage,
			wantStderr: []string{`invalid argument "loud" for "--log-level" flag: must be one of debug, info, warn, error`}},
		{name: "--poll too short", args: []string{"run", exampleManifest, "--poll", "1ns"}, wantCode: exitUsage,
			wantStderr: []string{`invalid argument "1ns" for "--poll" flag: must be between 100ms and 1h`}},
		{name: "--poll zero", args: []string{"run", exampleManifest, "--poll", "0"}, wantCode: exitUsage, wantStderr: []string{"must be between 100ms and 1h"}},
		{name: "--poll negative", args: []string{"run", exampleManifest, "--poll=-1s"}, wantCode: exitUsage, wantStderr: []string{"must be between 100ms and 1h"}},
		{name: "--poll too long", args: []string{"run", exampleManifest, "--poll", "2h"}, wantCode: exitUsage, wantStderr: []string{"must be between 100ms and 1h"}},
		{name: "SDP_POLL without a unit", env: map[string]string{"SDP_POLL": "5"}, args: []string{"run", exampleManifest}, wantCode: exitUsage,
			wantStderr: []string{`SDP_POLL="5" (for --poll): must be a duration such as 5s or 500ms, between 100ms and 1h`}},
		{name: "a bad SDP_ value and a bad flag are both reported", env: map[string]string{"SDP_LOG_LEVEL": "loud", "SDP_LISTEN": "8080"}, args: []string{"run", exampleManifest}, wantCode: exitUsage,
			wantStderr: []string{`SDP_LOG_LEVEL="loud" (for --log-level): must be one of`, `SDP_LISTEN="8080" (for --listen): must be host:port`}},
		{name: "a flag wins over its variable", env: map[string]string{"SDP_POLL": "5"}, args: []string{"run", exampleManifest, "--poll", "1s", "--device-plugin-dir", "/nonexistent/device-plugins", "--listen", ""},
			wantCode: exitFailure, wantStderr: []string{"socket dir /nonexistent/device-plugins"}},
		{name: "SDP_MANIFEST stands for --manifest", env: map[string]string{"SDP_MANIFEST": exampleManifest}, args: []string{"simulate", "-o", "json"}, wantStdout: []string{`"example.com/fpga"`}},
		{name: "--containers out of range", args: []string{"simulate", exampleManifest, "--containers", "0"}, wantCode: exitUsage,
			wantStderr: []string{`invalid argument "0" for "--containers" flag: must be a whole number from 1 to 1000`}},
		{name: "run with a device-plugin dir that is not there", args: []string{"run", "--manifest", exampleManifest, "--device-plugin-dir", "/nonexistent/device-plugins", "--listen", ""},
			wantCode: exitFailure, wantStderr: []string{"Error: socket dir /nonexistent/device-plugins: stat /nonexistent/device-plugins: no such file or directory (is the kubelet's dir mounted into the container? set --device-plugin-dir)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runMain(t, tc.args...)
			checkRun(t, code, stdout, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			if tc.wantCode == exitOK && len(tc.wantStderr) == 0 && stderr != "" {
				t.Errorf("unexpected stderr:\n%s", stderr)
			}
		})
	}
}

// checkRun checks a run's exit code, and that each of wantStdout and
// wantStderr appears in its output.
func checkRun(t *testing.T, code int, stdout, stderr string, wantCode int, wantStdout, wantStderr []string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, stdout, stderr)
	}
	for _, want := range wantStdout {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	for _, want := range wantStderr {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
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

// runningCommand is a command line started by startCommand.
type runningCommand struct {
	t      *testing.T
	stderr *syncbuf.Buffer // its log, readable while it runs
	cancel context.CancelFunc
	done   chan int
	code   int
	ended  bool
}

// startCommand runs a command line until stop is called or the test ends,
// as SIGTERM ends it.
func startCommand(t *testing.T, args ...string) *runningCommand {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c := &runningCommand{t: t, stderr: &syncbuf.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { c.done <- Main(ctx, args, io.Discard, c.stderr) }()
	t.Cleanup(func() { c.stop() })
	return c
}

// stop ends the command and returns its exit code and log; it may be
// called twice.
func (c *runningCommand) stop() (int, string) {
	if !c.ended {
		c.cancel()
		select {
		case c.code = <-c.done:
			c.ended = true
		case <-time.After(hangTimeout):
			c.t.Fatalf("the command did not stop within %v", hangTimeout)
		}
	}
	return c.code, c.stderr.String()
}
