package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallCommand drives install through the command line into a
// temporary host root (no systemd there: nothing is started). What install
// writes, and the systemctl plan, are tested in nodeservice.
func TestInstallCommand(t *testing.T) {
	unsetEnv(t, "NODE_NAME", "SDP_NODE_NAME", "SDP_HOST_ROOT", "SDP_START", "SDP_PORT")
	root := t.TempDir()
	t.Setenv("NODE_NAME", "node-1")

	code, stdout, stderr := runMain(t, "install", "--host-root", root, "--port", "9500")
	checkRun(t, code, stdout, stderr, exitOK, []string{"created " + root + "/usr/local/bin/simple-device-plugin", "no systemd running on the host"}, nil)
	env, err := os.ReadFile(filepath.Join(root, "etc/simple-device-plugin/env"))
	if err != nil || !strings.Contains(string(env), "\nNODE_NAME=node-1\n") {
		t.Errorf("env file %q (%v), want NODE_NAME=node-1 from $NODE_NAME", env, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/simple-device-plugin.service"))
	if err != nil || !strings.Contains(string(unit), "--listen :9500\n") {
		t.Errorf("unit (%v) has no --listen :9500:\n%s", err, unit)
	}

	code, stdout, stderr = runMain(t, "install", "--host-root", root, "--port", "9500")
	checkRun(t, code, stdout, stderr, exitOK, []string{"nothing changed"}, nil)

	code, stdout, stderr = runMain(t, "install", "--remove", "--host-root", root)
	checkRun(t, code, stdout, stderr, exitOK, []string{"removed " + root + "/usr/local/bin/simple-device-plugin", "kept " + root + "/etc/simple-device-plugin"}, nil)
}

func TestInstallCommandRefuses(t *testing.T) {
	unsetEnv(t, "NODE_NAME", "SDP_NODE_NAME", "SDP_HOST_ROOT", "SDP_START", "SDP_PORT")
	root := t.TempDir()
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no node name", []string{"install", "--host-root", root}, exitFailure, "no node name: give --node-name NAME, or set NODE_NAME"},
		{"bad --start", []string{"install", "--host-root", root, "--node-name", "n", "--start", "now"}, exitUsage, `invalid argument "now" for "--start" flag: must be one of auto, never`},
		{"bad --port", []string{"install", "--host-root", root, "--node-name", "n", "--port", "0"}, exitUsage, "must be a whole number from 1 to 65535"},
		{"arguments", []string{"install", "/host"}, exitUsage, "simple-device-plugin install takes no arguments"},
		{"no host root", []string{"install", "--host-root", filepath.Join(root, "missing"), "--node-name", "n"}, exitFailure, "is not a directory: mount the host's / there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tc.args...)
			checkRun(t, code, stdout, stderr, tc.wantCode, nil, []string{tc.wantStderr})
		})
	}
}
