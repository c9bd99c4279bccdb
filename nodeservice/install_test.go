package nodeservice

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeHost is a temporary host root, an executable to install, and the
// systemctl calls the installer made.
type fakeHost struct {
	root, exe string
	calls     [][]string
	out       bytes.Buffer
	failOn    string // a systemctl verb that fails
}

func newFakeHost(t *testing.T, systemd bool) *fakeHost {
	t.Helper()
	h := &fakeHost{root: t.TempDir(), exe: filepath.Join(t.TempDir(), "installer")}
	if err := os.WriteFile(h.exe, []byte("binary v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if systemd {
		if err := os.MkdirAll(filepath.Join(h.root, "run/systemd/system"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *fakeHost) config() Config {
	return Config{HostRoot: h.root, BinDir: DefaultBinDir, UnitDir: DefaultUnitDir, ConfigDir: DefaultConfigDir,
		Port: DefaultPort, NodeName: "node-1", Executable: h.exe, Start: StartAuto, Out: &h.out,
		systemctl: func(_ context.Context, hostRoot string, args ...string) error {
			if hostRoot != h.root {
				return errors.New("systemctl run under " + hostRoot + ", not the host root")
			}
			h.calls = append(h.calls, args)
			if args[0] == h.failOn {
				return errors.New("systemctl " + args[0] + ": Access denied")
			}
			return nil
		}}
}

func (h *fakeHost) read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(h.root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

var (
	reload  = []string{"daemon-reload"}
	restart = []string{"restart", "--no-block", UnitName}
	start   = []string{"start", "--no-block", UnitName}
)

func TestInstall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		systemd bool
		before  func(t *testing.T, h *fakeHost, c *Config) // an earlier state of the host
		edit    func(c *Config)
		// What the (last) install does.
		wantChanged bool
		wantCalls   [][]string
		wantOut     []string
		check       func(t *testing.T, h *fakeHost)
	}{
		{name: "fresh install without systemd", wantChanged: true,
			wantOut: []string{"created ROOT/usr/local/bin/simple-device-plugin", "no systemd running on the host", "starts at the next boot"},
			check: func(t *testing.T, h *fakeHost) {
				wantFile(t, h, "/usr/local/bin/simple-device-plugin", "binary v1", 0o755)
				wantFile(t, h, "/etc/systemd/system/simple-device-plugin.service", unitText, 0o644)
				if env := h.read(t, "/etc/simple-device-plugin/env"); !strings.HasSuffix(env, "\nNODE_NAME=node-1\n") {
					t.Errorf("env file:\n%s\nwant it to end with NODE_NAME=node-1", env)
				}
				for _, wants := range []string{"kubelet.service.wants", "multi-user.target.wants"} {
					wantLink(t, h, filepath.Join("/etc/systemd/system", wants, UnitName), "/etc/systemd/system/"+UnitName)
				}
			}},
		{name: "fresh install with systemd", systemd: true, wantChanged: true, wantCalls: [][]string{reload, restart},
			wantOut: []string{"systemctl daemon-reload\n", "systemctl restart --no-block " + UnitName}},
		{name: "second run without systemd", before: install,
			wantOut: []string{"unchanged ROOT/usr/local/bin/simple-device-plugin", "nothing changed"}},
		{name: "second run with systemd only makes sure it runs", systemd: true, before: install,
			wantCalls: [][]string{start}, wantOut: []string{"nothing changed"}},
		{name: "a new binary is installed and the service restarted", systemd: true, wantChanged: true,
			before: func(t *testing.T, h *fakeHost, c *Config) {
				install(t, h, c)
				if err := os.WriteFile(h.exe, []byte("binary v2, longer"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantCalls: [][]string{reload, restart}, wantOut: []string{"updated ROOT/usr/local/bin/simple-device-plugin"},
			check: func(t *testing.T, h *fakeHost) {
				wantFile(t, h, "/usr/local/bin/simple-device-plugin", "binary v2, longer", 0o755)
			}},
		{name: "a binary of the same size but other bytes is replaced", wantChanged: true,
			before: func(t *testing.T, h *fakeHost, c *Config) {
				install(t, h, c)
				if err := os.WriteFile(h.exe, []byte("binary v2"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, h *fakeHost) {
				wantFile(t, h, "/usr/local/bin/simple-device-plugin", "binary v2", 0o755)
			}},
		{name: "a binary that lost its x bit is rewritten", wantChanged: true,
			before: func(t *testing.T, h *fakeHost, c *Config) {
				install(t, h, c)
				if err := os.Chmod(filepath.Join(h.root, "/usr/local/bin", BinaryName), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, h *fakeHost) {
				wantFile(t, h, "/usr/local/bin/simple-device-plugin", "binary v1", 0o755)
			}},
		{name: "a removed link is made again, systemd reloaded, the service not restarted", systemd: true, wantChanged: true,
			before: func(t *testing.T, h *fakeHost, c *Config) {
				install(t, h, c)
				if err := os.Remove(filepath.Join(h.root, "/etc/systemd/system/kubelet.service.wants", UnitName)); err != nil {
					t.Fatal(err)
				}
			},
			wantCalls: [][]string{reload, start}},
		{name: "a link elsewhere is replaced", wantChanged: true,
			before: func(t *testing.T, h *fakeHost, c *Config) {
				dir := filepath.Join(h.root, "/etc/systemd/system/multi-user.target.wants")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/lib/systemd/system/old.service", filepath.Join(dir, UnitName)); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, h *fakeHost) {
				wantLink(t, h, "/etc/systemd/system/multi-user.target.wants/"+UnitName, "/etc/systemd/system/"+UnitName)
			}},
		{name: "another node name rewrites NODE_NAME and keeps the admin's lines", systemd: true, wantChanged: true,
			before: func(t *testing.T, h *fakeHost, c *Config) {
				install(t, h, c)
				env := filepath.Join(h.root, "/etc/simple-device-plugin/env")
				if err := os.WriteFile(env, []byte("SDP_LOG_LEVEL=debug\nNODE_NAME=old\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			edit:      func(c *Config) { c.NodeName = "node-2" },
			wantCalls: [][]string{reload, restart},
			check: func(t *testing.T, h *fakeHost) {
				wantFile(t, h, "/etc/simple-device-plugin/env", "SDP_LOG_LEVEL=debug\nNODE_NAME=node-2\n", 0o644)
			}},
		{name: "other dirs and port", wantChanged: true,
			edit: func(c *Config) {
				c.BinDir, c.UnitDir, c.ConfigDir, c.Port = "/opt/bin", "/usr/lib/systemd/system", "/var/lib/sdp", 9500
			},
			check: func(t *testing.T, h *fakeHost) {
				wantFile(t, h, "/opt/bin/simple-device-plugin", "binary v1", 0o755)
				unit := h.read(t, "/usr/lib/systemd/system/"+UnitName)
				if !strings.Contains(unit, "ExecStart=/opt/bin/simple-device-plugin run --manifest /var/lib/sdp/manifest.yaml ") || !strings.Contains(unit, "--listen :9500") {
					t.Errorf("unit:\n%s\nwant ExecStart with /opt/bin, /var/lib/sdp and :9500", unit)
				}
				h.read(t, "/var/lib/sdp/env")
				wantLink(t, h, "/usr/lib/systemd/system/kubelet.service.wants/"+UnitName, "/usr/lib/systemd/system/"+UnitName)
			}},
		{name: "--start never with systemd", systemd: true, wantChanged: true,
			edit:    func(c *Config) { c.Start = StartNever },
			wantOut: []string{"--start never: not started"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.systemd)
			c := h.config()
			if tc.before != nil {
				tc.before(t, h, &c)
			}
			if tc.edit != nil {
				tc.edit(&c)
			}
			h.calls, h.out = nil, bytes.Buffer{}
			changed, err := Install(context.Background(), c)
			if err != nil {
				t.Fatalf("Install: %v\n%s", err, h.out.String())
			}
			if changed != tc.wantChanged {
				t.Errorf("Install changed = %v, want %v\n%s", changed, tc.wantChanged, h.out.String())
			}
			if !reflect.DeepEqual(h.calls, tc.wantCalls) {
				t.Errorf("systemctl calls %q, want %q", h.calls, tc.wantCalls)
			}
			for _, w := range tc.wantOut {
				if w = strings.ReplaceAll(w, "ROOT", h.root); !strings.Contains(h.out.String(), w) {
					t.Errorf("output has no %q:\n%s", w, h.out.String())
				}
			}
			if tc.check != nil {
				tc.check(t, h)
			}
			leftovers, _ := filepath.Glob(filepath.Join(h.root, "*/*/*/.*tmp*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

// install is an install that must succeed: the earlier state of a test.
func install(t *testing.T, h *fakeHost, c *Config) {
	t.Helper()
	if _, err := Install(context.Background(), *c); err != nil {
		t.Fatalf("first install: %v", err)
	}
}

func TestInstallRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		systemd bool
		edit    func(t *testing.T, h *fakeHost, c *Config)
		want    []string
	}{
		{name: "no node name", edit: func(_ *testing.T, _ *fakeHost, c *Config) { c.NodeName = "" },
			want: []string{"no node name: give --node-name NAME, or set NODE_NAME"}},
		{name: "a node name with upper case", edit: func(_ *testing.T, _ *fakeHost, c *Config) { c.NodeName = "Node_1" },
			want: []string{`--node-name "Node_1" is not a node name`}},
		{name: "no host root", edit: func(_ *testing.T, h *fakeHost, c *Config) { c.HostRoot = filepath.Join(h.root, "missing") },
			want: []string{"/missing is not a directory: mount the host's / there"}},
		{name: "a relative unit dir", edit: func(_ *testing.T, _ *fakeHost, c *Config) { c.UnitDir = "etc/systemd/system" },
			want: []string{`--unit-dir "etc/systemd/system": want a clean absolute path`}},
		{name: "a file where a dir must be", edit: func(t *testing.T, h *fakeHost, c *Config) {
			if err := os.WriteFile(filepath.Join(h.root, "etc"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"create ROOT/etc/systemd/system", "not a directory", "a file stands where a directory must be"}},
		{name: "an unwritable bin dir", edit: func(t *testing.T, h *fakeHost, c *Config) {
			if os.Geteuid() == 0 {
				t.Skip("root writes where it pleases")
			}
			dir := filepath.Join(h.root, "usr/local/bin")
			if err := os.MkdirAll(dir, 0o555); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"write ROOT/usr/local/bin/simple-device-plugin", "permission denied", "run the installer as root"}},
		{name: "the installer's binary gone", edit: func(_ *testing.T, h *fakeHost, c *Config) { c.Executable = filepath.Join(h.root, "gone") },
			want: []string{"open the installer's own binary"}},
		{name: "systemctl fails", systemd: true, edit: func(_ *testing.T, h *fakeHost, _ *Config) { h.failOn = "restart" },
			want: []string{"systemctl restart: Access denied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.systemd)
			c := h.config()
			tc.edit(t, h, &c)
			_, err := Install(context.Background(), c)
			if err == nil {
				t.Fatalf("Install succeeded, want an error\n%s", h.out.String())
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "ROOT", h.root); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestRemove(t *testing.T) {
	for _, tc := range []struct {
		name      string
		systemd   bool
		installed bool
		wantCalls [][]string
		wantOut   []string
	}{
		{name: "installed, with systemd", systemd: true, installed: true, wantCalls: [][]string{{"stop", UnitName}, reload},
			wantOut: []string{"removed ROOT/etc/systemd/system/simple-device-plugin.service", "kept "}},
		{name: "installed, without systemd", installed: true, wantOut: []string{"removed "}},
		{name: "not installed", systemd: true, wantCalls: [][]string{reload}, // no unit: nothing to stop
			wantOut: []string{"absent ROOT/usr/local/bin/simple-device-plugin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(t, tc.systemd)
			c := h.config()
			if tc.installed {
				install(t, h, &c)
			}
			h.calls, h.out = nil, bytes.Buffer{}
			if err := Remove(context.Background(), c); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if !reflect.DeepEqual(h.calls, tc.wantCalls) {
				t.Errorf("systemctl calls %q, want %q", h.calls, tc.wantCalls)
			}
			for _, w := range tc.wantOut {
				if w = strings.ReplaceAll(w, "ROOT", h.root); !strings.Contains(h.out.String(), w) {
					t.Errorf("output has no %q:\n%s", w, h.out.String())
				}
			}
			for _, p := range append(c.wantsLinks(), c.unitPath(), c.binaryPath()) {
				if _, err := os.Lstat(c.onHost(p)); err == nil {
					t.Errorf("%s is still there", p)
				}
			}
			if tc.installed {
				h.read(t, "/etc/simple-device-plugin/env") // kept
			}
		})
	}
}

// The systemctl plan, by what changed.
func TestSystemctlPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		ch   changes
		want [][]string
	}{
		{"nothing changed", changes{}, [][]string{start}},
		{"only the links", changes{links: true}, [][]string{reload, start}},
		{"what the service runs", changes{service: true}, [][]string{reload, restart}},
		{"everything", changes{service: true, links: true}, [][]string{reload, restart}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := systemctlPlan(tc.ch); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("systemctlPlan(%+v) = %q, want %q", tc.ch, got, tc.want)
			}
		})
	}
}

// A host that runs systemd without a systemctl where hosts keep it: an
// error saying so, and what to do.
func TestHostSystemctlMissing(t *testing.T) {
	err := runHostSystemctl(context.Background(), t.TempDir(), "daemon-reload")
	if err == nil || !strings.Contains(err.Error(), "has no systemctl at /usr/bin/systemctl or /bin/systemctl") || !strings.Contains(err.Error(), "--start never") {
		t.Errorf("runHostSystemctl on a root without systemctl: %v", err)
	}
}

func wantFile(t *testing.T, h *fakeHost, path, content string, perm os.FileMode) {
	t.Helper()
	if got := h.read(t, path); got != content {
		t.Errorf("%s:\n%s\nwant:\n%s", path, got, content)
	}
	fi, err := os.Stat(filepath.Join(h.root, path))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
}

func wantLink(t *testing.T, h *fakeHost, link, target string) {
	t.Helper()
	got, err := os.Readlink(filepath.Join(h.root, link))
	if err != nil || got != target {
		t.Errorf("%s -> %q (%v), want -> %s", link, got, err, target)
	}
}

// Symlinks on the host never lead the installer out of the host root, nor
// copy another host file into the world-readable env file.
func TestInstallSymlinks(t *testing.T) {
	t.Run("env file linked to a secret", func(t *testing.T) {
		h := newFakeHost(t, false)
		etc := filepath.Join(h.root, "etc")
		if err := os.MkdirAll(filepath.Join(etc, "simple-device-plugin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "shadow"), []byte("root:SECRET:1::::::\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env := filepath.Join(etc, "simple-device-plugin", EnvFile)
		if err := os.Symlink("../shadow", env); err != nil {
			t.Fatal(err)
		}
		if _, err := Install(context.Background(), h.config()); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(env)
		fi, lerr := os.Lstat(env)
		if err != nil || lerr != nil || !fi.Mode().IsRegular() || strings.Contains(string(data), "SECRET") || !strings.Contains(string(data), "NODE_NAME=node-1") {
			t.Errorf("env file (%v, %v, mode %v):\n%s", err, lerr, fi.Mode(), data)
		}
		if shadow, _ := os.ReadFile(filepath.Join(etc, "shadow")); string(shadow) != "root:SECRET:1::::::\n" {
			t.Errorf("the link's target changed: %q", shadow)
		}
	})
	t.Run("a dir linked out of the root", func(t *testing.T) {
		h := newFakeHost(t, false)
		outside := t.TempDir()
		if err := os.MkdirAll(filepath.Join(h.root, "usr"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(h.root, "usr/local")); err != nil {
			t.Fatal(err)
		}
		_, err := Install(context.Background(), h.config())
		if err == nil || !strings.Contains(err.Error(), "leads out of --host-root") || !strings.Contains(err.Error(), "/usr/local/bin") {
			t.Errorf("Install: %v, want an error naming the dir that leads out", err)
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Errorf("written outside the host root: %v", entries)
		}
	})
	t.Run("a dir linked within the root", func(t *testing.T) {
		h := newFakeHost(t, false)
		if err := os.MkdirAll(filepath.Join(h.root, "var/usrlocal"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(h.root, "usr"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../var/usrlocal", filepath.Join(h.root, "usr/local")); err != nil {
			t.Fatal(err)
		}
		if _, err := Install(context.Background(), h.config()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(h.root, "var/usrlocal/bin", BinaryName)); err != nil {
			t.Errorf("binary not installed through the link: %v", err)
		}
	})
}
