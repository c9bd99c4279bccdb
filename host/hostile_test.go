package host_test

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"simple-device-plugin/host"
	"simple-device-plugin/internal/syncbuf"
	"simple-device-plugin/manifest"
)

// logBuffer collects a host's logs for a test to read, written by the
// host's goroutines.
type logBuffer struct{ syncbuf.Buffer }

func (b *logBuffer) has(parts ...string) bool {
	for _, line := range strings.Split(b.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// startHostWith runs a host with cfg (dir, node, logger filled in) until
// the test ends, and returns its logs.
func startHostWith(t *testing.T, dir string, m *manifest.Manifest, cfg host.Config) (*runningHost, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg.DevicePluginDir, cfg.NodeName = dir, "node-1"
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return runHost(t, m, cfg), logs
}

// noRetries retries and polls only after an hour, so a plugin that
// recovers during a test can only have noticed that its path is free.
var noRetries = host.Config{
	PollInterval: time.Hour,
	Backoff:      host.Backoff{Initial: time.Hour, Max: time.Hour, Stable: time.Hour},
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Another process listening on a socket under our name (a second
// instance, another plugin of the resource) is not a stale socket: the
// host must not delete it. Once it goes, the plugin takes the path at
// once, not at its next backoff retry.
func TestLiveForeignSocketIsNotRemoved(t *testing.T) {
	dir := shortTempDir(t)
	path := filepath.Join(dir, manifest.SocketName("example.com/c"))
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	foreign := inode(t, path)
	k := startKubelet(t, dir)
	_, logs := startHostWith(t, dir, mustParse(t, threeResources), noRetries)
	waitRegistered(t, k, "example.com/a", "example.com/b")
	waitFor(t, "the refusal logged", func() bool {
		return logs.has("plugin failed; retrying", "resource=example.com/c", "reason=foreign_file", "another process is listening on it")
	})
	if logs.has("resource=example.com/c", "not a socket") {
		t.Error("a live socket is reported as not a socket")
	}
	// The refusal ended the attempt, and the next one is an hour away.
	if got := inode(t, path); got != foreign {
		t.Fatalf("the foreign live socket was replaced (inode %d, was %d)", got, foreign)
	}
	if k.Endpoint("example.com/c") != nil {
		t.Fatal("example.com/c registered while another process holds its socket")
	}
	lis.Close()                       // unlinks the socket, as the other process exits
	waitRegistered(t, k, allThree...) // only the freed path can bring it back
}

// A file renamed over a plugin's socket replaces it with no Remove event:
// the host notices at once (not at its poll), refuses to touch the file,
// says so, and takes the path back as soon as the file goes.
func TestFileRenamedOverSocketIsNoticedAtOnce(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh, logs := startHostWith(t, dir, mustParse(t, threeResources), noRetries)
	waitRegistered(t, k, allThree...)
	path := filepath.Join(dir, manifest.SocketName("example.com/b"))
	tmp := filepath.Join(dir, "tmp")
	if err := os.WriteFile(tmp, []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replaced socket noticed", func() bool {
		return logs.has("plugin failed; retrying", "resource=example.com/b", "reason=foreign_file", "is a regular file, not a socket")
	})
	if ok, waiting := rh.Ready(); ok || len(waiting) != 1 || waiting[0] != "example.com/b" {
		t.Errorf("ready = %v, waiting %v; want example.com/b waiting", ok, waiting)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "not ours" {
		t.Fatalf("the foreign file was touched: %q, %v", data, err)
	}
	for _, name := range []string{"example.com/a", "example.com/c"} {
		if k.Endpoint(name) == nil || k.Registrations(name) != 1 {
			t.Errorf("%s disturbed: endpoint %v, %d registrations", name, k.Endpoint(name) != nil, k.Registrations(name))
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, k, allThree...) // only the freed path can bring it back
}

// A stale socket of ours (a crashed run) is replaced, and the host says so.
func TestStaleSocketReplacementIsLogged(t *testing.T) {
	dir := shortTempDir(t)
	makeStaleSocket(t, filepath.Join(dir, manifest.SocketName("example.com/a")))
	k := startKubelet(t, dir)
	_, logs := startHostWith(t, dir, mustParse(t, threeResources), host.Config{})
	waitRegistered(t, k, allThree...)
	if !logs.has("removed a stale socket left by an earlier run", "resource=example.com/a") {
		t.Error("no log line for the stale socket replaced")
	}
}
