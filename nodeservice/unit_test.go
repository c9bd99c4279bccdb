package nodeservice

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The unit users install by hand is the one the installer writes.
func TestDeployCopyIsTheEmbeddedUnit(t *testing.T) {
	const deployCopy = "../deploy/node-service/" + UnitName
	got, err := os.ReadFile(deployCopy)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != unitText {
		t.Errorf("%s differs from nodeservice/%s (the one embedded): copy it again", deployCopy, UnitName)
	}
}

func TestUnit(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		binDir, configDir        string
		address                  string
		port                     int
		want, notWant            []string
		wantErr                  string
		wantDefault              bool // the embedded text, unchanged
		wantNoConfigurationDir   bool
		wantConfigurationDirName string
	}{
		{name: "defaults", binDir: DefaultBinDir, configDir: DefaultConfigDir, port: DefaultPort, wantDefault: true,
			want: []string{
				"ExecStart=/usr/local/bin/simple-device-plugin run --manifest /etc/simple-device-plugin/manifest.yaml --registration kubelet-socket --wait-for-manifest --listen :9468\n",
				"EnvironmentFile=-/etc/simple-device-plugin/env\n",
				"ConfigurationDirectory=simple-device-plugin\n",
			}},
		{name: "other dirs under /etc, another port", binDir: "/opt/bin", configDir: "/etc/sdp/node", port: 9500,
			want: []string{
				"ExecStart=/opt/bin/simple-device-plugin run --manifest /etc/sdp/node/manifest.yaml --registration kubelet-socket --wait-for-manifest --listen :9500\n",
				"EnvironmentFile=-/etc/sdp/node/env\n",
				"# Creates /etc/sdp/node if it is missing",
				"ConfigurationDirectory=sdp/node\n",
				"on the host's port 9500",
			},
			notWant: []string{"/usr/local/bin", "/etc/simple-device-plugin", "9468"}},
		{name: "config dir outside /etc", binDir: "/opt/bin", configDir: "/var/lib/sdp", port: DefaultPort,
			want:    []string{"--manifest /var/lib/sdp/manifest.yaml", "EnvironmentFile=-/var/lib/sdp/env\n"},
			notWant: []string{"ConfigurationDirectory", "/etc/simple-device-plugin"}},
		{name: "relative bin dir", binDir: "bin", configDir: DefaultConfigDir, port: DefaultPort, wantErr: `--bin-dir "bin": want a clean absolute path`},
		{name: "config dir with a space", binDir: DefaultBinDir, configDir: "/etc/simple device plugin", port: DefaultPort, wantErr: `--config-dir "/etc/simple device plugin"`},
		{name: "a specifier", binDir: "/opt/%n", configDir: DefaultConfigDir, port: DefaultPort, wantErr: `--bin-dir "/opt/%n"`},
		{name: "not clean", binDir: "/opt/bin/", configDir: DefaultConfigDir, port: DefaultPort, wantErr: `--bin-dir "/opt/bin/"`},
		{name: "loopback only", binDir: DefaultBinDir, configDir: DefaultConfigDir, address: "127.0.0.1", port: DefaultPort,
			want: []string{"--wait-for-manifest --listen 127.0.0.1:9468\n"}},
		{name: "an IPv6 address", binDir: DefaultBinDir, configDir: DefaultConfigDir, address: "::1", port: 9500,
			want: []string{"--listen [::1]:9500\n"}},
		{name: "a host name", binDir: DefaultBinDir, configDir: DefaultConfigDir, address: "node-1", port: DefaultPort, wantErr: `--address "node-1": want an IP address`},
		{name: "port 0", binDir: DefaultBinDir, configDir: DefaultConfigDir, port: 0, wantErr: "--port 0: want a port from 1 to 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Unit(tc.binDir, tc.configDir, tc.address, tc.port)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unit: error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantDefault && got != unitText {
				t.Errorf("Unit with the defaults differs from the embedded unit:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("the unit has no %q:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("the unit still has %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit as the installer
// writes it, with the defaults and with other dirs.
//
// verify (systemd 252) checks that ExecStart's binary exists and is
// executable, so the unit is rendered with --bin-dir pointing at a temporary
// dir holding an executable of that name: the same rewrite the installer
// does. (--root=DIR would find the binary under DIR, but then looks for
// every unit in DIR too and fails on sysinit.target, which the default
// dependencies pull in.) verify reports bad directives only as warnings
// and still exits 0, so any output fails the test, except that
// kubelet.service may not exist on this machine.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("SDP_E2E_REQUIRED") != "" {
			t.Fatalf("systemd-analyze not found, and SDP_E2E_REQUIRED is set: %v", err)
		}
		t.Skip("systemd-analyze not found (set SDP_E2E_REQUIRED to make this a failure)")
	}
	binDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(binDir, BinaryName), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, configDir := range []string{DefaultConfigDir, "/etc/sdp/node", "/var/lib/sdp"} {
		t.Run(configDir, func(t *testing.T) {
			unit, err := Unit(binDir, configDir, "", 9500)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), UnitName)
			if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, analyze, "verify", path)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			runErr := cmd.Run()
			var problems []string
			kubeletMissing := false
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				switch {
				case line == "":
				case strings.Contains(line, "kubelet.service") && strings.Contains(line, "not found"):
					kubeletMissing = true
				default:
					problems = append(problems, line)
				}
			}
			// A missing kubelet.service may fail verify too; nothing else may.
			if len(problems) > 0 || (runErr != nil && !kubeletMissing) {
				t.Errorf("systemd-analyze verify %s: %v\n%s\nunit:\n%s", path, runErr, strings.Join(problems, "\n"), unit)
			}
		})
	}
}

// The check above would pass a unit that verify does not read at all; a
// broken unit must fail it.
func TestUnitVerifyCatchesAWarning(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found")
	}
	path := filepath.Join(t.TempDir(), UnitName)
	bad := strings.Replace(unitText, "Type=notify", "Type=notifyy", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(analyze, "verify", path).CombinedOutput()
	if !strings.Contains(string(out), "notifyy") {
		t.Errorf("systemd-analyze verify of a unit with Type=notifyy said nothing about it:\n%s", out)
	}
}
