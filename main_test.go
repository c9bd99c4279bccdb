package main

import (
	"net"
	"os"
	"strings"
	"testing"
)

// TestCommandLine covers usage: -h on every command, run's usage errors.
// (TestMainCommands covers version, help and unknown commands.)
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // must appear
		wantStderr string // must appear
	}{
		{name: "help lists every run flag and the exit codes", args: []string{"help"}, wantStdout: "[--plugins-registry-dir DIR] [--poll DURATION]"},
		{name: "run -h lists its flags and succeeds", args: []string{"run", "-h"}, wantStderr: "-device-plugin-dir"},
		{name: "flags alone mean run", args: []string{"--help"}, wantStderr: "Usage of run:"},
		{name: "simulate -h", args: []string{"simulate", "-h"}, wantStderr: "-containers int"},
		{name: "validate -h", args: []string{"validate", "-h"}, wantStderr: "Usage: simple-device-plugin validate FILE..."},
		{name: "run without a manifest", args: []string{"run"}, wantCode: exitUsage, wantStderr: "run: --manifest (or SDP_MANIFEST) is required"},
		{name: "run with a bad registration mode", args: []string{"run", "--manifest", "examples/manifest.yaml", "--registration", "magic"}, wantCode: exitUsage,
			wantStderr: `run: --registration "magic": use auto, kubelet-socket or plugins-registry`},
		{name: "run with a device-plugin dir that is not there", args: []string{"run", "--manifest", "examples/manifest.yaml", "--device-plugin-dir", "/nonexistent/device-plugins", "--listen", ""},
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

// A --listen address in use is reported before any plugin creates a socket
// or registers, so a failed start leaves nothing behind.
func TestRunWithListenAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir, err := os.MkdirTemp("", "sdp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	code, _, stderr := runMain(t, "run", "--manifest", "examples/manifest.yaml", "--device-plugin-dir", dir,
		"--registration", "kubelet-socket", "--listen", busy.Addr().String(), "--log-level", "error")
	if code != exitFailure {
		t.Errorf("exit code %d, want %d\n%s", code, exitFailure, stderr)
	}
	if want := "listen on " + busy.Addr().String() + " for /healthz, /readyz, /metrics"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the device-plugin dir: %s", e.Name())
	}
}
