// Package e2e drives the built simple-device-plugin binary through the
// kubelet's own device manager (k8s.io/kubernetes/pkg/kubelet/cm/devicemanager).
//
// The device manager listens on the fixed path
// /var/lib/kubelet/device-plugins/kubelet.sock, so TestMain re-executes the
// test binary under `unshare --mount --propagation private` and mounts a
// tmpfs over /var/lib/kubelet there: the tests own that directory and the
// host's real kubelet (if any) never sees them. This needs root; without it
// every test skips and says how to run them, unless SDP_E2E_REQUIRED=1 (CI),
// where a skip becomes a failure.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	// kubeletDir is where the tmpfs goes, in the private mount namespace.
	kubeletDir = "/var/lib/kubelet"
	// pluginDir is the kubelet's device plugin directory (pluginapi.DevicePluginPath).
	pluginDir = kubeletDir + "/device-plugins"
	// The node's CDI dirs, as /var/run/cdi and /etc/cdi, on the tmpfs too.
	cdiSpecDir   = kubeletDir + "/cdi/run"
	cdiStaticDir = kubeletDir + "/cdi/etc"

	// inNamespaceEnv marks the re-executed test binary.
	inNamespaceEnv = "SDP_E2E_IN_NAMESPACE"
	// requiredEnv turns "cannot run here" into a failure (set by .ci/run).
	requiredEnv = "SDP_E2E_REQUIRED"
)

// envProblem says why the e2e tests cannot run here; empty when they can.
var envProblem string

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(inNamespaceEnv) == "" {
		envProblem = namespaceProblem()
		if envProblem == "" {
			os.Exit(reexecInPrivateNamespace())
		}
	} else {
		envProblem = mountPrivateKubeletDir()
	}
	initKlog()
	code := m.Run()
	stopAPIServer()
	removeBuiltBinary()
	os.Exit(code)
}

// requireE2E skips t, or fails it under SDP_E2E_REQUIRED=1, when the
// private mount namespace could not be set up.
func requireE2E(t testing.TB) {
	t.Helper()
	if envProblem == "" {
		return
	}
	msg := fmt.Sprintf("e2e tests need root and mount namespaces: %s.\n"+
		"They run the real kubelet device manager on /var/lib/kubelet/device-plugins, "+
		"inside a private mount namespace with a tmpfs over /var/lib/kubelet "+
		"(your real /var/lib/kubelet is never touched). Run them as root:\n"+
		"    sudo -E env \"PATH=$PATH\" make e2e\n"+
		"or  cd e2e && sudo -E env \"PATH=$PATH\" go test -race -count=1 ./...", envProblem)
	if os.Getenv(requiredEnv) == "1" {
		t.Fatalf("%s=1 but %s", requiredEnv, msg)
	}
	t.Skip(msg)
}

// namespaceProblem checks, from the outer process, that the test binary can
// be re-executed in a private mount namespace.
func namespaceProblem() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("running as uid %d, not root", os.Geteuid())
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return "unshare(1) not found in PATH (util-linux)"
	}
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("cannot create a mount namespace: unshare: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// reexecInPrivateNamespace runs this test binary again, with the same
// arguments, in a private mount namespace and returns its exit code.
func reexecInPrivateNamespace() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: find test binary: %v\n", err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), inNamespaceEnv+"=1")
	// Die with us: Pdeathsig follows the thread that forked, so pin it.
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "e2e: re-exec in a private mount namespace: %v\n", err)
		return 1
	}
	return 0
}

// mountPrivateKubeletDir mounts a tmpfs over /var/lib/kubelet inside the
// private namespace and checks that it really is one before any test writes
// there.
func mountPrivateKubeletDir() string {
	if err := os.MkdirAll(kubeletDir, 0o755); err != nil {
		return fmt.Sprintf("mkdir %s: %v", kubeletDir, err)
	}
	if err := syscall.Mount("tmpfs", kubeletDir, "tmpfs", 0, "mode=0755,size=64m"); err != nil {
		return fmt.Sprintf("mount tmpfs on %s: %v", kubeletDir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(kubeletDir, &st); err != nil {
		return fmt.Sprintf("statfs %s: %v", kubeletDir, err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		return fmt.Sprintf("%s is not the private tmpfs after mounting it (fs type %#x)", kubeletDir, st.Type)
	}
	return ""
}
