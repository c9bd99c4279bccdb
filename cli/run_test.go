package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"simple-device-plugin/internal/kubeletsim"
)

// A --listen address in use is reported before any plugin creates a socket
// or registers, so a failed start leaves nothing behind.
func TestRunWithListenAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()

	code, _, stderr := runMain(t, "run", "--manifest", exampleManifest, "--device-plugin-dir", dir,
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

// run serves a manifest read from standard input (no reload: nothing to
// watch) until its context ends, as SIGTERM ends it.
func TestRunFromStandardInput(t *testing.T) {
	dir, k := startStandInKubelet(t)
	data, err := os.ReadFile(exampleManifest)
	if err != nil {
		t.Fatal(err)
	}
	cdiDir := t.TempDir() // never the machine's /var/run/cdi
	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- MainWithInput(runCtx, []string{"run", "-", "--device-plugin-dir", dir, "--registration", "kubelet-socket", "--listen", "", "--node-name", "n1",
			"--cdi-spec-dir", cdiDir, "--cdi-registry-dirs", cdiDir},
			bytes.NewReader(data), &stdout, &stderr)
	}()
	if err := k.WaitRegistered(ctx, []string{"example.com/fpga", "example.com/license-seat", "example.com/vaccel-share"}); err != nil {
		stop()
		<-done
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	stop()
	if code := <-done; code != exitOK {
		t.Errorf("exit code %d, want 0\n%s", code, stderr.String())
	}
	if want := "manifest=<stdin>"; !strings.Contains(stderr.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, stderr.String())
	}
	// The example's FPGAs have their CDI spec written, and it stays.
	if _, err := os.Stat(cdiDir + "/simple-device-plugin-example.com_fpga.yaml"); err != nil {
		t.Errorf("the FPGA's CDI spec: %v", err)
	}
}

// startStandInKubelet serves the stand-in kubelet's registration API in a
// new dir until the test ends. Socket paths are limited to 108 bytes: a
// short dir, not t.TempDir().
func startStandInKubelet(t *testing.T) (string, *kubeletsim.Kubelet) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k, err := kubeletsim.Start(dir, kubeletsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	return dir, k
}

// simulate reads a manifest from standard input too.
func TestSimulateFromStandardInput(t *testing.T) {
	data, err := os.ReadFile(exampleManifest)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := MainWithInput(t.Context(), []string{"simulate", "-", "-o", "json", "--request", "example.com/license-seat=2"}, bytes.NewReader(data), &stdout, &stderr)
	if code != exitOK || !strings.Contains(stdout.String(), `"LICENSE_SEATS": "seat-a,seat-b"`) {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}

// cleanup removes the CDI specs the host wrote, and nothing else.
func TestCleanupCommand(t *testing.T) {
	dir := t.TempDir()
	ours := "cdiVersion: 0.6.0\nkind: example.com/a\nannotations: {simple-device-plugin/generated-by: simple-device-plugin, simple-device-plugin/resource: example.com/a}\ndevices: [{name: x, containerEdits: {env: [A=1]}}]\n"
	writeFile(t, dir, "simple-device-plugin-example.com_a.yaml", ours)
	writeFile(t, dir, "vendor.yaml", "cdiVersion: 0.6.0\nkind: vendor.io/x\ndevices: [{name: a, containerEdits: {env: [A=1]}}]\n")
	code, stdout, stderr := runMain(t, "cleanup", "--cdi-spec-dir", dir)
	if code != exitOK || stdout != "removed the CDI spec of example.com/a\n" {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "vendor.yaml" {
		t.Errorf("left: %v", entries)
	}
	code, stdout, _ = runMain(t, "cleanup", "--cdi-spec-dir", dir)
	if code != exitOK || !strings.Contains(stdout, "no CDI spec of simple-device-plugin in") {
		t.Errorf("second cleanup: exit %d, %s", code, stdout)
	}
}
