package nodeservice

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// systemctlTimeout bounds one systemctl call: a reload takes a second or
// two, a blocking stop the unit's TimeoutStopSec (10 s).
const systemctlTimeout = time.Minute

// hostSystemctl is where a host keeps systemctl (merged /usr or not).
var hostSystemctl = []string{"/usr/bin/systemctl", "/bin/systemctl"}

// runHostSystemctl runs the host's own systemctl, in a chroot of hostRoot
// (not at all when hostRoot is /), so it talks to the host's systemd over
// hostRoot/run/systemd/private with the host's own libraries. The chroot
// needs CAP_SYS_CHROOT, and systemd answers only uid 0: the installer's
// pod is privileged.
func runHostSystemctl(ctx context.Context, hostRoot string, args ...string) error {
	path := ""
	for _, p := range hostSystemctl {
		if fi, err := os.Stat(filepath.Join(hostRoot, p)); err == nil && !fi.IsDir() {
			path = p
			break
		}
	}
	if path == "" {
		return fmt.Errorf("the host runs systemd but has no systemctl at %s under %s; start %s by the node's own means, or install with --start never",
			strings.Join(hostSystemctl, " or "), hostRoot, UnitName)
	}
	ctx, cancel := context.WithTimeout(ctx, systemctlTimeout)
	defer cancel()
	// An absolute path: exec looks nothing up in the installer's own root;
	// the child execs it after the chroot, from the host's.
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C",
		// systemctl turns start, restart and daemon-reload into no-ops when
		// it thinks it runs in a chroot (it compares / with PID 1's root);
		// this chroot is the host's own /, whose systemd must act.
		"SYSTEMD_IGNORE_CHROOT=1",
	}
	if filepath.Clean(hostRoot) != "/" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: hostRoot}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s (in a chroot of %s): %w: %s", strings.Join(args, " "), hostRoot, err, strings.TrimSpace(string(out)))
	}
	return nil
}
