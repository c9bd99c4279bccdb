package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Every resource of a manifest registers with the kubelet as its own
// device plugin; capacity and allocatable are the device counts.
func TestManifestRegistersEveryResource(t *testing.T) {
	k := startKubelet(t)
	counts := manifestCounts(t, []byte(threeResources))
	before := registrationsOf(t, resourceNames(counts)...)
	h := startHost(t, writeManifest(t, threeResources))
	k.registeredAll(t, counts)
	if got, want := len(k.capacity()), len(counts); got != want {
		t.Fatalf("the kubelet reports %d resources, want %d: %s", got, want, formatCounts(k.capacity()))
	}
	for _, r := range resourceNames(counts) {
		if n := registrations(t, r) - before[r]; n != 1 {
			t.Errorf("%s registered %d times with the kubelet, want once", r, n)
		}
	}
	eventually(t, registerTimeout, "/readyz 200 with every resource registered", h.statusIs("/readyz", 200))
	eventually(t, registerTimeout, "/healthz 200", h.statusIs("/healthz", 200))
}

// 20 kubelet restarts in each registration mode. Each one stops the device
// manager (and in plugins-registry mode the kubelet's plugin manager) and
// starts a new one, which wipes every socket in the device plugin directory
// and creates a new kubelet.sock; every resource must come back every time.
func TestKubeletRestarts(t *testing.T) {
	counts := manifestCounts(t, []byte(threeResources))
	for _, mode := range []string{"kubelet-socket", "plugins-registry"} {
		t.Run(mode, func(t *testing.T) {
			var k *kubelet
			var restart func()
			if mode == "plugins-registry" {
				rk := startRegistryKubelet(t)
				k, restart = rk.kubelet, rk.restart
			} else {
				k = startKubelet(t)
				restart = k.restart
			}
			h := startHost(t, writeManifest(t, threeResources), "--registration", mode)
			k.registeredAll(t, counts)
			var took []time.Duration
			for i := 1; i <= 20; i++ {
				restart()
				d := eventually(t, registerTimeout, fmt.Sprintf("every resource back after kubelet restart %d", i),
					k.capacityIs(allHealthy(counts)))
				took = append(took, d)
				if ok, why := h.alive(); !ok {
					t.Fatalf("after kubelet restart %d: %s", i, why)
				}
			}
			eventually(t, registerTimeout, "/readyz 200 after the restarts", h.statusIs("/readyz", 200))
			t.Logf("restart -> all %d resources registered: median %v, max %v (20 restarts; BenchmarkKubeletRestart gives figures without -race)",
				len(counts), median(took).Round(time.Microsecond), maxDuration(took).Round(time.Microsecond))
		})
	}
}

// A plugin's socket deleted behind its back. That plugin serves and
// registers again, exactly once; the others never re-register (the
// kubelet's own registration counter) and keep their devices all along.
func TestDeletedSocketOnlyThatPluginReregisters(t *testing.T) {
	k, h, counts := serve(t, threeResources)
	names := resourceNames(counts)
	for _, victim := range names {
		before := registrationsOf(t, names...)
		if err := os.Remove(socketPath(victim)); err != nil {
			t.Fatalf("delete %s: %v", socketPath(victim), err)
		}
		eventually(t, registerTimeout, victim+" registered again after its socket was deleted", func() (bool, string) {
			if n := registrations(t, victim); n <= before[victim] {
				return false, fmt.Sprintf("kubelet registration counter of %s still %d", victim, n)
			}
			if ok, why := socketsExist([]string{victim})(); !ok {
				return false, why
			}
			return k.capacityIs(allHealthy(counts))()
		})
		// Nothing else may move for a while after: no re-registration of
		// the others, no delayed disconnect of the new client. The window
		// also lets a late second registration of the victim show below.
		holds(t, time.Second, "the other resources untouched after deleting "+victim, func() (bool, string) {
			for _, r := range names {
				if r == victim {
					continue
				}
				if n := registrations(t, r); n != before[r] {
					return false, fmt.Sprintf("%s re-registered (kubelet counter %d -> %d) when only %s's socket was deleted", r, before[r], n, victim)
				}
			}
			if ok, why := h.alive(); !ok {
				return false, why
			}
			return k.capacityIs(allHealthy(counts))()
		})
		if n := registrations(t, victim) - before[victim]; n != 1 {
			t.Errorf("%s registered %d times with the kubelet after its socket was deleted, want exactly once (kubelet counter %d -> %d)",
				victim, n, before[victim], before[victim]+n)
		}
	}
}

// The kubelet is not there when the host starts, and comes 3 s later. The
// host keeps trying: every resource says it waits for the kubelet, and the
// host stays alive, live and not ready all that time; once the kubelet
// comes, everything registers. Two ways a node has no kubelet: no
// kubelet.sock at all, or the stale socket file of a kubelet that died
// (connection refused).
func TestKubeletAbsentAtStart(t *testing.T) {
	for _, tc := range []struct {
		name        string
		staleSocket bool
	}{
		{"no kubelet.sock", false},
		{"stale kubelet.sock", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKubelet(t)
			if err := os.MkdirAll(pluginDir, 0o750); err != nil {
				t.Fatal(err)
			}
			if tc.staleSocket {
				leaveStaleSocket(t, filepath.Join(pluginDir, "kubelet.sock"))
			}
			counts := manifestCounts(t, []byte(threeResources))
			h := startHost(t, writeManifest(t, threeResources))

			eventually(t, registerTimeout, "/healthz 200", h.statusIs("/healthz", 200))
			for _, r := range resourceNames(counts) {
				eventually(t, registerTimeout, r+" to wait for the kubelet", h.logged(0, logMatch{level: "INFO",
					fields: map[string]string{"msg": "waiting for the kubelet", "resource": r}}))
			}
			// The kubelet comes 3 s later: a window in which nothing may
			// change, however fast or slow the machine.
			holds(t, 3*time.Second, "the host waiting without a kubelet", func() (bool, string) {
				if ok, why := h.alive(); !ok {
					return false, why
				}
				if ok, why := h.statusIs("/healthz", 200)(); !ok {
					return false, why
				}
				return h.statusIs("/readyz", 503)()
			})
			k.start()
			took := k.registeredAll(t, counts)
			eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
			t.Logf("kubelet start -> all registered: %v", took.Round(time.Millisecond))
		})
	}
}

// leaveStaleSocket leaves a unix socket file at path that nobody listens
// on, as a crashed kubelet does.
func leaveStaleSocket(t testing.TB, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
}

// SIGTERM. The host exits 0, leaves none of its sockets behind (and the
// kubelet's in place), and the kubelet has no devices of ours any more:
// neither allocatable nor capacity. How fast it exits is a figure of
// sdp-bench (make bench), not an assertion here.
func TestSIGTERMExitsCleanly(t *testing.T) {
	k, h, counts := serve(t, threeResources)
	names := resourceNames(counts)
	sent := time.Now()
	h.signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(registerTimeout):
		t.Fatalf("still running %v after SIGTERM", registerTimeout)
	}
	took := h.exitedAt.Sub(sent)
	if code := h.exitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0 (%v)", code, h.waitErr)
	}
	if left := ourSockets(names); len(left) > 0 {
		t.Errorf("sockets left after SIGTERM: %v", left)
	}
	if _, err := os.Lstat(filepath.Join(pluginDir, "kubelet.sock")); err != nil {
		t.Errorf("the kubelet's socket after our SIGTERM: %v", err)
	}
	// The host sends an empty device list before it goes, so the kubelet
	// keeps no stale capacity either.
	none := map[string]resourceCounts{}
	for _, r := range names {
		none[r] = resourceCounts{}
	}
	eventually(t, registerTimeout, "the kubelet to see no devices of ours", k.capacityIs(none))
	t.Logf("SIGTERM -> exit 0 in %v", took.Round(time.Millisecond))
}
