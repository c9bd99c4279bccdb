package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Hostile filesystem: the device-plugin dir is removed and recreated, made
// read-only, and one resource's socket is replaced by a stale socket, by a
// foreign regular file and by another process's live socket. Each time
// the host says clearly what is wrong (log lines checked), keeps the other
// resources serving, recovers by itself once the condition clears, and
// never deletes a file that is not its own socket. Recovery is waited for,
// not timed: even a retry delayed by the longest backoff (30 s) comes well
// within registerTimeout, so only a host that never recovers fails.
func TestHostileFilesystem(t *testing.T) {
	t.Run("dir removed and recreated", func(t *testing.T) {
		k, h, counts := serve(t, threeResources)
		from := h.logCount()
		k.stop()
		// The plugins recreate their sockets as fast as they go, so rm -rf
		// can take a few tries.
		eventually(t, registerTimeout, "the plugin dir removed", func() (bool, string) {
			if err := os.RemoveAll(pluginDir); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
		eventually(t, registerTimeout, "the host to report the dir gone", h.logged(from, logMatch{level: "WARN",
			fields: map[string]string{"msg": "the device-plugin dir was removed"}}))
		eventually(t, registerTimeout, "a plugin to report it cannot listen", h.logged(from, logMatch{level: "WARN",
			fields: map[string]string{"msg": "plugin failed; retrying", "reason": "dir_unusable", "err": "no such file or directory"}}))
		holds(t, time.Second, "the host alive without its dir", func() (bool, string) {
			if ok, why := h.alive(); !ok {
				return false, why
			}
			return h.statusIs("/healthz", 200)()
		})
		if ok, why := h.statusIs("/readyz", 503)(); !ok {
			t.Errorf("without the dir: %s", why)
		}
		if _, err := os.Lstat(pluginDir); !os.IsNotExist(err) {
			t.Fatalf("the host recreated the plugin dir (%v): that is the kubelet's job", err)
		}
		k.start() // creates the dir, as a kubelet does
		took := k.registeredAll(t, counts)
		t.Logf("dir recreated by a starting kubelet -> every resource registered in %v", took.Round(time.Millisecond))
		eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
	})

	t.Run("dir read-only", func(t *testing.T) {
		k, h, counts := serve(t, threeResources)
		names := resourceNames(counts)
		victim, others := names[0], names[1:]
		rw := bindReadOnly(t, pluginDir)
		before := registrationsOf(t, names...)
		from := h.logCount()
		// Existing sockets keep serving on a read-only mount; a socket that
		// must be recreated cannot be.
		if err := os.Remove(filepath.Join(rw, filepath.Base(socketPath(victim)))); err != nil {
			t.Fatal(err)
		}
		eventually(t, registerTimeout, "the host to report the read-only dir", h.logged(from, logMatch{level: "WARN",
			fields: map[string]string{"msg": "plugin failed; retrying", "resource": victim, "reason": "dir_unusable", "err": "read-only file system"}}))
		othersServe(t, k, h, counts, others, before, 2*time.Second)
		if c := k.capacity()[victim]; c.Allocatable != 0 {
			t.Errorf("%s has no socket but the kubelet counts %d allocatable", victim, c.Allocatable)
		}
		unmount(t, pluginDir)
		took := eventually(t, registerTimeout, victim+" back once the dir is writable", k.capacityIs(allHealthy(counts)))
		t.Logf("dir writable again -> %s registered in %v", victim, took.Round(time.Millisecond))
	})

	// One resource's socket replaced by something else, by rename as tools
	// do it (atomic: no moment without a file there).
	for _, tc := range []struct {
		name string
		// put creates the thing at path and returns a check that it is
		// still there untouched, and a function that clears the condition.
		put       func(t *testing.T, path string) (untouched func() error, clear func())
		ours      bool   // a stale socket of ours: the host replaces it
		logReason string // restart reason logged while it refuses
		logErr    string
	}{
		{name: "stale socket of ours", put: putStaleSocket, ours: true},
		{name: "foreign regular file", put: putForeignFile, logReason: "foreign_file", logErr: "is a regular file, not a socket; refusing to remove it"},
		{name: "foreign live socket", put: putForeignListener, logReason: "foreign_file", logErr: "another process is listening on it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, h, counts := serve(t, threeResources)
			names := resourceNames(counts)
			victim, others := names[len(names)-1], names[:len(names)-1]
			path := socketPath(victim)
			before := registrationsOf(t, names...)
			from := h.logCount()
			untouched, clear := tc.put(t, path)
			if tc.ours {
				eventually(t, registerTimeout, victim+" registered again on a new socket", func() (bool, string) {
					if n := registrations(t, victim); n <= before[victim] {
						return false, fmt.Sprintf("%s registration counter %d", victim, n)
					}
					return k.capacityIs(allHealthy(counts))()
				})
				eventually(t, registerTimeout, "the host to report the stale socket", h.logged(from, logMatch{level: "INFO",
					fields: map[string]string{"msg": "removed a stale socket", "resource": victim}}))
				othersServe(t, k, h, counts, others, before, time.Second)
				return
			}
			eventually(t, registerTimeout, "the host to report the "+tc.name, h.logged(from, logMatch{level: "WARN",
				fields: map[string]string{"msg": "plugin failed; retrying", "resource": victim, "reason": tc.logReason, "err": tc.logErr}}))
			othersServe(t, k, h, counts, others, before, 2*time.Second)
			if err := untouched(); err != nil {
				t.Fatalf("the host touched the %s: %v", tc.name, err)
			}
			clear()
			took := eventually(t, registerTimeout, victim+" back once the "+tc.name+" is gone", k.capacityIs(allHealthy(counts)))
			t.Logf("%s removed -> %s registered in %v", tc.name, victim, took.Round(time.Millisecond))
		})
	}
}

// othersServe checks for window that the other resources stay registered
// (no new registration: the kubelet's counter) with all their devices.
func othersServe(t *testing.T, k *kubelet, h *host, counts map[string]int64, others []string, before map[string]int, window time.Duration) {
	t.Helper()
	want := map[string]resourceCounts{}
	for _, r := range others {
		want[r] = resourceCounts{Capacity: counts[r], Allocatable: counts[r]}
	}
	holds(t, window, "the other resources serving", func() (bool, string) {
		if ok, why := h.alive(); !ok {
			return false, why
		}
		for _, r := range others {
			if n := registrations(t, r); n != before[r] {
				return false, fmt.Sprintf("%s registered again (counter %d -> %d)", r, before[r], n)
			}
		}
		return k.capacityIs(want)()
	})
}

// replaceByRename puts what create makes at a temporary name in the same
// dir, then renames it over path.
func replaceByRename(t *testing.T, path string, create func(tmp string)) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	create(tmp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("rename over %s: %v", path, err)
	}
}

func putStaleSocket(t *testing.T, path string) (func() error, func()) {
	replaceByRename(t, path, func(tmp string) { leaveStaleSocket(t, tmp) })
	return nil, nil
}

func putForeignFile(t *testing.T, path string) (func() error, func()) {
	const content = "not a socket: someone else's file"
	replaceByRename(t, path, func(tmp string) {
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	untouched := func() error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if string(data) != content {
			return fmt.Errorf("content %q", data)
		}
		return nil
	}
	return untouched, func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// putForeignListener: another process serves a socket under our name (two
// instances of the host, or another plugin of the same resource).
func putForeignListener(t *testing.T, path string) (func() error, func()) {
	var lis *net.UnixListener
	replaceByRename(t, path, func(tmp string) {
		l, err := net.Listen("unix", tmp)
		if err != nil {
			t.Fatal(err)
		}
		lis = l.(*net.UnixListener)
		lis.SetUnlinkOnClose(false)
	})
	t.Cleanup(func() { lis.Close() })
	var ino uint64
	if fi, err := os.Lstat(path); err == nil {
		ino = fi.Sys().(*syscall.Stat_t).Ino
	}
	untouched := func() error {
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if got := fi.Sys().(*syscall.Stat_t).Ino; got != ino {
			return fmt.Errorf("inode %d, want the foreign socket's %d", got, ino)
		}
		return nil
	}
	return untouched, func() {
		// The other process goes away and removes its socket.
		lis.Close()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// bindReadOnly makes dir read-only in this mount namespace (the e2e
// tests' private one): a read-only bind mount of dir over itself. Root
// ignores permission bits, not a read-only mount. It returns a writable
// view of the same dir, for the test to change things behind the host's
// back; both are unmounted when the test ends.
func bindReadOnly(t *testing.T, dir string) string {
	t.Helper()
	rw := filepath.Join(kubeletDir, "rw-view")
	if err := os.MkdirAll(rw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, rw, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s on %s: %v", dir, rw, err)
	}
	t.Cleanup(func() { unmount(t, rw) })
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s on itself: %v", dir, err)
	}
	t.Cleanup(func() { unmount(t, dir) })
	// The kernel refuses (EBUSY) while a write through the mount is under
	// way, such as the kubelet writing its checkpoint there: try again
	// once it is done.
	var err error
	for range 200 {
		if err = unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != unix.EBUSY {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	if err := unix.Access(dir, unix.W_OK); err != unix.EROFS {
		t.Fatalf("%s is not read-only after the remount: access(W_OK) = %v", dir, err)
	}
	return rw
}

// unmount removes the mount at dir; once dir is no mount point any more it
// does nothing (EINVAL), so it may be called twice.
func unmount(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Unmount(dir, 0); err != nil && err != unix.EINVAL {
		t.Errorf("unmount %s: %v", dir, err)
	}
}
