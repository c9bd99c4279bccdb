package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// soakManifest has eight resources of assorted sizes.
var soakManifest = func() string {
	var b strings.Builder
	b.WriteString("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n")
	for i := range 8 {
		fmt.Fprintf(&b, "  - name: soak.example.com/r%d\n    count: %d\n", i, 1+i*3)
	}
	return b.String()
}()

// TestSoakKubeletFlapping restarts the kubelet's real device manager every
// 100-300 ms (each restart wipes every socket and creates a new
// kubelet.sock) for SOAK_DURATION (3 s smoke), then leaves it alone: every
// resource is registered exactly once more (the kubelet's own counter) with
// all its devices allocatable, and the host process has not accumulated
// sockets, goroutines or fds. How fast that recovery is,
// BenchmarkKubeletFlapRecovery says.
func TestSoakKubeletFlapping(t *testing.T) {
	duration := soakDuration(t, 3*time.Second)
	k, h, counts := serve(t, soakManifest)
	names := resourceNames(counts)
	eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
	base := h.steadyUsage(t)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	restarts := 0
	peak := base
	for end := time.Now().Add(duration); time.Now().Before(end); {
		// The flapping itself: how long each kubelet lives.
		time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(200*time.Millisecond))))
		k.restart()
		restarts++
		if ok, why := h.alive(); !ok {
			t.Fatalf("after %d kubelet restarts: %s", restarts, why)
		}
		if restarts%10 == 0 {
			u := h.usage(t)
			peak.goroutines, peak.fds = max(peak.goroutines, u.goroutines), max(peak.fds, u.fds)
		}
	}

	// The last restart: the counter before the new kubelet starts.
	k.stop()
	before := registrationsOf(t, names...)
	k.start()
	restarts++
	took := eventually(t, registerTimeout, fmt.Sprintf("every resource registered exactly once more after %d kubelet restarts over %v", restarts, duration),
		registeredOnceMore(t, k, names, before, counts))
	t.Logf("flapping: %d kubelet restarts in %v; after the last one every resource was registered once more and allocatable in %v",
		restarts, duration, took.Round(time.Millisecond))
	holds(t, 2*time.Second, "exactly one registration per resource after the flapping", func() (bool, string) {
		if ok, why := h.alive(); !ok {
			return false, why
		}
		return registeredOnceMore(t, k, names, before, counts)()
	})
	eventually(t, registerTimeout, "/readyz 200 after the flapping", h.statusIs("/readyz", 200))
	t.Logf("flapping: peak during it: %d goroutines, %d fds", peak.goroutines, peak.fds)
	h.checkHostNoLeak(t, "flapping", base, procUsage{goroutines: 5, fds: 2})
}

// registeredOnceMore is a condition: every resource of names has been
// registered exactly once since the kubelet's counter read before, and the
// kubelet has all of counts' devices. A second registration can never be
// undone, so it fails t at once rather than at the deadline.
func registeredOnceMore(t testing.TB, k *kubelet, names []string, before map[string]int, counts map[string]int64) condition {
	return func() (bool, string) {
		for _, r := range names {
			switch n := registrations(t, r); {
			case n > before[r]+1:
				t.Fatalf("%s registered %d times after the last kubelet restart, want once (kubelet counter %d -> %d)", r, n-before[r], before[r], n)
			case n != before[r]+1:
				return false, fmt.Sprintf("%s: kubelet registration counter %d, want %d", r, n, before[r]+1)
			}
		}
		return k.capacityIs(allHealthy(counts))()
	}
}
