package e2e

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startHostArgs is startHost with more flags after the usual ones (a later
// flag wins: --node-name other, --registration plugins-registry, ...).
func startHostArgs(t testing.TB, manifestPath string, extra ...string) *host {
	t.Helper()
	requireE2E(t)
	bin := hostBinary(t)
	h := &host{t: t, listen: freeLocalAddr(t), out: &syncBuffer{}, done: make(chan struct{})}
	args := []string{"run",
		"--manifest", manifestPath,
		"--device-plugin-dir", pluginDir,
		"--listen", h.listen,
		"--log-format", "json",
		"--node-name", nodeName,
	}
	h.cmd = exec.Command(bin, append(args, extra...)...)
	h.cmd.Env = hermeticEnv()
	var w io.Writer = h.out
	if os.Getenv(hostLogEnv) == "1" {
		w = io.MultiWriter(h.out, os.Stderr)
	}
	h.cmd.Stdout, h.cmd.Stderr = w, w
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		h.waitErr = h.cmd.Wait()
		h.exitedAt = time.Now()
		close(h.done)
	}()
	t.Cleanup(func() {
		h.stop()
		logs := h.logs()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("the host reported a data race")
		}
		if t.Failed() {
			t.Logf("host %s %v logs:\n%s", manifestPath, extra, logs)
		}
	})
	return h
}

// metricValue is h.metric that fails the test on an error and reads a
// missing series as 0.
func (h *host) metricValue(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, _, err := h.metric(name, labels...)
	if err != nil {
		t.Fatalf("host metric %s%v: %v", name, labels, err)
	}
	return v
}
