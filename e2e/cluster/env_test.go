package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests read their surroundings from the environment e2e.sh sets:
//
//	SDP_CLUSTER_KUBECONFIG  admin kubeconfig of a running cluster (cluster.sh up)
//	SDP_CLUSTER_BIN         where kubectl and helm are (default _out/bin)
//	SDP_E2E_REQUIRED=1      a missing prerequisite fails instead of skipping
const (
	repoRoot = "../.."
	// The image tags the overlay uses.
	pluginImage = "simple-device-plugin:e2e"
)

func binDir() string {
	if d := os.Getenv("SDP_CLUSTER_BIN"); d != "" {
		return d
	}
	abs, _ := filepath.Abs("_out/bin")
	return abs
}

// require skips the test, or fails it under SDP_E2E_REQUIRED=1, when ok is false.
func require(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("SDP_E2E_REQUIRED") == "1" {
		t.Fatalf("%s (SDP_E2E_REQUIRED=1)", why)
	}
	t.Skipf("%s; `make e2e-cluster` runs this test", why)
}

func requireBin(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(binDir(), name)
	_, err := os.Stat(p)
	require(t, err == nil, p+" not built")
	return p
}

// run runs a command and returns its stdout; stderr goes into the error.
func run(ctx context.Context, t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("$ %s %s (%.1fs)", filepath.Base(name), strings.Join(args, " "), time.Since(start).Seconds())
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// mustRun is run, failing the test on error.
func mustRun(ctx context.Context, t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(ctx, t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// poll calls check every interval until it reports done, failing the test
// with check's last word after timeout.
func poll(t *testing.T, timeout time.Duration, what string, check func() (done bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	start := time.Now()
	var status string
	for {
		var done bool
		done, status = check()
		if done {
			t.Logf("%s: after %.1fs", what, time.Since(start).Seconds())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, status)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
