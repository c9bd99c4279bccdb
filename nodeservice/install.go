package nodeservice

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Start says whether the installer starts the service.
type Start string

const (
	// StartAuto starts (or restarts, when something changed) the service
	// through the host's systemctl when the host runs systemd.
	StartAuto Start = "auto"
	// StartNever leaves starting it to the next boot or to the node's own
	// tooling.
	StartNever Start = "never"
)

// Config is what to install where.
type Config struct {
	// HostRoot is where the host's / is: "/" on the node itself, the mount
	// of the host's / in the installer's pod (/host).
	HostRoot string
	// BinDir, UnitDir and ConfigDir are paths on the host (under HostRoot).
	BinDir, UnitDir, ConfigDir string
	// Port serves /healthz, /readyz and /metrics on the host, on Address
	// (an IP; "" for every interface).
	Port    int
	Address string
	// NodeName goes into the env file as NODE_NAME.
	NodeName string
	// Executable is the binary to install: the installer's own.
	Executable string
	Start      Start
	// Out receives one line per step: what changed, what did not, what ran.
	Out io.Writer

	// systemctl runs the host's systemctl with args; nil runs it in a
	// chroot of HostRoot (runHostSystemctl). Tests replace it.
	systemctl func(ctx context.Context, hostRoot string, args ...string) error
}

// nodeName is what the kubelet accepts as a node's name: a DNS subdomain.
var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// check refuses a config that would install a broken service.
func (c *Config) check(install bool) error {
	for _, d := range []struct{ flag, dir string }{{"bin-dir", c.BinDir}, {"unit-dir", c.UnitDir}, {"config-dir", c.ConfigDir}} {
		if err := checkDir(d.flag, d.dir); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(c.HostRoot); err != nil || !fi.IsDir() {
		return fmt.Errorf("--host-root %s is not a directory: mount the host's / there (or leave it at / on the node itself)", c.HostRoot)
	}
	if c.Start != StartAuto && c.Start != StartNever {
		return fmt.Errorf("--start %q: want auto or never", c.Start)
	}
	if !install {
		return nil
	}
	if c.NodeName == "" {
		return errors.New("no node name: give --node-name NAME, or set NODE_NAME (a DaemonSet sets it from the downward API, spec.nodeName)")
	}
	if !nodeName.MatchString(c.NodeName) {
		return fmt.Errorf("--node-name %q is not a node name (a lower-case DNS subdomain, as kubectl get nodes shows it)", c.NodeName)
	}
	return nil
}

// onHost is a host path as the installer sees it, under HostRoot.
func (c *Config) onHost(path string) string { return filepath.Join(c.HostRoot, path) }

// hostDir makes dir (a host path) under HostRoot, after checking that
// what exists of it stays under HostRoot: a symlink on the host such as
// /usr/local -> /var/usrlocal, followed from a pod, would lead into the
// pod's own file system, or wherever its target names.
func (c *Config) hostDir(dir string) error {
	if root := filepath.Clean(c.HostRoot); root != "/" {
		existing := c.onHost(dir)
		for {
			if _, err := os.Lstat(existing); err == nil || existing == root {
				break
			}
			existing = filepath.Dir(existing)
		}
		real, err := filepath.EvalSymlinks(existing)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", existing, err)
		}
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil {
			return fmt.Errorf("resolve --host-root %s: %w", root, err)
		}
		if real != realRoot && !strings.HasPrefix(real, realRoot+"/") {
			return fmt.Errorf("%s leads out of --host-root %s (to %s): a symlink on the host points where this installer cannot follow it; give the dir it resolves to on the host instead of %s",
				existing, root, real, dir)
		}
	}
	return mkdirAll(c.onHost(dir))
}

func (c *Config) binaryPath() string { return filepath.Join(c.BinDir, BinaryName) }
func (c *Config) unitPath() string   { return filepath.Join(c.UnitDir, UnitName) }
func (c *Config) envPath() string    { return filepath.Join(c.ConfigDir, EnvFile) }

// wantsLinks are the links `systemctl enable` makes, as host paths.
func (c *Config) wantsLinks() []string {
	links := make([]string, len(wantedBy))
	for i, target := range wantedBy {
		links[i] = filepath.Join(c.UnitDir, target+".wants", UnitName)
	}
	return links
}

func (c *Config) say(format string, args ...any) {
	if c.Out != nil {
		fmt.Fprintf(c.Out, format+"\n", args...)
	}
}

// changes says what an install changed: the service must restart when
// what it runs changed, systemd must reload when any of it did.
type changes struct {
	service bool // the binary, the unit or the env file
	links   bool
}

// Install installs and enables the service, and with StartAuto starts it
// through the host's systemd (restarts it when what it runs changed). It
// reports whether anything changed.
func Install(ctx context.Context, c Config) (changed bool, err error) {
	if err := c.check(true); err != nil {
		return false, err
	}
	unit, err := Unit(c.BinDir, c.ConfigDir, c.Address, c.Port)
	if err != nil {
		return false, err
	}
	var ch changes
	for _, dir := range []string{c.BinDir, c.UnitDir, c.ConfigDir} {
		if err := c.hostDir(dir); err != nil {
			return false, err
		}
	}

	exe, err := os.Open(c.Executable)
	if err != nil {
		return false, fmt.Errorf("open the installer's own binary: %w", err)
	}
	defer exe.Close()
	step, err := writeAtomic(c.onHost(c.binaryPath()), exe, 0o755)
	if err != nil {
		return false, err
	}
	c.say("%s %s", step, c.onHost(c.binaryPath()))
	ch.service = ch.service || step != unchanged

	step, err = writeAtomic(c.onHost(c.unitPath()), strings.NewReader(unit), 0o644)
	if err != nil {
		return false, err
	}
	c.say("%s %s", step, c.onHost(c.unitPath()))
	ch.service = ch.service || step != unchanged

	env, err := envFile(c.onHost(c.envPath()), c.NodeName)
	if err != nil {
		return false, err
	}
	step, err = writeAtomic(c.onHost(c.envPath()), bytes.NewReader(env), 0o644)
	if err != nil {
		return false, err
	}
	c.say("%s %s", step, c.onHost(c.envPath()))
	ch.service = ch.service || step != unchanged

	// The links are host paths to the unit, as systemctl enable makes them:
	// they are read by the host's systemd, not through HostRoot.
	for _, link := range c.wantsLinks() {
		if err := c.hostDir(filepath.Dir(link)); err != nil {
			return false, err
		}
		step, err := symlinkAtomic(c.onHost(link), c.unitPath())
		if err != nil {
			return false, err
		}
		c.say("%s %s -> %s", step, c.onHost(link), c.unitPath())
		ch.links = ch.links || step != unchanged
	}
	changed = ch.service || ch.links
	if !changed {
		c.say("nothing changed: %s is installed and enabled as it should be", UnitName)
	}
	return changed, c.startService(ctx, ch)
}

// systemctlPlan is what the installer asks the host's systemd, in order,
// after an install that changed ch. --no-block: the installer does not
// wait for the service to be ready, which needs its manifest, which the
// installer's own pod brings only after the installer is done.
func systemctlPlan(ch changes) [][]string {
	var plan [][]string
	if ch.service || ch.links {
		plan = append(plan, []string{"daemon-reload"})
	}
	if ch.service {
		return append(plan, []string{"restart", "--no-block", UnitName})
	}
	// Unchanged: make sure it runs (a no-op when it does).
	return append(plan, []string{"start", "--no-block", UnitName})
}

// startService runs systemctlPlan when the host runs systemd and the
// config asks to start.
func (c *Config) startService(ctx context.Context, ch changes) error {
	if c.Start == StartNever {
		c.say("--start never: not started; it starts at the next boot (with the kubelet), or now with: systemctl daemon-reload && systemctl restart %s", UnitName)
		return nil
	}
	if !c.hostRunsSystemd() {
		c.say("no systemd running on the host (no %s): %s is installed and enabled, and starts at the next boot or by the node's own means", c.onHost("/run/systemd/system"), UnitName)
		return nil
	}
	for _, args := range systemctlPlan(ch) {
		if err := c.runSystemctl(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// hostRunsSystemd is sd_booted(3) under HostRoot.
func (c *Config) hostRunsSystemd() bool {
	fi, err := os.Stat(c.onHost("/run/systemd/system"))
	return err == nil && fi.IsDir()
}

func (c *Config) runSystemctl(ctx context.Context, args ...string) error {
	run := c.systemctl
	if run == nil {
		run = runHostSystemctl
	}
	c.say("systemctl %s", strings.Join(args, " "))
	return run(ctx, c.HostRoot, args...)
}

// Remove undoes Install: stops the service (when the host runs systemd and
// c.Start is StartAuto), removes the links, the unit and the binary, and
// reloads systemd. The config dir (the manifest, the env file) stays.
func Remove(ctx context.Context, c Config) error {
	if err := c.check(false); err != nil {
		return err
	}
	systemd := c.Start == StartAuto && c.hostRunsSystemd()
	if _, err := os.Lstat(c.onHost(c.unitPath())); systemd && err == nil {
		// Blocking: the service stops within its TimeoutStopSec. A unit
		// systemd does not know (exit 5: "not loaded") is not running.
		if err := c.runSystemctl(ctx, "stop", UnitName); err != nil {
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 5 {
				return err
			}
			c.say("%s was not loaded: nothing to stop", UnitName)
		}
	}
	for _, p := range append(c.wantsLinks(), c.unitPath(), c.binaryPath()) {
		switch err := os.Remove(c.onHost(p)); {
		case err == nil:
			c.say("removed %s", c.onHost(p))
		case errors.Is(err, fs.ErrNotExist):
			c.say("absent %s", c.onHost(p))
		default:
			return fmt.Errorf("remove %s: %w%s", c.onHost(p), err, fixHint(err))
		}
	}
	if systemd {
		if err := c.runSystemctl(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	c.say("kept %s (the manifest and the env file): remove it by hand if it is no longer wanted", c.onHost(c.ConfigDir))
	return nil
}

// envFile is the env file's new content: the existing one with its
// NODE_NAME line replaced (other lines, SDP_* settings an admin added, are
// kept), or a new one.
func envFile(path, node string) ([]byte, error) {
	line := "NODE_NAME=" + node
	// Only a regular file is read: a symlink (which anyone who can write
	// the config dir may plant) could name any file of the host, whose
	// lines would land in this world-readable one. Anything else is
	// replaced.
	var old []byte
	fi, err := os.Lstat(path)
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err == nil {
		old, err = readNoFollow(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return []byte("# The environment of " + UnitName + ", written by simple-device-plugin install:\n" +
			"# NODE_NAME is rewritten on every install, other lines (SDP_* settings) are kept.\n" + line + "\n"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w%s", path, err, fixHint(err))
	}
	var out bytes.Buffer
	found := false
	sc := bufio.NewScanner(bytes.NewReader(old))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(l), "NODE_NAME=") {
			if found {
				continue // a second one would override the first
			}
			l, found = line, true
		}
		out.WriteString(l + "\n")
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !found {
		out.WriteString(line + "\n")
	}
	return out.Bytes(), nil
}

// readNoFollow reads a file, refusing a symlink put there since it was
// looked at.
func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
