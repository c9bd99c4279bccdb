package host_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"simple-device-plugin/manifest"
)

var allThree = []string{"example.com/a", "example.com/b", "example.com/c"}

func TestKubeletRestartsReRegisterEveryResourceOnce(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, allThree...)
	for i := 0; i < 5; i++ {
		k = restartKubelet(t, k, dir)
		waitRegistered(t, k, allThree...)
		// Give a duplicate registration the chance to show up.
		time.Sleep(50 * time.Millisecond)
		for _, name := range allThree {
			if got := k.Registrations(name); got != 1 {
				t.Fatalf("restart %d: %s registered %d times with the new kubelet, want 1", i, name, got)
			}
		}
	}
}

func TestKubeletAbsentAtStart(t *testing.T) {
	dir := shortTempDir(t)
	rh := startHost(t, dir, mustParse(t, threeResources))
	time.Sleep(300 * time.Millisecond)
	if ok, waiting := rh.Ready(); ok || len(waiting) != 3 {
		t.Fatalf("ready = %v, waiting %v; want not ready, all three waiting", ok, waiting)
	}
	k := startKubelet(t, dir)
	waitRegistered(t, k, allThree...)
	waitFor(t, "ready", func() bool { ok, _ := rh.Ready(); return ok })
}

func TestDeletedSocketReRegistersOnlyThatPlugin(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, allThree...)
	if err := os.Remove(filepath.Join(dir, manifest.SocketName("example.com/b"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "example.com/b registered again", func() bool { return k.Registrations("example.com/b") == 2 })
	waitRegistered(t, k, allThree...)
	time.Sleep(100 * time.Millisecond)
	for _, name := range []string{"example.com/a", "example.com/c"} {
		if got := k.Registrations(name); got != 1 {
			t.Errorf("%s registered %d times, want 1 (untouched)", name, got)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, manifest.SocketName("example.com/b"))); err != nil {
		t.Errorf("socket not recreated: %v", err)
	}
}

func TestRefusedRegistrationRetriesWithoutDisturbingOthers(t *testing.T) {
	dir := shortTempDir(t)
	var refusals atomic.Int32
	k := startKubelet(t, dir)
	k.Refuse = func(resource string) error {
		if resource == "example.com/c" && refusals.Add(1) <= 3 {
			return errors.New("refused for the test")
		}
		return nil
	}
	startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, allThree...)
	if n := refusals.Load(); n < 4 {
		t.Errorf("example.com/c tried %d times, want 3 refusals then success", n)
	}
	for _, name := range []string{"example.com/a", "example.com/b"} {
		if got := k.Registrations(name); got != 1 {
			t.Errorf("%s registered %d times, want 1", name, got)
		}
	}
}

func TestStaleSocketIsReplacedForeignFileIsNot(t *testing.T) {
	dir := shortTempDir(t)
	// A stale socket of ours (a previous run crashed) and a foreign regular
	// file where another resource's socket would go.
	stale := filepath.Join(dir, manifest.SocketName("example.com/a"))
	makeStaleSocket(t, stale)
	foreign := filepath.Join(dir, manifest.SocketName("example.com/c"))
	if err := os.WriteFile(foreign, []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, "example.com/a", "example.com/b")
	time.Sleep(300 * time.Millisecond)
	if data, err := os.ReadFile(foreign); err != nil || string(data) != "not ours" {
		t.Fatalf("the foreign file was touched: %q, %v", data, err)
	}
	if ok, waiting := rh.Ready(); ok || len(waiting) != 1 || waiting[0] != "example.com/c" {
		t.Fatalf("ready = %v, waiting %v; want example.com/c waiting", ok, waiting)
	}
	// The condition clears: the plugin recovers by itself.
	if err := os.Remove(foreign); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, k, allThree...)
}

func TestDirRemovedAndRecreated(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, allThree...)
	k.Stop()
	// The plugins recreate their sockets as fast as they are removed, so
	// removing the dir can take a few tries, as it would with rm -rf.
	waitFor(t, "dir removed", func() bool { return os.RemoveAll(dir) == nil })
	time.Sleep(300 * time.Millisecond)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k2 := startKubelet(t, dir)
	waitRegistered(t, k2, allThree...)
}
