package cli

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"simple-device-plugin/internal/kubeletsim"
)

// As a node service: started before the kubelet, with no manifest yet,
// run tells systemd it is ready (every plugin's socket listens by then),
// /readyz says it waits for the manifest, the manifest's arrival is
// served, the kubelet that starts later gets every registration, and the
// stop is announced.
func TestRunAsNodeService(t *testing.T) {
	dir, notifications := underServiceManager(t)
	pluginDir := filepath.Join(dir, "dp") // not made yet: a kubelet that never ran
	etc := t.TempDir()
	manifestPath := filepath.Join(etc, "manifest.yaml")
	addr := freeAddress(t)

	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	run := startCommand(t, "run", manifestPath, "--wait-for-manifest", "--device-plugin-dir", pluginDir, "--registration", "kubelet-socket",
		"--listen", addr, "--node-name", "n1", "--cdi-spec-dir", t.TempDir(), "--cdi-registry-dirs", "", "--pod-resources-socket", "")
	stderr := run.stderr

	if got := notifications.next(t, ctx); got != "READY=1\nSTATUS=waiting for the manifest" {
		t.Fatalf("first notification %q, want READY with the waiting status\n%s", got, stderr.String())
	}
	if fi, err := os.Stat(pluginDir); err != nil || !fi.IsDir() {
		t.Errorf("the socket dir was not made: %v", err)
	}
	waitForHTTP(t, addr, "/readyz", http.StatusServiceUnavailable, "no manifest yet")

	// The manifest arrives (as sync writes it: a rename into place).
	data, err := os.ReadFile(exampleManifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifestPath+".tmp", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(manifestPath+".tmp", manifestPath); err != nil {
		t.Fatal(err)
	}
	want := []string{"example.com/fpga", "example.com/license-seat", "example.com/vaccel-share"}
	waitFor(t, ctx, "every plugin socket of the arrived manifest", func() bool {
		for _, name := range want {
			if _, err := os.Stat(filepath.Join(pluginDir, strings.ReplaceAll(name, "/", "_")+".sock")); err != nil {
				return false
			}
		}
		return true
	})

	// The kubelet starts later and gets every resource registered.
	k, err := kubeletsim.Start(pluginDir, kubeletsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	if err := k.WaitRegistered(ctx, want); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	waitForHTTP(t, addr, "/readyz", http.StatusOK, "ok")

	if code, log := run.stop(); code != exitOK {
		t.Errorf("exit code %d, want 0\n%s", code, log)
	}
	if got := notifications.next(t, ctx); got != "STOPPING=1" {
		t.Errorf("last notification %q, want STOPPING=1", got)
	}
}

// As a node service, an invalid manifest at start is waited out like a
// missing one: READY=1, nothing served, the problems said; the fixed file
// is served.
func TestRunAsNodeServiceInvalidManifest(t *testing.T) {
	dir, notifications := underServiceManager(t)
	manifestPath := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(manifestPath, []byte("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/fpga\n    count: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	run := startCommand(t, "run", manifestPath, "--wait-for-manifest", "--device-plugin-dir", dir, "--registration", "kubelet-socket",
		"--listen", "", "--node-name", "n1", "--cdi-spec-dir", t.TempDir(), "--cdi-registry-dirs", "", "--pod-resources-socket", "")
	stderr := run.stderr
	defer func() {
		if code, log := run.stop(); code != exitOK {
			t.Errorf("exit code %d, want 0\n%s", code, log)
		}
	}()
	if got := notifications.next(t, ctx); got != "READY=1\nSTATUS=waiting for the manifest" {
		t.Fatalf("notification %q, want READY with the waiting status\n%s", got, stderr.String())
	}
	for _, want := range []string{"resources[0].count: must be at least 1", "serving nothing until a valid one is written"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
	k, err := kubeletsim.Start(dir, kubeletsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	data, err := os.ReadFile(exampleManifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifestPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRegistered(ctx, []string{"example.com/fpga", "example.com/license-seat", "example.com/vaccel-share"}); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
}

// With a manifest there at start, READY=1 comes only once every plugin's
// socket listens: a kubelet started on that signal finds them all.
func TestRunNotifiesOnceServing(t *testing.T) {
	dir, notifications := underServiceManager(t)

	ctx, cancel := context.WithTimeout(t.Context(), hangTimeout)
	defer cancel()
	stderr := startCommand(t, "run", exampleManifest, "--device-plugin-dir", dir, "--registration", "kubelet-socket",
		"--listen", "", "--node-name", "n1", "--cdi-spec-dir", t.TempDir(), "--cdi-registry-dirs", "", "--pod-resources-socket", "").stderr
	if got := notifications.next(t, ctx); got != "READY=1\nSTATUS=serving 3 resources" {
		t.Fatalf("notification %q, want READY=1 serving 3 resources\n%s", got, stderr.String())
	}
	for _, sock := range []string{"example.com_fpga.sock", "example.com_license-seat.sock", "example.com_vaccel-share.sock"} {
		conn, err := net.Dial("unix", filepath.Join(dir, sock))
		if err != nil {
			t.Errorf("READY=1 came before %s listened: %v", sock, err)
			continue
		}
		conn.Close()
	}
}

// Without --wait-for-manifest a missing manifest is an error at once,
// naming the file.
func TestRunMissingManifest(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "manifest.yaml")
	code, _, stderr := runMain(t, "run", missing, "--device-plugin-dir", t.TempDir(), "--registration", "kubelet-socket", "--listen", "")
	if code == exitOK || !strings.Contains(stderr, missing) || !strings.Contains(stderr, "no such file") {
		t.Errorf("exit %d, want a failure naming %s:\n%s", code, missing, stderr)
	}
}

// notifySocket is the service manager's end of $NOTIFY_SOCKET.
type notifySocket struct{ conn *net.UnixConn }

// underServiceManager plays systemd for a Type=notify service: a new short
// dir (socket paths are limited to 108 bytes: not t.TempDir()) with the
// notification socket in it, named by $NOTIFY_SOCKET until the test ends.
func underServiceManager(t *testing.T) (string, *notifySocket) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return dir, &notifySocket{conn}
}

// next is the next datagram, or a failure when ctx ends first.
func (n *notifySocket) next(t *testing.T, ctx context.Context) string {
	t.Helper()
	deadline, _ := ctx.Deadline()
	if err := n.conn.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	k, err := n.conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:k])
}

// waitFor polls cond until it holds, failing the test when ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not before the deadline", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
