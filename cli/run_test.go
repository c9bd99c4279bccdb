package cli

import (
	"net"
	"os"
	"strings"
	"testing"
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
